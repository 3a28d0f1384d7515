"""Which tensors of an SB3 algorithm are the actor and the critic, and which optimizer marks an update.

Kept inside ``rl_swa`` (not ``agents/``) so that :class:`rl_swa.SWACallback` works on its own,
for instance when RL Zoo imports it by dotted path.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from stable_baselines3 import A2C, DDPG, DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

PARTS = ("actor", "critic", "both")


@dataclass(frozen=True)
class Adapter:
    """What to average in one algorithm family.

    ``actor`` / ``critic``: name prefixes inside ``model.policy``; a tensor matching both (a
    shared trunk, a Q-network that is the policy) is averaged whenever either part is.
    ``clock``: attribute path of the optimizer whose ``step()`` ends one gradient update (its
    post-step hook takes the snapshots). ``targets``: the algorithm's own Polyak or periodic
    copies, never averaged.
    """

    name: str
    actor: tuple[str, ...]
    critic: tuple[str, ...]
    clock: str
    targets: tuple[str, ...] = ()


_ACTOR_CRITIC = Adapter(
    name="actor-critic (A2C, PPO)",
    # With share_features_extractor=True, ``features_extractor`` is the shared trunk and belongs
    # to both parts; otherwise it is the actor's and ``vf_features_extractor`` the critic's.
    actor=("features_extractor.", "pi_features_extractor.", "mlp_extractor.policy_net.", "action_net.", "log_std"),
    critic=("vf_features_extractor.", "mlp_extractor.value_net.", "value_net."),
    clock="policy.optimizer",
)
# Target networks (``actor_target``, ``critic_target``) are SB3's own Polyak averages: never averaged here.
_OFF_POLICY = Adapter(
    name="actor + critic (DDPG, TD3, SAC)",
    actor=("actor.",),
    critic=("critic.",),
    clock="actor.optimizer",
    targets=("actor_target.", "critic_target."),
)
# DQN acts greedily on its Q-network: the Q-network is actor and critic at once.
_Q_NETWORK = Adapter(
    name="Q-network (DQN)", actor=("q_net.",), critic=("q_net.",), clock="policy.optimizer", targets=("q_net_target.",)
)
_QUANTILE_NETWORK = Adapter(
    name="quantile network (QR-DQN)",
    actor=("quantile_net.",),
    critic=("quantile_net.",),
    clock="policy.optimizer",
    targets=("quantile_net_target.",),
)
_RECURRENT = Adapter(
    name="recurrent actor-critic (RecurrentPPO)",
    actor=(*_ACTOR_CRITIC.actor, "lstm_actor."),
    critic=(*_ACTOR_CRITIC.critic, "lstm_critic."),
    clock="policy.optimizer",
)
# sb3-contrib, by class name (an optional package). CrossQ has BatchNorm layers: the averaged
# policy keeps the live network's running statistics (``update_batch_norm`` recomputes them).
CONTRIB = {"QRDQN": _QUANTILE_NETWORK, "TQC": _OFF_POLICY, "CrossQ": _OFF_POLICY, "RecurrentPPO": _RECURRENT}

# Most specific class first: DDPG subclasses TD3.
ADAPTERS: tuple[tuple[type[BaseAlgorithm], Adapter], ...] = (
    (A2C, _ACTOR_CRITIC),
    (PPO, _ACTOR_CRITIC),
    (DDPG, _OFF_POLICY),
    (TD3, _OFF_POLICY),
    (SAC, _OFF_POLICY),
    (DQN, _Q_NETWORK),
)
SUPPORTED = (*(cls.__name__ for cls, _ in ADAPTERS), *(f"{name} (sb3-contrib)" for name in CONTRIB))


def adapter_for(model: BaseAlgorithm) -> Adapter:
    for cls, adapter in ADAPTERS:
        if isinstance(model, cls):
            return adapter
    for cls in type(model).__mro__:
        if cls.__module__.startswith("sb3_contrib.") and cls.__name__ in CONTRIB:
            return CONTRIB[cls.__name__]
    raise ValueError(f"algorithm {type(model).__name__} is not supported by rl_swa; supported: {', '.join(SUPPORTED)}")


def _shared_trunk(model: BaseAlgorithm) -> bool:
    return bool(getattr(model.policy, "share_features_extractor", False)) and isinstance(model, (A2C, PPO))


def select_tensors(model: BaseAlgorithm, parts: str) -> dict[str, torch.Tensor]:
    """Name (inside ``model.policy``) -> parameter, for ``parts`` in ``actor``, ``critic``, ``both``."""
    if parts not in PARTS:
        raise ValueError(f"parts={parts!r} is not supported; allowed: {', '.join(PARTS)}")
    adapter = adapter_for(model)
    shared = _shared_trunk(model)
    chosen = {}
    for name, param in model.policy.named_parameters():
        if name.startswith(adapter.targets):
            continue
        is_actor = name.startswith(adapter.actor)
        is_critic = name.startswith(adapter.critic) or (shared and name.startswith("features_extractor."))
        if not (is_actor or is_critic):
            is_actor = is_critic = True  # a custom module: it serves both, average it with either
        if parts == "both" or (parts == "actor" and is_actor) or (parts == "critic" and is_critic):
            chosen[name] = param
    return chosen


def clock_optimizer(model: BaseAlgorithm) -> torch.optim.Optimizer:
    obj = model
    for attr in adapter_for(model).clock.split("."):
        obj = getattr(obj, attr)
    return obj


def steps_per_update(model: BaseAlgorithm) -> int:
    """Env steps between two ``train()`` calls (each sets the LR once)."""
    if isinstance(model, OffPolicyAlgorithm):
        freq = model.train_freq
        if freq.unit.value != "step":
            raise ValueError("a cyclic SWA learning rate needs train_freq counted in steps, not episodes")
        return int(freq.frequency) * model.n_envs
    return int(model.n_steps) * model.n_envs
