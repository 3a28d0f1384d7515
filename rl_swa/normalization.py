"""The observation normalization a policy was trained and evaluated with, carried by the policy.

SB3 keeps it outside the policy, in ``VecNormalize``: a policy saved without it acts on raw
observations as if they were normalized. ``ObsNormalizer`` is a frozen copy of VecNormalize's
observation statistics that applies the same transformation (``VecNormalize.normalize_obs``).
"""

from __future__ import annotations

import json
from copy import deepcopy
from dataclasses import dataclass

import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv, VecNormalize, unwrap_vec_normalize

PREFIX = "obs_norm"


@dataclass
class ObsNormalizer:
    """``clip((obs - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)`` as float32, per key for dict
    observations (key ``None`` for array observations)."""

    mean: dict[str | None, np.ndarray]
    var: dict[str | None, np.ndarray]
    clip_obs: float
    epsilon: float

    @classmethod
    def from_env(cls, env: VecEnv | None) -> ObsNormalizer | None:
        """The current observation statistics of the VecNormalize in ``env``'s wrappers, or None."""
        norm = unwrap_vec_normalize(env)
        if norm is None or not norm.norm_obs:
            return None
        rms = norm.obs_rms if isinstance(norm.obs_rms, dict) else {None: norm.obs_rms}
        return cls(
            {k: r.mean.copy() for k, r in rms.items()},
            {k: r.var.copy() for k, r in rms.items()},
            float(norm.clip_obs),
            float(norm.epsilon),
        )

    def __call__(self, obs):
        if None in self.mean:
            return self._one(obs, None)
        obs = dict(obs)
        for key in self.mean:
            obs[key] = self._one(obs[key], key)
        return obs

    def _one(self, x, key):
        x = (np.asarray(x) - self.mean[key]) / np.sqrt(self.var[key] + self.epsilon)
        return np.clip(x, -self.clip_obs, self.clip_obs).astype(np.float32)

    # ------------------------------------------------------------------ in a safetensors file
    def tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        for key in self.mean:
            name = PREFIX if key is None else f"{PREFIX}.{key}"
            out[f"{name}.mean"] = torch.from_numpy(np.ascontiguousarray(self.mean[key]))
            out[f"{name}.var"] = torch.from_numpy(np.ascontiguousarray(self.var[key]))
        return out

    def header(self) -> str:
        return json.dumps({"keys": list(self.mean), "clip_obs": self.clip_obs, "epsilon": self.epsilon})

    @classmethod
    def from_file(cls, header: str, tensors: dict[str, torch.Tensor]) -> ObsNormalizer:
        h = json.loads(header)
        names = {key: PREFIX if key is None else f"{PREFIX}.{key}" for key in h["keys"]}
        return cls(
            {k: tensors[f"{n}.mean"].numpy() for k, n in names.items()},
            {k: tensors[f"{n}.var"].numpy() for k, n in names.items()},
            float(h["clip_obs"]),
            float(h["epsilon"]),
        )


def normalized_eval_env(train_env: VecEnv | None, eval_env: VecEnv) -> VecEnv:
    """``eval_env`` wrapped in a non-training VecNormalize like the one of ``train_env`` (if it has
    one and ``eval_env`` has none); raw rewards either way."""
    train = unwrap_vec_normalize(train_env)
    if train is None or unwrap_vec_normalize(eval_env) is not None:
        return eval_env
    return VecNormalize(
        eval_env,
        training=False,
        norm_obs=train.norm_obs,
        norm_reward=False,
        clip_obs=train.clip_obs,
        epsilon=train.epsilon,
        norm_obs_keys=train.norm_obs_keys,
    )


def sync_obs_statistics(train_env: VecEnv | None, eval_env: VecEnv) -> None:
    """Copy the training env's observation statistics into the eval env's VecNormalize, frozen there
    (what SB3's EvalCallback does before each evaluation)."""
    train, evaluation = unwrap_vec_normalize(train_env), unwrap_vec_normalize(eval_env)
    if train is not None and evaluation is not None:
        evaluation.obs_rms = deepcopy(train.obs_rms)
        evaluation.training = False
        evaluation.norm_reward = False
