"""Environment factories for the three families of configs (classic control, Atari, MuJoCo)."""

from __future__ import annotations

import gymnasium as gym
from stable_baselines3.common.env_util import make_atari_env, make_vec_env
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack, VecNormalize, VecTransposeImage

from agents.config import ConfigError, ExperimentConfig


def _register_atari() -> None:
    try:
        import ale_py
        import cv2  # noqa: F401  (SB3's Atari wrappers need OpenCV)
    except ImportError as exc:
        raise ConfigError(f"env_type atari: {exc.name} is not installed; pip install 'rl-swa[atari]'") from None
    gym.register_envs(ale_py)


def check_env_id(cfg: ExperimentConfig, env_id: str) -> None:
    """Raise ConfigError if ``env_id`` cannot be made here (unknown id, missing ROMs or MuJoCo)."""
    if cfg.env_type == "atari":
        _register_atari()
    if cfg.env_type == "mujoco":
        try:
            import mujoco  # noqa: F401
        except ImportError:
            raise ConfigError("env_type mujoco: the mujoco package is not installed; pip install 'rl-swa[mujoco]'") from None
    if env_id not in gym.registry:
        raise ConfigError(f"env {env_id!r}: not a registered gymnasium env id")


def make_env(cfg: ExperimentConfig, env_id: str, n_envs: int, seed: int, training: bool) -> VecEnv:
    """A seeded VecEnv. Atari: ``ALE/<Game>-v5`` with frameskip=1 under SB3's AtariWrapper
    (frame skip 4, no-op reset, 84x84 grey), ``sticky_actions`` as configured, frame stack
    ``frame_stack``; life loss as terminal and reward clipping in training only. Evaluation
    returns are the raw full-episode returns that Monitor records under the wrappers. With
    ``normalize`` (classic control, MuJoCo) the training env is wrapped in ``VecNormalize``."""
    check_env_id(cfg, env_id)
    if cfg.env_type != "atari":
        env = make_vec_env(env_id, n_envs=n_envs, seed=seed)
        # evaluation envs stay raw: SWACallback evaluates with the training env's statistics
        return VecNormalize(env, gamma=cfg.hyperparams.get("gamma", 0.99)) if cfg.normalize and training else env
    env = make_atari_env(
        env_id,
        n_envs=n_envs,
        seed=seed,
        env_kwargs={"frameskip": 1, "repeat_action_probability": cfg.sticky_actions, "full_action_space": False},
        wrapper_kwargs={"terminal_on_life_loss": training, "clip_reward": training},
    )
    return VecTransposeImage(VecFrameStack(env, n_stack=cfg.frame_stack))
