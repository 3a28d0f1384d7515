"""EnsemblePolicy: several policies acting as one (MultiSWA: the averaged policies of independent seeds)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from gymnasium import spaces

from rl_swa.policy import SWAPolicy


class EnsemblePolicy:
    """Acts with the mean of its members, as one policy with SB3's ``predict``.

    Continuous actions: the mean of the members' actions (each as its ``predict`` returns it, so
    already scaled and clipped to the action space). Discrete actions: the action with the largest
    mean probability (actor-critic policies), or the largest mean Q-value (DQN); with
    ``deterministic=False`` one is sampled from the mean probabilities. Each member applies its own
    observation normalization. Recurrent members are refused (their states would have to be kept
    per member).

    :param members: :class:`SWAPolicy` objects over the same observation and action spaces.
    """

    def __init__(self, members: Sequence[SWAPolicy], seed: int | None = None):
        members = list(members)
        if not members or not all(isinstance(m, SWAPolicy) for m in members):
            raise ValueError("EnsemblePolicy: members must be a non-empty list of SWAPolicy")
        first = members[0]
        for i, m in enumerate(members[1:], 1):
            if m.observation_space != first.observation_space or m.action_space != first.action_space:
                raise ValueError(f"EnsemblePolicy: member {i} has other observation or action spaces than member 0")
        if any(hasattr(m.policy, "lstm_actor") for m in members):
            raise ValueError("EnsemblePolicy: recurrent policies are not supported")
        space = first.action_space
        if isinstance(space, spaces.Discrete):
            for i, m in enumerate(members):
                if not (hasattr(m.policy, "get_distribution") or hasattr(m.policy, "q_net")):
                    raise ValueError(
                        f"EnsemblePolicy: member {i} ({type(m.policy).__name__}) gives neither probabilities nor Q-values"
                    )
        elif not isinstance(space, spaces.Box):
            raise ValueError(f"EnsemblePolicy: action space {type(space).__name__} is not supported; allowed: Box, Discrete")
        self.members = members
        self.rng = np.random.default_rng(seed)

    @classmethod
    def load(cls, paths: Sequence[str | os.PathLike], device: torch.device | str = "auto") -> EnsemblePolicy:
        """An ensemble of the policy files at ``paths`` (see :meth:`SWAPolicy.load`)."""
        return cls([SWAPolicy.load(p, device=device) for p in paths])

    @property
    def observation_space(self):
        return self.members[0].observation_space

    @property
    def action_space(self):
        return self.members[0].action_space

    def __len__(self) -> int:
        return len(self.members)

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = False):
        """SB3's ``predict`` signature; ``state`` is returned as None (no recurrent members)."""
        if isinstance(self.action_space, spaces.Box):
            actions = [m.predict(observation, deterministic=deterministic)[0] for m in self.members]
            return np.mean(actions, axis=0).astype(self.action_space.dtype), None
        scores, vectorized = zip(*(self._scores(m, observation) for m in self.members))
        mean = np.mean(scores, axis=0)  # (n_envs, n_actions)
        if deterministic or any(hasattr(m.policy, "q_net") for m in self.members):
            actions = mean.argmax(axis=1)
        else:
            actions = np.array([self.rng.choice(len(p), p=p / p.sum()) for p in mean])
        return (actions if vectorized[0] else actions[0]), None

    def disagreement(self, observations) -> float:
        """How much the members disagree on a batch of raw observations: continuous, the std of
        their deterministic actions across members (mean over states and action dimensions, in the
        action space's units); discrete, the share of members off the majority's greedy action
        (mean over states; 0 when all agree)."""
        actions = np.stack([np.asarray(m.predict(observations, deterministic=True)[0]) for m in self.members])
        if isinstance(self.action_space, spaces.Box):
            return float(actions.std(axis=0).mean())
        actions = actions.reshape(len(self.members), -1)
        majority = [np.bincount(column).max() for column in actions.T]
        return float(1 - np.mean(majority) / len(self.members))

    @staticmethod
    def _scores(member: SWAPolicy, observation) -> tuple[np.ndarray, bool]:
        """Action probabilities (or Q-values) of one member, shape (n_envs, n_actions)."""
        if member.obs_normalizer is not None:
            observation = member.obs_normalizer(observation)
        policy = member.policy
        obs, vectorized = policy.obs_to_tensor(observation)
        with torch.no_grad():
            if hasattr(policy, "get_distribution"):
                scores = policy.get_distribution(obs).distribution.probs
            else:
                scores = policy.q_net(obs)
        return scores.cpu().numpy(), vectorized
