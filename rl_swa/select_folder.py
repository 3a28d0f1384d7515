"""``select_policy`` for a folder a user already has: choose among its saved weights and write ``deployed/``.

    from rl_swa import select_folder
    policy, selection = select_folder("logs/a2c/CartPole-v1_1", episodes=200, test_episodes=50)

The folder is an RL Zoo experiment, a folder of SB3 checkpoints (``env=`` names its env) or an
rl-swa run directory (:func:`rl_swa.sources.open_source`). Same race, confirmation and episode
seeds as :func:`rl_swa.select_policy`; the default a candidate must beat is the final model
(``default="best"``: ``EvalCallback``'s best model).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from rl_swa.deploy import ReusedEnvs, play_episodes, run_selection
from rl_swa.selection import check_budget, episode_seeds
from rl_swa.sources import Source, open_source
from rl_swa.sources import deployed as deployed_folder
from rl_swa.sources.zips import SourceError

# The alternatives scored beside the deployed policy on test episodes (a name absent from a folder is skipped).
COMPARED = ("final model", "best model", "last checkpoint")


def select_folder(
    path: str | Path,
    episodes: int = 200,
    level: float = 0.05,
    test_episodes: int = 0,
    env: str | None = None,
    algo: str | None = None,
    default: str = "final",
    deterministic: bool | None = None,
    seed: int = 0,
    write: bool = True,
    rule: str = "fixed",
) -> tuple[Any, dict[str, Any]]:
    """The policy to deploy from the folder ``path`` and the content of its ``selection.json``.

    :param test_episodes: also score the deployed policy and the alternatives users deploy without it
        (the final model, the best model, the last checkpoint) on this many test episodes,
        seeded apart from every validation episode.
    :param write: write ``deployed/`` into the folder (atomically).
    """
    source = open_source(path, env=env, algo=algo, default=default, deterministic=deterministic)
    try:
        check_budget(len(source.candidates), episodes)
    except ValueError as exc:
        raise SourceError(f"--episodes: {exc}") from None
    return select_source(source, episodes, level, test_episodes, seed, write, rule=rule)


def select_source(
    source: Source,
    episodes: int,
    level: float,
    test_episodes: int = 0,
    seed: int = 0,
    write: bool = True,
    on_round=None,
    record: dict | None = None,
    rule: str = "fixed",
) -> tuple[Any, dict[str, Any]]:
    """:func:`select_folder` on an opened source; ``record``: further fields of ``selection.json`` (provenance)."""
    if write:
        deployed_folder.check_writable(source.path / deployed_folder.FOLDER)
    policy, result = run_selection(
        source.candidates, source.make_env, episodes, level, source.deterministic, seed, on_round=on_round, rule=rule
    )
    selection: dict[str, Any] = {
        "source": {"kind": source.kind, "path": str(source.path), "found": source.found, "notes": source.notes},
        "env": source.env_id,
        "algo": source.algo,
        "deterministic": source.deterministic,
        **result,
        **(record or {}),
    }
    returns = _deployed_returns(result)
    if test_episodes:
        selection["test"] = score_on_test(source, policy, result["deployed"], test_episodes, seed)
        returns = selection["test"]["returns"]["deployed"]
    if write:
        selection["written"] = str(deployed_folder.write(source, policy, selection, returns))
    return policy, selection


def _deployed_returns(result: dict) -> list[float]:
    """The deployed policy's validation returns that ``results.json`` reports without test episodes."""
    return list(result.get("deployed_returns") or [])


def score_on_test(source: Source, policy, deployed: str, n: int, seed: int = 0) -> dict[str, Any]:
    t0 = time.time()
    seeds = episode_seeds("test", seed, n)
    named = {"deployed": policy}
    for c in source.candidates:
        if c.name in COMPARED and c.name not in named:
            named[c.name] = c.make()
    checkpoints = [c for c in source.candidates if c.kind == "checkpoint"]
    if checkpoints and "last checkpoint" not in named:  # an RL Zoo folder names it by its step
        named["last checkpoint"] = max(checkpoints, key=lambda c: c.info["step"]).make()
    with ReusedEnvs(source.make_env) as envs:
        returns = {name: play_episodes(p, envs, seeds, source.deterministic) for name, p in named.items()}
    return {
        "seeds": [seeds[0], seeds[-1]],
        "deployed_is": deployed,
        "means": {k: float(np.mean(v)) for k, v in returns.items()},
        "returns": returns,
        "wall_s": round(time.time() - t0, 1),
    }
