"""Where candidates to deploy come from: one small module per kind of folder a user already has.

- :mod:`~rl_swa.sources.rundir`: a run directory of ``rl-swa train`` / ``compare`` (its averages,
  saved points, the best evaluated policy).
- :mod:`~rl_swa.sources.zoo`: an RL Zoo experiment folder (``logs/<algo>/<env>_<id>/``).
- :mod:`~rl_swa.sources.checkpoints`: a folder of SB3 ``CheckpointCallback`` zips.

:func:`open_source` tells them apart and returns a :class:`Source`: the env to play on, the
candidates (the default first) and what a deployed folder needs. Zips and pickles are read with
SB3's own loaders, as SB3 users read their own runs: the folder must be one the user trusts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym

from rl_swa.selection import Candidate
from rl_swa.sources.zips import SourceError

DEFAULTS = ("final", "best")


@dataclass
class Source:
    """What a folder gives ``select``: the candidates (``candidates[0]`` is the default) and the env."""

    kind: str  # "rl-swa run" | "RL Zoo experiment" | "SB3 checkpoints"
    path: Path
    env_id: str
    algo: str  # lowercase SB3 name: a2c, ppo, ddpg, td3, sac, dqn, ...
    make_env: Callable[[int, int], Any]  # (n_envs, seed) -> VecEnv, raw observations
    candidates: list[Candidate]
    deterministic: bool
    model_zip: Path | None = None  # the model whose zip the deployed weights go into
    algo_class: type | None = None
    stats: dict[str, Path | None] = field(default_factory=dict)  # candidate -> VecNormalize pickle it plays with
    notes: list[str] = field(default_factory=list)
    found: str = ""  # what the folder holds, in words
    zoo: dict[str, dict] | None = None  # RL Zoo's config.yml and args.yml (the deployed folder's layout)

    def describe(self) -> str:
        """One line: what was found, and how many candidates were built."""
        mode = "deterministic" if self.deterministic else "sampled"
        return (
            f"{self.kind} ({self.algo.upper()} on {self.env_id}, {mode} actions): {self.found}; "
            f"{len(self.candidates)} candidates, default {self.candidates[0].name!r}"
        )


def atari(env_id: str) -> bool:
    """RL Zoo's rule (``ExperimentManager.is_atari``): an env made by ALE's AtariEnv."""
    try:
        import ale_py

        gym.register_envs(ale_py)  # ALE/... ids exist once ale_py registers them
    except ImportError:
        pass
    try:
        return "AtariEnv" in str(gym.spec(env_id).entry_point)
    except gym.error.Error:
        return False


def action_mode(env_id: str, override: bool | None) -> bool:
    """Deterministic actions? RL Zoo's ``enjoy.py`` rule (sampled on Atari) unless overridden."""
    return (not atari(env_id)) if override is None else override


def open_source(
    path: str | Path,
    env: str | None = None,
    algo: str | None = None,
    default: str = "final",
    deterministic: bool | None = None,
) -> Source:
    """The :class:`Source` of ``path``: an rl-swa run directory, an RL Zoo experiment folder or a
    folder of SB3 checkpoints (told apart by their files).

    :param env: the env id of a bare checkpoint folder (the others record theirs).
    :param algo: the algorithm of a checkpoint folder whose zips do not say it.
    :param default: what a candidate must beat: ``final`` (the final model) or ``best``
        (``EvalCallback``'s best model, what ``enjoy.py --load-best`` runs).
    :param deterministic: the action mode; None: RL Zoo's (sampled on Atari, deterministic elsewhere).
    """
    from rl_swa.sources import checkpoints, rundir, zoo

    path = Path(path)
    if default not in DEFAULTS:
        raise SourceError(f"--default: {default!r} is not allowed; use one of {', '.join(DEFAULTS)}")
    if not path.is_dir():
        raise SourceError(f"{path}: no such folder")
    atari("")  # registers ALE's ids, when ale_py is installed
    for kind in (rundir, zoo, checkpoints):
        if kind.matches(path):
            return kind.open(path, env=env, algo=algo, default=default, deterministic=deterministic)
    raise SourceError(
        f"{path}: no known layout; expected an rl-swa run directory (config.yaml, result.json), an RL Zoo experiment "
        "folder (<env>/config.yml and args.yml beside <env>.zip) or a folder of SB3 checkpoints (rl_model_<N>_steps.zip)"
    )


__all__ = ["Source", "SourceError", "open_source", "action_mode"]
