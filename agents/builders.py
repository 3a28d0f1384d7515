"""Ready-made agents: A2C and DDPG built from a config, each with its SWA callback.

Variants: ``baseline`` keeps the config's LR and an eval-only average of its own trajectory;
``swa`` adds the config's SWA-phase LR schedule; ``act_avg`` collects experience with an average
(``swa.act_with``) and ``reset_avg`` resets the online weights to the average every
``swa.reset_every`` updates, both at the config's LR. Both average the same parts from the same start,
so every run yields a paired online-vs-averaged comparison.
"""

from __future__ import annotations

import numpy as np
import torch
from stable_baselines3 import A2C, DDPG
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
from stable_baselines3.common.vec_env import VecEnv

from agents.config import VARIANTS, ConfigError, ExperimentConfig
from rl_swa import ActWithAverage, ResetToAverage, SWACallback
from rl_swa.evaluation import SWAEvaluation

OPTIMIZERS = {"adam": (torch.optim.Adam, {}), "rmsprop": (RMSpropTFLike, {"alpha": 0.99, "eps": 1e-5, "weight_decay": 0})}
ACTIVATIONS = {
    "tanh": torch.nn.Tanh,
    "relu": torch.nn.ReLU,
    "elu": torch.nn.ELU,
    "leaky_relu": torch.nn.LeakyReLU,
    "gelu": torch.nn.GELU,
}


def _policy_kwargs(cfg: ExperimentConfig) -> dict:
    kwargs = dict(cfg.policy_kwargs)
    if "activation_fn" in kwargs:
        kwargs["activation_fn"] = ACTIVATIONS[kwargs["activation_fn"]]
    return kwargs


def build_a2c(cfg: ExperimentConfig, env: VecEnv, seed: int, tensorboard_log: str | None, hyperparams: dict) -> A2C:
    opt_class, opt_kwargs = OPTIMIZERS[cfg.optimizer]
    policy_kwargs = {"optimizer_class": opt_class, "optimizer_kwargs": opt_kwargs, **_policy_kwargs(cfg)}
    return A2C(
        cfg.policy, env, seed=seed, device="auto", tensorboard_log=tensorboard_log, policy_kwargs=policy_kwargs, **hyperparams
    )


def build_ddpg(cfg: ExperimentConfig, env: VecEnv, seed: int, tensorboard_log: str | None, hyperparams: dict) -> DDPG:
    n_actions = env.action_space.shape[-1]
    noise = None if not cfg.action_noise else NormalActionNoise(np.zeros(n_actions), cfg.action_noise * np.ones(n_actions))
    return DDPG(
        cfg.policy,
        env,
        seed=seed,
        device="auto",
        action_noise=noise,
        tensorboard_log=tensorboard_log,
        policy_kwargs=_policy_kwargs(cfg),
        **hyperparams,
    )


BUILDERS = {"a2c": build_a2c, "ddpg": build_ddpg}
ALGORITHMS = {"a2c": A2C, "ddpg": DDPG}


def build_model(
    cfg: ExperimentConfig, budget: str, env: VecEnv, seed: int, tensorboard_log: str | None = None
) -> BaseAlgorithm:
    """The config's algorithm with its hyperparameters (the budget's overrides applied)."""
    return BUILDERS[cfg.algo](cfg, env, seed, tensorboard_log, cfg.hyperparams_for(budget))


def check_buildable(cfg: ExperimentConfig, budget: str, env: VecEnv) -> None:
    """Build the model once on ``env`` and throw it away: a combination SB3 refuses (a CnnPolicy on
    vector observations, say) becomes one ConfigError before a run directory is written."""
    hyperparams = cfg.hyperparams_for(budget)
    if cfg.algo == "ddpg":
        hyperparams["buffer_size"] = 1  # no replay memory for a check
    try:
        BUILDERS[cfg.algo](cfg, env, 0, None, hyperparams)
    except Exception as exc:  # SB3 raises ValueError, AssertionError, TypeError, ... for settings it cannot use
        raise ConfigError(
            f"config: SB3 cannot build {cfg.algo} with {cfg.policy} here ({type(exc).__name__}: {exc})".replace("\n", " ")
        ) from None


class PrefixEvaluation(SWAEvaluation):
    """A forked pair's prefix stops its learn() at ``ends_at``: no periodic evaluation there, since
    the training-end evaluation scores the same weights."""

    ends_at: int | None = None

    def due(self) -> bool:
        return super().due() and (self.ends_at is None or self.num_timesteps < self.ends_at)


def build_callback(
    cfg: ExperimentConfig, variant: str, eval_env: VecEnv | None, eval_freq: int, eval_episodes: int
) -> SWACallback:
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r} is not supported; allowed: {', '.join(VARIANTS)}")
    s = cfg.swa.library()
    if variant != "swa":  # the config's LR; the same snapshot cadence as the swa arm (a cyclic one: each cycle's end)
        s = s.model_copy(update={"swa_lr": None, "cycle": None, "swa_lr_max": None, "update_every": s.snapshot_every})
    swa = SWACallback(s)
    if eval_env is not None:
        swa.add(PrefixEvaluation(swa, eval_env, eval_freq, eval_episodes, cfg.eval.seed, cfg.eval.deterministic))
    return swa


def variant_callbacks(cfg: ExperimentConfig, variant: str, swa: SWACallback) -> list:
    """What a variant adds to the SWA callback: acting with an average, or resetting to it."""
    s = cfg.swa
    if variant == "act_avg":
        return [ActWithAverage(swa, s.act_with)]
    if variant == "reset_avg":
        return [ResetToAverage(swa, s.reset_every, s.reset_parts, optimizer=s.reset_optimizer)]
    return []
