"""What averaging does to behaviour: on a fixed set of visited states, how often the online and
averaged policies act alike, and how much the online policy's actions move between evaluations
(policy churn, Schaul et al. 2022).

The states are the first ``size`` observations the training env returned (as the policy sees them,
normalized if the env is): one fixed set, so that successive measures compare like with like;
nothing is measured before the set is complete.
"""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.policies import BasePolicy

from rl_swa.averaging import WeightAverage


class ActionProbe:
    """:param size: number of probe states kept (array observations; dict observations are skipped)."""

    def __init__(self, size: int = 256):
        self.size = size
        self.states: np.ndarray | None = None
        self.previous: np.ndarray | None = None  # the online actions at the last measure

    @property
    def full(self) -> bool:
        return self.states is not None and len(self.states) >= self.size

    def add(self, obs) -> None:
        if self.full or not isinstance(obs, np.ndarray):
            return
        obs = np.array(obs[: self.size - (0 if self.states is None else len(self.states))])
        self.states = obs if self.states is None else np.concatenate([self.states, obs])

    def measure(self, policy: BasePolicy, average: WeightAverage | None) -> dict[str, float]:
        """``churn`` (since the last measure) and, once ``average`` holds a snapshot, ``agreement``
        (discrete: fraction of states with the same greedy action) or ``action_distance`` (continuous:
        mean L2 distance between the deterministic actions)."""
        if not self.full:  # one fixed set, compared like with like
            return {}
        online = policy.predict(self.states, deterministic=True)[0]
        discrete = np.issubdtype(online.dtype, np.integer)
        out = {}
        if self.previous is not None:
            out["churn"] = _difference(self.previous, online, discrete)
        self.previous = online
        if average is not None and average.n_updates and average.n_averaged:
            with average.swapped():
                averaged = policy.predict(self.states, deterministic=True)[0]
            d = _difference(online, averaged, discrete)
            out.update({"agreement": 1.0 - d} if discrete else {"action_distance": d})
        return out

    def state_dict(self) -> dict:
        return {"states": self.states, "previous": self.previous}

    def load_state_dict(self, state: dict) -> None:
        self.states, self.previous = state["states"], state["previous"]


def _difference(a: np.ndarray, b: np.ndarray, discrete: bool) -> float:
    if discrete:
        return float(np.mean(np.any((a != b).reshape(len(a), -1), axis=1)))
    return float(np.mean(np.linalg.norm((np.asarray(a, float) - np.asarray(b, float)).reshape(len(a), -1), axis=1)))
