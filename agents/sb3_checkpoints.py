"""SB3 checkpoint zips along a run's trajectory, as a user's own ``CheckpointCallback`` leaves them.

A run with ``sb3_checkpoints: {every: N}`` writes ``sb3_checkpoints/rl_model_<step>_steps.zip``
(and ``rl_model_vecnormalize_<step>_steps.pkl`` under ``normalize: true``) every N env steps: the
folder a plain SB3 user has, which ``rl-swa select`` can take as a source of its own. The prefix of
a forked pair saves too, so the baseline arm's folder plus its prefix's is the whole trajectory.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from stable_baselines3.common.callbacks import CheckpointCallback

from rl_swa.files import atomic_write

FOLDER = "sb3_checkpoints"


class StepCheckpoints(CheckpointCallback):
    """SB3's ``CheckpointCallback`` (its file names, ``save_vecnormalize``), saving at multiples of
    ``every`` env steps rather than every ``save_freq`` calls: a resumed run (a new callback, its
    call counter at zero) saves at the same steps as one that never stopped. Files are written
    atomically, so a run killed mid-save leaves no half zip."""

    def __init__(self, save_path: str | Path, every: int, verbose: int = 0):
        super().__init__(save_freq=every, save_path=str(save_path), save_vecnormalize=True, verbose=verbose)
        self.every = every

    def _on_step(self) -> bool:
        n_envs = self.training_env.num_envs if self.training_env is not None else 1
        if self.num_timesteps % self.every < n_envs:  # a multiple of `every` was reached by this step
            self.save()
        return True

    def save(self) -> Path:
        path = Path(self._checkpoint_path(extension="zip"))
        blob = io.BytesIO()
        self.model.save(blob)
        atomic_write(path, blob.getvalue())
        vec_normalize = self.model.get_vec_normalize_env()
        if vec_normalize is not None:
            stats = Path(self._checkpoint_path("vecnormalize_", extension="pkl"))
            fd, tmp = tempfile.mkstemp(dir=stats.parent, prefix=f".{stats.name}.", suffix=".tmp")
            os.close(fd)
            try:
                vec_normalize.save(tmp)  # SB3's own format (a pickle, as SB3 users read it)
                os.replace(tmp, stats)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        return path
