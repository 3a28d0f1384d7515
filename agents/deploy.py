"""The deployed policy of a finished run directory: ``rl-swa select`` and the pipeline's ``select:`` section.

Reads the candidates a run saved (``rl_swa.deploy`` chooses among them) and writes
``deployed_policy.safetensors``, ``deployed_model.zip`` and ``selection.json`` into the run.
"""

from __future__ import annotations

import json
import pickle
import time
from pathlib import Path

import numpy as np
import torch

from agents.config import ConfigError, parse_config
from agents.provenance import code_version, cpu_model
from agents.rundir import read_json, read_yaml, training_wall_s
from rl_swa.files import atomic_write

FILE_ERRORS = (ValueError, RuntimeError, EOFError, OSError, KeyError, pickle.UnpicklingError)


def load_candidates(run: Path):
    """(config, env id, candidates, online policy) of a finished run; a missing or damaged file is a ConfigError."""
    from rl_swa import SWAPolicy
    from rl_swa.deploy import posthoc_candidates
    from rl_swa.selection import Candidate

    for need in ("config.yaml", "policy.safetensors", "result.json"):
        if not (run / need).is_file():
            raise ConfigError(f"{run}: no {need} (a finished run directory of rl-swa train/compare is needed)")
    meta = read_yaml(run / "config.yaml")
    cfg = parse_config(meta["config"], str(run / "config.yaml"))
    try:
        online = SWAPolicy.load(run / "policy.safetensors", device="cpu")
        candidates = [Candidate("online", "online", lambda: online)]
        files = [
            ("best evaluated", "best", run / "best_policy.safetensors"),
            ("swa", "average", run / "swa_policy.safetensors"),
        ]
        files += [(f.stem.removeprefix("average_"), "average", f) for f in sorted(run.glob("average_*.safetensors"))]
        for name, kind, path in files:
            if path.is_file():
                policy = SWAPolicy.load(path, device="cpu")
                candidates.append(Candidate(name, kind, lambda policy=policy: policy))
        points = []
        if (run / "posthoc.pt").is_file():
            saved = torch.load(run / "posthoc.pt", weights_only=True)  # tensors and plain data only: runs no code
            if not isinstance(saved, dict) or not isinstance(saved.get("points"), list):
                raise ValueError(f"{run / 'posthoc.pt'}: holds no saved points")
            points = saved["points"]
        for c in posthoc_candidates(points, online):  # built now: a damaged file fails here, in one line
            policy = c.make()
            candidates.append(Candidate(c.name, c.kind, lambda policy=policy: policy, c.info))
    except (*FILE_ERRORS, TypeError, AttributeError) as exc:
        raise ConfigError(f"{run}: {exc}".replace("\n", " ")) from None
    return cfg, meta["env"], candidates, online, points


def deployed_model(run: Path, cfg, policy) -> None:
    """The run's SB3 model with the deployed weights, as an SB3 zip (loads with plain ``A2C.load``/``DDPG.load``)."""
    from agents.builders import ALGORITHMS

    model = ALGORITHMS[cfg.algo].load(run / "model.zip", device="cpu")  # the run's own file (SB3 unpickles it)
    model.policy.load_state_dict(policy.policy.state_dict())
    tmp = run / ".deployed_model.tmp.zip"
    model.save(tmp)
    tmp.replace(run / "deployed_model.zip")


def posthoc_choice(run: Path, points: list[dict], online):
    """The candidate ``scripts/posthoc.py`` chose (exhaustive, 10 validation episodes), rebuilt, or None."""
    from rl_swa.deploy import policy_with
    from rl_swa.posthoc import synthesize_ema, window_average

    if not (run / "posthoc.json").is_file() or not points:
        return None
    chosen = json.loads((run / "posthoc.json").read_text())["chosen"]
    if chosen["kind"] == "ema":
        return policy_with(online, synthesize_ema(points, chosen["sigma_rel"])[0])
    by_step = {p["step"]: p for p in points}
    earlier = None if chosen["from_step"] == 0 else by_step[chosen["from_step"]]
    return policy_with(online, window_average(by_step[chosen["to_step"]], earlier))


def select_run(run: Path, episodes: int = 200, level: float = 0.05, test_episodes: int = 0) -> dict:
    """Choose and write the deployed policy of the finished run ``run``; the content of its ``selection.json``."""
    from agents.envs import make_env
    from rl_swa.deploy import ReusedEnvs, play_episodes, run_selection
    from rl_swa.selection import episode_seeds

    train = read_json(run / "result.json")  # a damaged one: one line, before any episode is played
    if not isinstance(train, dict):
        raise ConfigError(f"{run / 'result.json'}: not a run's result")
    cfg, env_id, candidates, online, points = load_candidates(run)

    def make(n: int, seed: int):
        return make_env(cfg, env_id, n, seed, training=False)

    det, base = cfg.eval.deterministic, cfg.eval.seed
    from rl_swa.selection import check_budget

    try:
        check_budget(len(candidates), episodes)
    except ValueError as exc:
        raise ConfigError(f"{run}: {exc}") from None
    policy, result = run_selection(candidates, make, episodes, level, det, base)
    policy.save(run / "deployed_policy.safetensors")
    deployed_model(run, cfg, policy)
    out = {
        "run": str(run),
        "env": env_id,
        **result,
        "train_wall_s": training_wall_s(train),  # a resumed run: estimated at its last session's speed
        "code": code_version(),
        "cpu": cpu_model(),
    }
    if test_episodes:
        t0 = time.time()
        seeds = episode_seeds("test", base, test_episodes)
        named = {"deployed": policy, "online": online}
        for c in candidates:
            if c.kind == "best" or c.name == "swa":
                named["best evaluated" if c.kind == "best" else "fixed-start average"] = c.make()
        posthoc = posthoc_choice(run, points, online)
        if posthoc is not None:
            named["posthoc choice"] = posthoc
        with ReusedEnvs(make) as envs:
            returns = {name: play_episodes(p, envs, seeds, det) for name, p in named.items()}
        out["test"] = {
            "seeds": [seeds[0], seeds[-1]],
            "means": {k: float(np.mean(v)) for k, v in returns.items()},
            "returns": returns,
            "wall_s": round(time.time() - t0, 1),
        }
    atomic_write(run / "selection.json", json.dumps(out, indent=1))
    return out


def summary(result: dict) -> str:
    """One line: what was deployed and why."""
    c, default = result["confirmation"], result.get("default", "online")
    why = (
        f"the race's leader is the default, {default}"
        if c is None
        else f"leader {c['leader']}: {c['mean_difference']:+.3g} over {default} on {c['pairs']} paired episodes, "
        f"lower bound {c['lower_bound']:+.3g}, p {c['p_value']:.3g} (level {result['level']})"
    )
    return f"deployed: {result['deployed']} ({why}); {result['episodes']} episodes, {result['wall_s']} s"
