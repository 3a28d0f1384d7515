"""Checkpoints that continue a run exactly, written atomically, checked on load.

A checkpoint holds the SB3 model (policy, optimizer states, counters, last observation), the
replay buffer (off-policy), the training envs (pickled, so in-progress episodes continue), the RNG
states (python, numpy, torch) and the SWA callback state (averages, counters, evaluation
history). It is taken at a rollout boundary (``_on_rollout_start``: right after ``train()``), the
one point where an SB3 run can be stopped and continued without losing or repeating a step.

File: ``MAGIC`` + SHA-256 of the payload + the pickled payload, written to a temp file and renamed.
A truncated or corrupted file fails the hash check and is never loaded.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import random
import signal
import warnings
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from agents import env_state
from agents.config import ConfigError
from rl_swa.adapters import select_tensors
from rl_swa.averaging import all_finite
from rl_swa.files import atomic_write

MAGIC = b"RLSWA-CKPT-1\n"
VERSION = 1


class Divergence(RuntimeError):
    """Raised out of ``learn()`` when the weights hold NaN/Inf and ``on_divergence="stop"``.

    Raised at the rollout boundary, before the next action is computed from broken weights (SB3
    itself would fail there with a distribution error, or act with NaN)."""

    def __init__(self, step: int):
        super().__init__(step)
        self.step = step

    def __str__(self) -> str:
        return f"weights hold NaN/Inf at step {self.step}"


class CheckpointError(ConfigError):
    """A checkpoint file that cannot be used; the message names the file and the problem."""


def weights_digest(model: BaseAlgorithm) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.policy.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def capture(model: BaseAlgorithm, env: VecEnv, callback_state: dict | None) -> dict[str, Any]:
    buf = io.BytesIO()
    model.save(buf)
    try:
        env_blob = env_state.dumps(env)  # Atari too: emulator states included
    except Exception as exc:  # an env that cannot be pickled: resume resets its episodes
        warnings.warn(
            f"training env cannot be pickled ({type(exc).__name__}); a resume will start new episodes",
            RuntimeWarning,
            stacklevel=2,
        )
        env_blob = None
    return {
        "version": VERSION,
        "algo": type(model).__name__,
        "num_timesteps": int(model.num_timesteps),
        "model_zip": buf.getvalue(),
        "replay_buffer": pickle.dumps(model.replay_buffer) if isinstance(model, OffPolicyAlgorithm) else None,
        "env": env_blob,
        "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
        "callback": callback_state,
        "digest": weights_digest(model),
    }


def write(path: Path, state: dict[str, Any]) -> None:
    payload = pickle.dumps(state)
    atomic_write(path, MAGIC + hashlib.sha256(payload).digest() + payload)


def read(path: Path) -> dict[str, Any]:
    try:
        blob = Path(path).read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc.strerror})") from None
    if not blob.startswith(MAGIC):
        raise CheckpointError(f"{path}: not an rl-swa checkpoint (or from another version)")
    digest, payload = blob[len(MAGIC) : len(MAGIC) + 32], blob[len(MAGIC) + 32 :]
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(f"{path}: truncated or corrupted (checksum mismatch)")
    state = pickle.loads(payload)
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state.get('version')!r} is not supported (expected {VERSION})")
    return state


def checkpoints(folder: Path) -> list[Path]:
    """Checkpoint files (``step_<int>.ckpt``) in ``folder``, newest step first; other names are not ours."""
    found = [p for p in Path(folder).glob("step_*.ckpt") if p.stem.removeprefix("step_").isdigit()]
    return sorted(found, key=lambda p: int(p.stem.removeprefix("step_")), reverse=True)


def latest(folder: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint that reads back whole; a damaged newer one is reported and skipped.
    None when there is none; ``CheckpointError`` when every one is damaged (never a silent restart)."""
    found = checkpoints(folder)
    for i, path in enumerate(found):
        try:
            return path, read(path)
        except CheckpointError as exc:
            if i + 1 == len(found):
                raise CheckpointError(
                    f"{exc}; no readable checkpoint is left in {folder} (remove the run directory to start again)"
                ) from None
            print(f"warning: {exc}; using the previous checkpoint", flush=True)
    return None


