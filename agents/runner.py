"""One training run (config, env, variant, seed, budget) and its run directory.

Layout: ``<root>/<experiment>/<env>/<variant>/seed<k>/`` holding ``config.yaml`` (resolved),
``command.txt``, ``tb/`` (TensorBoard), ``eval.csv``, ``model.zip`` (SB3's format), the online and
averaged policies as ``policy.safetensors`` and ``swa_policy.safetensors``, the further averages as
``average_<name>.safetensors``, the best evaluated online policy (``EvalCallback``'s rule) as
``best_policy.safetensors`` (they load without unpickling: ``rl_swa.SWAPolicy.load``) and, written
atomically at the very end, ``result.json``. A forked pair shares a prefix run in
``<root>/<experiment>/<env>/prefix/seed<k>/`` trained once up to the SWA start.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import yaml
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.logger import configure
from stable_baselines3.common.utils import set_random_seed

from agents import checkpoint, provenance
from agents.builders import ALGORITHMS, PrefixEvaluation, build_callback, build_model, check_buildable, variant_callbacks
from agents.config import ConfigError, ExperimentConfig
from agents.envs import make_env
from agents.progress import ProgressFile
from agents.sb3_checkpoints import FOLDER as SB3_FOLDER
from agents.sb3_checkpoints import StepCheckpoints
from rl_swa.config import resolve_steps
from rl_swa.evaluation import SWAEvaluation
from rl_swa.files import atomic_write
from rl_swa.normalization import ObsNormalizer
from rl_swa.policy import SWAPolicy
from rl_swa.swag import SWAGRecorder


def env_slug(env_id: str) -> str:
    return env_id.replace("/", "_")


def run_dir(root: str | Path, cfg: ExperimentConfig, env_id: str, variant: str, seed: int) -> Path:
    return Path(root) / cfg.experiment / env_slug(env_id) / variant / f"seed{seed}"


@contextmanager
def locked(path: Path):
    """Hold an exclusive lock on the run directory ``path`` (a hidden sibling file, so that
    ``--overwrite`` can hold it while it replaces the directory). The OS releases it when the
    process ends, however it ends; a clean release removes the file. The lock file holds the
    holder's pid, named in a refusal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.parent / f".{path.name}.lock"
    while True:
        fd = os.open(name, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise ConfigError(f"{path} is in use by {_process(holder)}; wait for it to end or stop it") from None
        try:  # the file may have been removed by the holder that just released it: lock the one at the path
            if os.stat(name).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    try:
        yield
    finally:
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass
        os.close(fd)


def _process(pid: str) -> str:
    """``process PID (its command)`` for the pid a lock file holds, as far as /proc tells."""
    if not pid.isdigit():
        return "another process (a run or grid writing it)"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        command = ""
    return f"process {pid}" + (f" ({command[:120]})" if command else "")


def _prepare_dir(path: Path, overwrite: bool) -> None:
    if path.exists():
        if not overwrite:
            raise ConfigError(f"run directory {path} exists; pass --overwrite to replace it (or remove it)")
        shutil.rmtree(path)
    path.mkdir(parents=True)


def _resolved(cfg: ExperimentConfig, **extra) -> str:
    return yaml.safe_dump({**extra, **provenance.stamp(cfg), "config": cfg.model_dump(mode="json")}, sort_keys=False)


class RunStopped(Exception):
    """A run that stopped before its end. The constructor's arguments are the exception's ``args``,
    so it pickles back whole across a process boundary (a worker of ``compare.py``)."""

    def __init__(self, path: Path, step: int, checkpoint: Path | None):
        super().__init__(path, step, checkpoint)
        self.path, self.step, self.checkpoint = path, step, checkpoint


class Diverged(RunStopped):
    """Training stopped because the weights went NaN/Inf (``on_divergence: stop``)."""

    def __str__(self) -> str:
        kept = f"last good checkpoint {self.checkpoint}" if self.checkpoint else "no checkpoint was written before"
        return f"{self.path}: weights hold NaN/Inf at step {self.step}; training stopped; {kept}"


class Interrupted(RunStopped):
    """Training stopped on SIGINT/SIGTERM after writing a checkpoint."""

    def __str__(self) -> str:
        return f"interrupted at step {self.step}; checkpoint {self.checkpoint}"


def _checkpoint_every(cfg: ExperimentConfig, budget: str) -> int:
    b = cfg.budget(budget)
    return b.checkpoint_every or max(b.eval_freq, b.timesteps // 10)


def _restore(cfg: ExperimentConfig, env_id: str, seed: int, state: dict, swa):
    """Model, training env and SWA callback state from a checkpoint (a prefix or the run's own)."""
    model, env = checkpoint.restore(
        ALGORITHMS[cfg.algo], state, lambda: make_env(cfg, env_id, cfg.n_envs, seed, training=True)
    )
    swa.init_callback(model)
    swa.load_state_dict(state["callback"])
    return model, env


def train_prefix(cfg: ExperimentConfig, env_id: str, seed: int, budget: str, root: str | Path, command: str = "") -> Path:
    """Train up to the SWA start once; the checkpoint both arms of a forked pair continue from.

    The prefix checkpoints like any run, so an interrupted prefix continues where it stopped.
    """
    path = run_dir(root, cfg, env_id, "prefix", seed)
    final = path / "prefix.ckpt"
    provenance.check_same(path, cfg)  # never fork from a prefix made with another config or code
    if final.exists():
        checkpoint.read(final)  # damaged -> CheckpointError naming the file
        return final
    with locked(path):
        return _train_prefix(cfg, env_id, seed, budget, root, command, path, final)


def _train_prefix(cfg, env_id, seed, budget, root, command, path, final) -> Path:
    b = cfg.budget(budget)
    t0 = time.time()
    eval_env = make_env(cfg, env_id, 1, cfg.eval.seed, training=False)
    swa = build_callback(cfg, "baseline", eval_env, b.eval_freq, b.eval_episodes)
    found = checkpoint.latest(path / "ckpt") if (path / "config.yaml").exists() else None
    if found is None:
        if path.exists():
            shutil.rmtree(path)  # started but never checkpointed: start again
        path.mkdir(parents=True)
        atomic_write(path / "config.yaml", _resolved(cfg, env=env_id, variant="prefix", seed=seed, budget=budget))
        atomic_write(path / "command.txt", command + "\n")
        set_random_seed(seed)
        env = make_env(cfg, env_id, cfg.n_envs, seed, training=True)
        model = build_model(cfg, budget, env, seed)
    else:
        model, env = _restore(cfg, env_id, seed, found[1], swa)
        print(f"resuming {path} from {found[0].name}", flush=True)
    model.set_logger(configure(str(path / "tb"), ["tensorboard"]))
    start_step = resolve_steps(cfg.swa.start, b.timesteps)
    evaluation = swa.component(PrefixEvaluation)
    if evaluation is not None:
        evaluation.ends_at = start_step
    saver = checkpoint.Checkpointer(path / "ckpt", _checkpoint_every(cfg, budget), env, swa, stop_at=start_step)
    try:
        with checkpoint.signals_to(saver):
            callbacks = CallbackList([swa, *_sb3_checkpoints(cfg, "prefix", path), saver, ProgressFile(path, start_step)])
            model.learn(b.timesteps - int(model.num_timesteps), callback=callbacks, reset_num_timesteps=found is None)
    finally:
        env.close()
        eval_env.close()
    if saver.interrupted:
        raise Interrupted(path, saver.last_step, saver.last_path)
    if saver.last_step is None or saver.last_step < start_step:
        raise RuntimeError(f"{path}: training ended before the SWA start; no prefix checkpoint")
    os.replace(saver.last_path, final)
    # wall time of the session that finished the prefix (the whole prefix unless it was resumed)
    atomic_write(
        path / "prefix.json",
        json.dumps({"step": saver.last_step, "wall_s": round(time.time() - t0, 1), "resumed": found is not None}),
    )
    return final


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
    resume: bool = False,
) -> dict[str, Any]:
    """Train one run and write its directory; return the result (also in ``result.json``).

    ``resume=True`` continues the run directory from its newest readable checkpoint (from the
    start if it has none). On SIGINT/SIGTERM a checkpoint is written and ``Interrupted`` raised.
    """
    if variant not in cfg.variants:
        raise ConfigError(f"--variant: {variant!r} is not one of the config's variants; allowed: {', '.join(cfg.variants)}")
    cfg.budget(budget)
    path = run_dir(root, cfg, env_id, variant, seed)
    probe = make_env(cfg, env_id, 1, 0, training=True)  # bad env id / missing ROMs / settings SB3 refuses: fail before writing
    try:
        check_buildable(cfg, budget, probe)
    finally:
        probe.close()
    if path.exists() and not (resume or overwrite):
        raise ConfigError(f"run directory {path} exists; pass --overwrite to replace it (or remove it)")
    if resume:
        provenance.check_same(path, cfg)
    with locked(path):
        return _run(cfg, env_id, variant, seed, budget, root, command, overwrite, fork, progress, resume, path)


def _run(cfg, env_id, variant, seed, budget, root, command, overwrite, fork, progress, resume, path) -> dict[str, Any]:
    b = cfg.budget(budget)
    found = checkpoint.latest(path / "ckpt") if resume else None
    prefix = None if found else _first_start(cfg, env_id, variant, seed, budget, root, command, overwrite, fork, resume, path)
    history = (path / "command.txt").read_text() if resume and (path / "command.txt").is_file() else ""
    atomic_write(path / "command.txt", history + command + "\n")  # every command that worked on the run

    t0 = time.time()
    eval_env = make_env(cfg, env_id, 1, cfg.eval.seed, training=False)
    swa = build_callback(cfg, variant, eval_env, b.eval_freq, b.eval_episodes)
    source = found[1] if found else (checkpoint.read(prefix) if prefix else None)
    if source is None:
        set_random_seed(seed)
        env = make_env(cfg, env_id, cfg.n_envs, seed, training=True)
        model = build_model(cfg, budget, env, seed)
    else:
        model, env = _restore(cfg, env_id, seed, source, swa)
        if found:
            print(f"resuming {path} from {found[0].name} (step {source['num_timesteps']})", flush=True)
    fork_step, fork_digest = _record_fork(path, found, prefix, source)
    model.set_logger(configure(str(path / "tb"), ["tensorboard"]))
    saver = checkpoint.Checkpointer(path / "ckpt", _checkpoint_every(cfg, budget), env, swa)
    start_steps = int(model.num_timesteps)
    diverged_at = _learn(cfg, variant, b.timesteps, model, env, eval_env, swa, saver, path, source is None, progress)
    wall = time.time() - t0
    rows = _save_outputs(path, model, env, env_id, swa)
    result = {
        "experiment": cfg.experiment,
        "env": env_id,
        "variant": variant,
        "seed": seed,
        "budget": budget,
        "timesteps": int(model.num_timesteps),
        "fork": fork,
        "fork_step": fork_step,
        "fork_digest": fork_digest,
        **_final_scores(rows[-1] if rows else {}),
        "diverged_at": diverged_at,
        "n_averaged": swa.average.n_averaged,
        "skipped": swa.average.n_skipped,
        "resumed_from": int(source["num_timesteps"]) if found else None,
        "wall_s": round(wall, 1),
        "steps_per_s": round((model.num_timesteps - start_steps) / max(wall, 1e-9), 1),
        "device": str(model.device),
        "torch": torch.__version__,
        **provenance.stamp(cfg),
    }
    atomic_write(path / "result.json", json.dumps(result, indent=1, allow_nan=False))  # strict JSON
    env.close()
    eval_env.close()
    if cfg.select is not None:  # the policy to deploy, chosen from what the run saved
        from agents.deploy import select_run, summary

        s = cfg.select
        print(f"{path}: {summary(select_run(path, s.episodes, s.level, s.test_episodes, rule=s.rule))}", flush=True)
    return result


def _first_start(cfg, env_id, variant, seed, budget, root, command, overwrite, fork, resume, path) -> Path | None:
    """Train (or find) the prefix of a forked arm and write the run's resolved config; the prefix's checkpoint."""
    prefix = train_prefix(cfg, env_id, seed, budget, root, command) if fork else None
    if not resume:
        _prepare_dir(path, overwrite)
    seeding = {"train": seed, "eval": cfg.eval.seed}
    resolved = _resolved(cfg, env=env_id, variant=variant, seed=seed, budget=budget, fork=fork, seeding=seeding)
    atomic_write(path / "config.yaml", resolved)
    return prefix


def _final_scores(final: dict) -> dict:
    """final_online, final_swa and final_<average> from the last evaluation row."""
    extra = {
        f"final_{k.removesuffix('_mean_reward')}": v
        for k, v in final.items()
        if k.endswith("_mean_reward") and k not in ("online_mean_reward", "swa_mean_reward")
    }
    return {"final_online": final.get("online_mean_reward"), "final_swa": final.get("swa_mean_reward"), **extra}


def _sb3_checkpoints(cfg: ExperimentConfig, variant: str, path: Path) -> list:
    """The SB3 checkpoint saver of this run, if the config asks for one (before the Checkpointer, so
    that a prefix saves its last step before it stops)."""
    s = cfg.sb3_checkpoints
    if s is None or (variant != "prefix" and variant not in s.variants):
        return []
    return [StepCheckpoints(path / SB3_FOLDER, s.every)]


def _record_fork(path: Path, found, prefix, source) -> tuple:
    """(fork step, prefix digest) of a forked arm, written to its config.yaml at its first start."""
    if found:  # keep what the first start recorded about its fork
        previous = yaml.safe_load((path / "config.yaml").read_text())
        return previous.get("fork_step"), previous.get("fork_digest")
    if not prefix:
        return None, None
    fork_step, fork_digest = source["num_timesteps"], source["digest"]
    data = yaml.safe_load((path / "config.yaml").read_text())
    atomic_write(
        path / "config.yaml", yaml.safe_dump({**data, "fork_step": fork_step, "fork_digest": fork_digest}, sort_keys=False)
    )
    return fork_step, fork_digest


def _learn(cfg, variant, timesteps, model, env, eval_env, swa, saver, path, fresh, progress) -> int | None:
    """Train to ``timesteps``; the step where the weights diverged (on_divergence=finish), else None.
    Raises Diverged (on_divergence=stop) or Interrupted (a signal: a checkpoint was written)."""
    diverged_at = None
    try:
        with checkpoint.signals_to(saver):
            own = [*_sb3_checkpoints(cfg, variant, path), saver, ProgressFile(path, timesteps)]
            callbacks = CallbackList([swa, *own, *variant_callbacks(cfg, variant, swa)])
            model.learn(
                timesteps - int(model.num_timesteps), callback=callbacks, reset_num_timesteps=fresh, progress_bar=progress
            )
    except checkpoint.Divergence as exc:
        diverged_at = exc.step
        if cfg.on_divergence == "stop":
            env.close()
            eval_env.close()
            previous = checkpoint.checkpoints(path / "ckpt")
            raise Diverged(path, exc.step, previous[0] if previous else None) from None
        print(
            f"warning: weights hold NaN/Inf at step {exc.step}; finishing the run with its averages (on_divergence=finish)",
            flush=True,
        )
        swa.on_training_end()  # final evaluation (the averages; the online policy is broken) and clean-up
    if saver.interrupted:
        env.close()
        eval_env.close()
        raise Interrupted(path, saver.last_step, saver.last_path)
    return diverged_at


def _save_outputs(path: Path, model, env, env_id: str, swa) -> list[dict]:
    """model.zip, the online and averaged policies, posthoc.pt, eval.csv; returns the evaluation rows."""
    model.save(path / "model.zip")  # SB3's format (trusted files only: it unpickles)
    SWAPolicy(
        model.policy,
        {"algorithm": type(model).__name__, "num_timesteps": int(model.num_timesteps), "env_id": env_id, "weights": "online"},
        ObsNormalizer.from_env(env),
    ).save(path / "policy.safetensors")
    if swa.has_snapshot:
        swa.policy.save(path / "swa_policy.safetensors")
    for name, average in swa.extra.items():  # the further averages: candidates of `rl-swa select`
        if average.n_updates and average.n_averaged:
            swa.policy_of(name).save(path / f"average_{name}.safetensors")
    evaluation = swa.component(SWAEvaluation)
    best = evaluation.best_policy() if evaluation is not None else None
    if best is not None:  # what SB3's EvalCallback(best_model_save_path=...) would keep
        best.metadata["env_id"] = env_id
        best.save(path / "best_policy.safetensors")
    swag = swa.component(SWAGRecorder)
    if swag is not None and swag.n_columns >= 2:
        swag.policy().save(path / "swag_policy.safetensors")
    if swa.posthoc:
        blob = io.BytesIO()
        torch.save({"points": swa.posthoc, "start_step": swa.start_step, "update_every": swa.update_every}, blob)
        atomic_write(path / "posthoc.pt", blob.getvalue())
    rows = swa.evaluations
    buf = io.StringIO()
    fields = sorted({k for r in rows for k in r}, key=lambda k: (k != "step", k))
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path / "eval.csv", buf.getvalue())
    return rows
