"""SWAPolicy: an averaged SB3 policy that anyone can load and ``predict`` with."""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.save_util import load_from_zip_file, save_to_zip_file
from stable_baselines3.common.utils import get_device

from rl_swa.averaging import WeightAverage

FORMAT = "rl-swa-policy"
FORMAT_VERSION = 1


class SWAPolicy:
    """An SB3 policy holding averaged weights, with SB3's ``predict`` and a one-file ``save``/``load``.

    The file is SB3's zip format (``save_to_zip_file``): the policy class, its constructor
    arguments (spaces included), the weights and metadata. Loading needs ``rl_swa`` and SB3 only,
    not the environment or the training code.

    :param policy: the SB3 policy whose weights are the averages.
    :param metadata: plain data recorded with it (algorithm, env id, n_averaged, steps, ...).
    """

    def __init__(self, policy: BasePolicy, metadata: dict[str, Any] | None = None):
        if not isinstance(policy, BasePolicy):
            raise ValueError(f"policy is a {type(policy).__name__}, not a stable_baselines3 BasePolicy")
        self.policy = policy
        self.policy.set_training_mode(False)
        self.metadata = dict(metadata or {})

    @classmethod
    def from_model(cls, model: BaseAlgorithm, average: WeightAverage, metadata: dict[str, Any] | None = None) -> SWAPolicy:
        """A fresh copy of ``model.policy`` with ``average`` written into it (the model is left untouched).

        The copy is rebuilt from the policy's constructor arguments: ``deepcopy`` of a trained
        policy fails (it holds the last action distribution) and would copy the optimizer.
        """
        live = model.policy
        policy = type(live)(**live._get_constructor_parameters()).to(live.device)
        policy.load_state_dict(live.state_dict())
        average.copy_to(policy)
        meta = {"algorithm": type(model).__name__, "num_timesteps": int(model.num_timesteps), "n_averaged": average.n_averaged, "mode": average.mode}
        meta.update(metadata or {})
        return cls(policy, meta)

    # ------------------------------------------------------------------ acting
    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Exactly SB3's ``predict`` (single or vectorized observations, images normalized as in training)."""
        return self.policy.predict(observation, state, episode_start, deterministic)

    @property
    def device(self) -> torch.device:
        return self.policy.device

    @property
    def observation_space(self):
        return self.policy.observation_space

    @property
    def action_space(self):
        return self.policy.action_space

    def __repr__(self) -> str:
        return f"SWAPolicy({type(self.policy).__name__}, metadata={self.metadata})"

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write one self-contained file, atomically (temp file + rename). Returns the path written."""
        path = Path(path)
        if path.suffix != ".zip":
            path = path.with_suffix(path.suffix + ".zip") if path.suffix else path.with_suffix(".zip")
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "policy_class": type(self.policy),
            "policy_kwargs": self.policy._get_constructor_parameters(),
            "metadata": self.metadata,
        }
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            save_to_zip_file(tmp, data=data, params={"policy": self.policy.state_dict()})
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str = "auto") -> SWAPolicy:
        """Load a file written by :meth:`save`. A damaged or foreign file raises ``ValueError`` naming it."""
        path = Path(path)
        if not path.exists() and path.with_suffix(".zip").exists():
            path = path.with_suffix(".zip")
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such SWAPolicy file")
        try:
            data, params, _ = load_from_zip_file(path, device=device)
        except (zipfile.BadZipFile, ValueError, EOFError, RuntimeError, KeyError, OSError) as exc:
            raise ValueError(f"{path}: not a readable SWAPolicy file ({type(exc).__name__}: {exc})") from exc
        if not data or data.get("format") != FORMAT:
            raise ValueError(f"{path}: not an SWAPolicy file (format {None if not data else data.get('format')!r}, expected {FORMAT!r})")
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: SWAPolicy format version {data.get('format_version')!r} is not supported (expected {FORMAT_VERSION})")
        if "policy" not in params:
            raise ValueError(f"{path}: SWAPolicy file holds no policy weights")
        try:
            policy = data["policy_class"](**data["policy_kwargs"])
            policy.load_state_dict(params["policy"])
        except (TypeError, RuntimeError, KeyError) as exc:
            raise ValueError(f"{path}: policy weights do not fit the stored policy ({exc})") from exc
        return cls(policy.to(get_device(device)), data.get("metadata"))
