"""The deployed policy as an ONNX graph that acts like ``model.predict(obs, deterministic=True)``.

SB3's "Exporting models" recipe exports ``model.policy`` alone: observation normalization
(``VecNormalize``) and action post-processing (clipping, or unscaling a squashed action) stay
outside the graph, for the user to write again. :func:`export_onnx` puts both inside: the graph
takes the raw observation (a batch, in the policy's observation layout: channel-first images) and
returns the action ``predict`` returns. ``onnxruntime`` alone runs it (``rl-swa[export]``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import preprocess_obs

from rl_swa.policy import SWAPolicy


class _Acting(torch.nn.Module):
    """normalize -> SB3's preprocessing -> the deterministic action -> clip or unscale (as ``predict``)."""

    def __init__(self, policy: SWAPolicy):
        super().__init__()
        p = policy.policy
        self.policy = p
        obs_space, act_space = p.observation_space, p.action_space
        if not isinstance(obs_space, spaces.Box):
            raise ValueError(f"export: observation space {obs_space} is not supported; a Box is needed")
        if not isinstance(act_space, (spaces.Box, spaces.Discrete)):
            raise ValueError(f"export: action space {act_space} is not supported; allowed: Box, Discrete")
        norm = policy.obs_normalizer
        self.normalized = norm is not None
        if norm is not None:
            self.register_buffer("mean", torch.as_tensor(norm.mean[None], dtype=torch.float64))
            self.register_buffer("std", torch.as_tensor(np.sqrt(norm.var[None] + norm.epsilon), dtype=torch.float64))
            self.clip_obs = float(norm.clip_obs)
        self.discrete = isinstance(act_space, spaces.Discrete)
        if not self.discrete:
            self.register_buffer("low", torch.as_tensor(act_space.low, dtype=torch.float32))
            self.register_buffer("high", torch.as_tensor(act_space.high, dtype=torch.float32))
        self.squashed = bool(getattr(p, "squash_output", False))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.normalized:  # ObsNormalizer: computed in float64 as numpy does, then float32
            obs = torch.clamp((obs.double() - self.mean) / self.std, -self.clip_obs, self.clip_obs).float()
        x = preprocess_obs(obs, self.policy.observation_space, normalize_images=self.policy.normalize_images)
        action = self._action(x)
        if self.discrete:
            return action
        if self.squashed:  # BasePolicy.unscale_action
            return self.low + 0.5 * (action + 1.0) * (self.high - self.low)
        return torch.maximum(torch.minimum(action, self.high), self.low)

    def _action(self, x: torch.Tensor) -> torch.Tensor:
        p = self.policy
        if isinstance(p, ActorCriticPolicy):  # A2C, PPO: the distribution's mode
            features = p.extract_features(x, p.pi_features_extractor)
            out = p.action_net(p.mlp_extractor.forward_actor(features))
            return torch.argmax(out, dim=1) if self.discrete else out
        if hasattr(p, "actor") and hasattr(p.actor, "mu"):  # DDPG, TD3: tanh output in [-1, 1]
            return p.actor(x)
        if hasattr(p, "actor"):  # SAC: the squashed mean
            return p.actor(x, deterministic=True)
        if hasattr(p, "q_net"):  # DQN: the greedy action
            return torch.argmax(p.q_net(x), dim=1)
        raise ValueError(f"export: policy {type(p).__name__} is not supported")


def export_onnx(policy: SWAPolicy | str | Path, path: str | Path) -> Path:
    """Write ``policy`` (an :class:`SWAPolicy` or its ``.safetensors`` file) as an ONNX graph at ``path``."""
    if not isinstance(policy, SWAPolicy):
        policy = SWAPolicy.load(policy, device="cpu")
    module = _Acting(policy).eval()
    space = policy.policy.observation_space
    example = torch.as_tensor(np.stack([space.sample() for _ in range(2)]), dtype=torch.float32)
    path = Path(path)
    with torch.no_grad():
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=["obs"],
            output_names=["action"],
            dynamic_shapes={"obs": {0: torch.export.Dim("batch", min=1)}},
            dynamo=True,
            external_data=False,
        )
    return path


def onnx_predict(path: str | Path, obs: np.ndarray) -> np.ndarray:
    """The actions of the exported graph for a batch of raw observations (``onnxruntime``)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"obs": np.asarray(obs, dtype=np.float32)})[0]