def restore(algo_class: type[BaseAlgorithm], state: dict[str, Any], make_env) -> tuple[BaseAlgorithm, VecEnv]:
    """Rebuild the model and its training env from ``state`` and set the RNG states."""
    env = cloudpickle.loads(state["env"]) if state["env"] is not None else make_env()
    model = algo_class.load(io.BytesIO(state["model_zip"]), env=env, device="auto", force_reset=state["env"] is None)
    if state["replay_buffer"] is not None:
        model.replay_buffer = pickle.loads(state["replay_buffer"])
    if weights_digest(model) != state["digest"]:
        raise CheckpointError("checkpoint weights do not read back identically")
    random.setstate(state["rng"]["python"])
    np.random.set_state(state["rng"]["numpy"])
    torch.set_rng_state(state["rng"]["torch"])
    return model, env


class Checkpointer(BaseCallback):
    """Writes a checkpoint every ``every`` env steps, at ``stop_at``, and when SIGINT/SIGTERM arrives.

    After a checkpoint taken for ``stop_at`` or a signal, training stops (``interrupted`` is set
    for a signal). Keeps the newest ``keep`` files. Weights holding NaN/Inf are never saved:
    ends training with ``Divergence`` before the next action (the last good checkpoint stays); the
    run then stops or finishes with its averages (``on_divergence`` of the runner).
    """

    def __init__(self, folder: Path, every: int | None, env: VecEnv, swa=None, stop_at: int | None = None, keep: int = 2):
        super().__init__()
        self.folder = Path(folder)
        self.every = every
        self.env = env
        self.swa = swa
        self.stop_at = stop_at
        self.keep = keep
        self.signal_received: int | None = None
        self.interrupted = False
        self._stop = False
        self._next = None
        self.last_path: Path | None = None
        self.last_step: int | None = None

    def _on_training_start(self) -> None:
        # Checked at every rollout boundary: the tensors that train (DDPG's targets only follow
        # them); all of the policy's, before each save.
        self._trained = list(select_tensors(self.model, "both").values())
        if self.every:
            self._next = (self.num_timesteps // self.every + 1) * self.every

    def request_stop(self, signum, frame) -> None:
        self.signal_received = signum

    def _finite(self, everything: bool = False) -> bool:
        return all_finite(self.model.policy.parameters() if everything else self._trained)

    def _check_finite(self, everything: bool = False) -> None:
        """Raise ``Divergence`` when the weights hold NaN/Inf: they are never checkpointed, nor acted
        with (the SWA average already skips such snapshots)."""
        if not self._finite(everything):
            raise Divergence(int(self.num_timesteps))

    def _on_rollout_start(self) -> None:
        self._check_finite()
        reached_stop = self.stop_at is not None and self.num_timesteps >= self.stop_at
        due = self._next is not None and self.num_timesteps >= self._next
        if not (due or reached_stop or self.signal_received):
            return
        self._check_finite(everything=True)
        self.save()
        if due:
            self._next = (self.num_timesteps // self.every + 1) * self.every
        if reached_stop or self.signal_received:
            self._stop = True
            self.interrupted = self.signal_received is not None

    def save(self) -> Path:
        state = capture(self.model, self.env, None if self.swa is None else self.swa.state_dict())
        path = self.folder / f"step_{self.num_timesteps}.ckpt"
        write(path, state)
        for old in checkpoints(self.folder)[self.keep :]:
            old.unlink(missing_ok=True)
        self.last_path, self.last_step = path, int(self.num_timesteps)
        return path

    def _on_step(self) -> bool:
        return not self._stop


class signals_to:
    """Route SIGINT and SIGTERM to ``checkpointer.request_stop`` inside the block."""

    def __init__(self, checkpointer: Checkpointer):
        self.checkpointer = checkpointer
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self.checkpointer.request_stop)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        return False
