"""The deployed policy of a finished run directory: ``rl-swa select`` and the pipeline's ``select:`` section.

Reads the candidates a run saved (``rl_swa.deploy`` chooses among them) and writes
``deployed_policy.safetensors``, ``deployed_model.zip`` and ``selection.json`` into the run.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import pickle
import signal
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from agents.config import ConfigError, parse_config
from agents.provenance import code_version, cpu_model
from agents.rundir import read_json, read_yaml, training_wall_s

FILE_ERRORS = (ValueError, RuntimeError, EOFError, OSError, KeyError, pickle.UnpicklingError)


def load_candidates(run: Path):
    """(config, env id, candidates, online policy, saved points, notes) of a finished run; a missing
    or damaged file is a ConfigError naming it."""
    from rl_swa import SWAPolicy
    from rl_swa.deploy import posthoc_candidates
    from rl_swa.selection import Candidate

    for need in ("config.yaml", "policy.safetensors", "result.json", "model.zip"):
        if not (run / need).exists():
            raise ConfigError(f"{run}: no {need} (a finished run directory of rl-swa train/compare is needed)")
    cfg, env_id = run_config(run)
    notes = []
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
            elif kind == "best" or name == "swa":
                notes.append(f"no {path.name}: no {name} candidate (the run saved none)")
        points = _saved_points(run / "posthoc.pt")
        for c in posthoc_candidates(points, online):  # built now: a damaged file fails here, in one line
            policy = c.make()
            candidates.append(Candidate(c.name, c.kind, lambda policy=policy: policy, c.info))
    except ConfigError:
        raise
    except (*FILE_ERRORS, TypeError, AttributeError) as exc:
        raise ConfigError(f"{run}: {exc}".replace("\n", " ")) from None
    for c in candidates:  # the env every policy file records must be the config's
        recorded = c.make().metadata.get("env_id")
        if recorded is not None and recorded != env_id:
            raise ConfigError(f"{run / 'config.yaml'}: env {env_id!r}, but the policy {c.name!r} records {recorded!r}")
    return cfg, env_id, candidates, online, points, notes


def run_config(run: Path):
    """(config, env id) of a run's ``config.yaml``, each part checked (one line naming what is wrong)."""
    path = run / "config.yaml"
    meta = read_yaml(path)
    if not isinstance(meta.get("config"), dict):
        raise ConfigError(f"{path}: no config section (a truncated file?)")
    if not isinstance(meta.get("env"), str):
        raise ConfigError(f"{path}: no env (a truncated file?)")
    return parse_config(meta["config"], str(path)), meta["env"]


def _saved_points(path: Path) -> list[dict]:
    """The saved points of ``posthoc.pt`` (read with torch's safe loader: tensors and plain data only)."""
    if not path.exists():
        return []
    if not path.is_file():
        raise ConfigError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise ConfigError(f"{path}: empty file (a run's saved points were expected)")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of a foreign file: the error says it
            warnings.simplefilter("ignore")
            saved = torch.load(path, weights_only=True)  # runs no code
    except Exception as exc:  # torch raises many kinds; its message may suggest an unsafe load: never repeat it
        raise ConfigError(f"{path}: damaged or not a run's saved points ({type(exc).__name__})") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("points"), list):
        raise ConfigError(f"{path}: holds no saved points")
    return saved["points"]


def check_result(run: Path) -> dict:
    """``result.json`` of a finished run, with the fields select uses checked."""
    path = run / "result.json"
    if path.exists() and not path.is_file():
        raise ConfigError(f"{path}: not a regular file")
    train = read_json(path)
    if not isinstance(train, dict):
        raise ConfigError(f"{path}: not a run's result")
    steps = train.get("timesteps")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise ConfigError(f"{path}: timesteps must be a positive int (got {steps!r}); is the run finished?")
    for key in ("wall_s", "steps_per_s"):
        value = train.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
            raise ConfigError(f"{path}: {key} must be a finite number (got {value!r})")
    return train


def _load_model(run: Path, cfg):
    from agents.builders import ALGORITHMS

    try:
        return ALGORITHMS[cfg.algo].load(run / "model.zip", device="cpu")  # the run's own file (SB3 unpickles it)
    except Exception as exc:  # SB3 raises many kinds for a damaged zip
        raise ConfigError(f"{run / 'model.zip'}: SB3 cannot load it ({type(exc).__name__})") from None


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


