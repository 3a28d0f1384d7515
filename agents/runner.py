"""One training run (config, env, variant, seed, budget) and its run directory.

Layout: ``<root>/<experiment>/<env>/<variant>/seed<k>/`` holding ``config.yaml`` (resolved),
``command.txt``, ``tb/`` (TensorBoard), ``eval.csv``, ``model.zip``, ``swa_policy.zip`` and, written
atomically at the very end, ``result.json``. A forked pair shares a prefix run in
``<root>/<experiment>/<env>/prefix/seed<k>/`` trained once up to the SWA start.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import pickle
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import configure
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.utils import set_random_seed

from agents.builders import ALGORITHMS, VARIANTS, build_callback, build_model
from agents.config import ConfigError, ExperimentConfig
from agents.envs import make_env
from rl_swa.callback import resolve_steps

CUSTOM_SCALARS = {
    "SWA": {
        "eval reward: online vs averaged": ["Multiline", ["eval/online_mean_reward", "eval/swa_mean_reward"]],
        "distance online - average": ["Multiline", ["swa/distance"]],
    }
}


def env_slug(env_id: str) -> str:
    return env_id.replace("/", "_")


def run_dir(root: str | Path, cfg: ExperimentConfig, env_id: str, variant: str, seed: int) -> Path:
    return Path(root) / cfg.experiment / env_slug(env_id) / variant / f"seed{seed}"


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write via a temp file in the same folder + rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_custom_scalars(experiment_dir: Path) -> None:
    """A TensorBoard custom-scalars layout overlaying online and averaged evaluation reward."""
    from torch.utils.tensorboard import SummaryWriter

    layout_dir = experiment_dir / "_layout"
    if layout_dir.exists():
        return
    with SummaryWriter(str(layout_dir)) as writer:
        writer.add_custom_scalars(CUSTOM_SCALARS)


def weights_digest(model) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.policy.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


class _StopAt(BaseCallback):
    """Stops training once ``num_timesteps`` reaches ``step`` (the fork point)."""

    def __init__(self, step: int):
        super().__init__()
        self.step = step

    def _on_step(self) -> bool:
        return self.num_timesteps < self.step


def _rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def _prepare_dir(path: Path, overwrite: bool) -> None:
    if path.exists():
        if not overwrite:
            raise ConfigError(f"run directory {path} exists; pass --overwrite to replace it (or remove it)")
        shutil.rmtree(path)
    path.mkdir(parents=True)


def _resolved(cfg: ExperimentConfig, **extra) -> str:
    return yaml.safe_dump({**extra, "config": cfg.model_dump(mode="json")}, sort_keys=False)


def _envs(cfg, env_id, seed, budget):
    env = make_env(cfg, env_id, cfg.n_envs, seed, training=True)
    eval_env = make_env(cfg, env_id, 1, cfg.eval.seed, training=False)
    return env, eval_env


def train_prefix(cfg: ExperimentConfig, env_id: str, seed: int, budget: str, root: str | Path, command: str = "") -> Path:
    """Train up to the SWA start once; the checkpoint both arms of a forked pair continue from."""
    path = run_dir(root, cfg, env_id, "prefix", seed)
    ckpt = path / "prefix.pkl"
    if ckpt.exists():
        return ckpt
    b = cfg.budget(budget)
    if path.exists():
        shutil.rmtree(path)  # an unfinished prefix: start it again
    path.mkdir(parents=True)
    atomic_write(path / "config.yaml", _resolved(cfg, env=env_id, variant="prefix", seed=seed, budget=budget))
    atomic_write(path / "command.txt", command + "\n")
    set_random_seed(seed)
    env, eval_env = _envs(cfg, env_id, seed, budget)
    model = build_model(cfg, budget, env, seed)
    model.set_logger(configure(str(path / "tb"), ["tensorboard"]))
    start_step = resolve_steps("start", cfg.swa.start, b.timesteps)
    swa = build_callback(cfg, "baseline", eval_env, b.eval_freq, b.eval_episodes)
    model.learn(b.timesteps, callback=CallbackList([swa, _StopAt(start_step)]))
    buf = io.BytesIO()
    model.save(buf)
    state = {
        "model_zip": buf.getvalue(),
        "replay_buffer": pickle.dumps(model.replay_buffer) if isinstance(model, OffPolicyAlgorithm) else None,
        "rng": _rng_state(),
        "callback": swa.state_dict(),
        "num_timesteps": int(model.num_timesteps),
        "digest": weights_digest(model),
    }
    atomic_write(ckpt, pickle.dumps(state))
    env.close()
    eval_env.close()
    return ckpt


def run(
    cfg: ExperimentConfig,
    env_id: str,
    variant: str,
    seed: int,
    budget: str,
    root: str | Path = "runs",
    command: str = "",
    overwrite: bool = False,
    fork: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Train one run and write its directory; return the result (also in ``result.json``)."""
    if variant not in VARIANTS:
        raise ConfigError(f"--variant: {variant!r} is not supported; allowed: {', '.join(VARIANTS)}")
    b = cfg.budget(budget)
    path = run_dir(root, cfg, env_id, variant, seed)
    make_env(cfg, env_id, 1, 0, training=False).close()  # bad env id / missing ROMs: fail before writing
    prefix = train_prefix(cfg, env_id, seed, budget, root, command) if fork else None
    _prepare_dir(path, overwrite)
    write_custom_scalars(Path(root) / cfg.experiment)
    atomic_write(path / "config.yaml", _resolved(cfg, env=env_id, variant=variant, seed=seed, budget=budget, fork=fork,
                                                 seeding={"train": seed, "eval": cfg.eval.seed}))
    atomic_write(path / "command.txt", command + "\n")

    t0 = time.time()
    set_random_seed(seed)
    env, eval_env = _envs(cfg, env_id, seed, budget)
    swa = build_callback(cfg, variant, eval_env, b.eval_freq, b.eval_episodes)
    fork_digest = None
    if prefix is None:
        model = build_model(cfg, budget, env, seed)
    else:
        state = pickle.loads(prefix.read_bytes())
        model = ALGORITHMS[cfg.algo].load(io.BytesIO(state["model_zip"]), env=env, device="auto")
        if state["replay_buffer"] is not None:
            model.replay_buffer = pickle.loads(state["replay_buffer"])
        fork_digest = weights_digest(model)
        if fork_digest != state["digest"]:
            raise RuntimeError(f"{prefix}: the loaded prefix weights differ from those saved")
        _set_rng_state(state["rng"])
        swa.init_callback(model)
        swa.load_state_dict(state["callback"])
    model.set_logger(configure(str(path / "tb"), ["tensorboard"]))
    start_steps = int(model.num_timesteps)
    model.learn(b.timesteps - start_steps, callback=swa, reset_num_timesteps=prefix is None, progress_bar=progress)
    wall = time.time() - t0

    model.save(path / "model.zip")
    if swa.has_snapshot:
        swa.policy.save(path / "swa_policy.zip")
    rows = swa.evaluations
    buf = io.StringIO()
    fields = sorted({k for r in rows for k in r}, key=lambda k: (k != "step", k))
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path / "eval.csv", buf.getvalue())
    final = rows[-1] if rows else {}
    result = {
        "experiment": cfg.experiment, "env": env_id, "variant": variant, "seed": seed, "budget": budget,
        "timesteps": int(model.num_timesteps), "fork": fork, "fork_step": start_steps if prefix else None,
        "fork_digest": fork_digest, "final_online": final.get("online_mean_reward"), "final_swa": final.get("swa_mean_reward"),
        "n_averaged": swa.average.n_averaged, "skipped": swa.average.n_skipped,
        "wall_s": round(wall, 1), "steps_per_s": round((model.num_timesteps - start_steps) / max(wall, 1e-9), 1),
        "device": str(model.device), "torch": torch.__version__,
    }
    atomic_write(path / "result.json", json.dumps(result, indent=1))
    env.close()
    eval_env.close()
    return result