def select_run(
    run: Path, episodes: int = 200, level: float = 0.05, test_episodes: int = 0, on_round=None, rule: str = "fixed"
) -> dict:
    """Choose and write the deployed policy of the finished run ``run``; the content of its ``selection.json``.

    Every input is checked before an episode is played; the three outputs are written to
    temporary files and renamed into place together (signals held meanwhile): the run holds the
    old three or the new three."""
    from agents.envs import make_env
    from rl_swa.deploy import ReusedEnvs, finite_policy, play_episodes, run_selection
    from rl_swa.selection import check_budget, episode_seeds

    train = check_result(run)  # a damaged one: one line, before any episode is played
    cfg, env_id, candidates, online, points, notes = load_candidates(run)
    model = _load_model(run, cfg)  # a damaged one fails here; the deployed weights go into it at the end
    _check_outputs(run)

    def make(n: int, seed: int):
        return make_env(cfg, env_id, n, seed, training=False)

    _check_env(make, online, env_id, run)
    det, base = cfg.eval.deterministic, cfg.eval.seed
    try:
        check_budget(len(candidates), episodes)
    except ValueError as exc:
        raise ConfigError(f"{run}: {exc}") from None
    try:
        policy, result = run_selection(candidates, make, episodes, level, det, base, on_round=on_round, rule=rule)
    except ValueError as exc:  # every candidate broken
        raise ConfigError(f"{run}: {exc}") from None
    out = {
        "run": str(run),
        "env": env_id,
        **result,
        "notes": notes,
        "train_wall_s": training_wall_s(train),  # a resumed run or a forked arm: estimated at its speed
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
        broken = [k for k, p in named.items() if not finite_policy(p)]  # NaN/Inf weights cannot act
        with ReusedEnvs(make) as envs:
            returns = {name: play_episodes(p, envs, seeds, det) for name, p in named.items() if name not in broken}
        out["test"] = {
            "seeds": [seeds[0], seeds[-1]],
            "means": {k: float(np.mean(v)) for k, v in returns.items()},
            "returns": returns,
            "left_out": broken,
            "wall_s": round(time.time() - t0, 1),
        }
    _write_outputs(run, model, policy, out)
    return out


def _check_env(make, online, env_id: str, run: Path) -> None:
    """The config's env must be one the policies can act in (else one line, before playing)."""
    try:
        env = make(1, 0)
    except ConfigError:
        raise
    except Exception as exc:  # e.g. env_type atari on a classic id
        raise ConfigError(f"{run / 'config.yaml'}: env {env_id!r} cannot be made ({type(exc).__name__}: {exc})") from None
    try:
        obs, act = env.observation_space, env.action_space
    finally:
        env.close()
    from rl_swa.sources.algos import same_spaces

    space, action = online.policy.observation_space, online.policy.action_space
    if not same_spaces(obs, act, space, action):
        where = run / "config.yaml"
        raise ConfigError(f"{where}: env {env_id!r} has spaces {obs}, {act}; the policies act in {space}, {action}")


def _check_outputs(run: Path) -> None:
    for name in OUTPUTS:
        path = run / name
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise ConfigError(f"{path}: exists and is not a regular file; move it away")
    if not os.access(run, os.W_OK | os.X_OK):
        raise ConfigError(f"{run}: not writable")


OUTPUTS = ("deployed_policy.safetensors", "deployed_model.zip", "selection.json")


def _write_outputs(run: Path, model, policy, out: dict) -> None:
    """The three outputs to unique temporary files, then renamed into place with signals held."""
    model.policy.load_state_dict(policy.policy.state_dict())
    blobs = {"deployed_model.zip": io.BytesIO()}
    model.save(blobs["deployed_model.zip"])
    tmp = {}
    try:
        for name in OUTPUTS:
            fd, tmp[name] = tempfile.mkstemp(dir=run, prefix=f".{name}.", suffix=f".tmp{Path(name).suffix}")
            os.close(fd)
        policy.save(tmp["deployed_policy.safetensors"])
        Path(tmp["deployed_model.zip"]).write_bytes(blobs["deployed_model.zip"].getvalue())
        Path(tmp["selection.json"]).write_text(json.dumps(finite_json(out), indent=1, allow_nan=False))
        with _signals_held():
            for name in OUTPUTS:
                os.replace(tmp[name], run / name)
    finally:
        for path in tmp.values():
            if os.path.exists(path):
                os.unlink(path)


@contextlib.contextmanager
def _signals_held():
    """SIGINT/SIGTERM arriving inside the block take effect after it (blocking the signal mask would
    not do: another thread of the process, torch's, may take a process-wide signal)."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    got: list[int] = []
    old = {s: signal.signal(s, lambda signum, frame: got.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        for signum in got:
            signal.raise_signal(signum)


def finite_json(obj):
    """``obj`` with every NaN/Inf float as None (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def summary(result: dict) -> str:
    """One line: what was deployed and why."""
    c, default = result["confirmation"], result.get("default", "online")
    why = (
        f"the default {default} holds NaN/Inf weights; the race's leader among the others, without a confirmation"
        if not result.get("default_finite", True)
        else f"the race's leader is the default, {default}"
        if c is None
        else f"leader {c['leader']}: {c['mean_difference']:+.3g} over {default} on {c['pairs']} paired episodes, "
        + (
            f"p {c['p_value']:.3g} against {c['stages'][-1]['nominal_level']:.3g} at stage {len(c['stages'])}, "
            f"{c['stopped']} (sequential, level {result['level']})"
            if c.get("stages")
            else f"lower bound {c['lower_bound']:+.3g}, p {c['p_value']:.3g} (level {result['level']})"
        )
    )
    spent = f"{result['episodes']} of {result['budget']} episodes" if "budget" in result else f"{result['episodes']} episodes"
    if c is None and result.get("default_finite", True) and result.get("leader") == result.get("default"):
        spent += " (no confirmation: the default led the race)"
    return f"deployed: {result['deployed']} ({why}); {spent}, {result['wall_s']} s"
