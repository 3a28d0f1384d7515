"""SWA-Gaussian (Maddox et al. 2019): a Gaussian around the equal average, and a policy that samples it.

:class:`SWAGRecorder` keeps, next to the callback's main average and with its cadence, the second
moments of the snapshots and the deviations of ``rank`` snapshots spread over the averaging phase
from the average (on the averages' device, no host-device sync). :class:`SWAGPolicy` draws weights
from the Gaussian with that mean, diagonal ``sq_mean - mean**2`` and low-rank part ``D D^T / (K - 1)``,
and acts as the mean over ``n_samples`` drawn policies (an :class:`rl_swa.EnsemblePolicy`).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
from stable_baselines3.common.callbacks import BaseCallback
from torch import Tensor

from rl_swa.ensemble import EnsemblePolicy
from rl_swa.guard import chunks
from rl_swa.policy import SWAPolicy, copy_policy, read_policy_file, write_policy_file
from rl_swa.schedules import check_steps

PREFIX = "swag."


class SWAGRecorder(BaseCallback):
    """The SWAG statistics of an ``SWACallback``'s main (equal) average; ``SWACallback(swag_rank=K)``
    builds it; alone, list it after ``swa`` in a ``CallbackList``. :meth:`policy` gives the
    :class:`SWAGPolicy`.

    Memory: ``rank + 1`` copies of the averaged weights. A deviation column is kept every ``every``
    snapshots; ``None`` spreads the ``rank`` columns over the averaging phase (measured from the
    env steps between the first two snapshots), so they span it rather than its last steps.
    """

    def __init__(self, swa, rank: int = 20, every: int | None = None):
        super().__init__()
        self.swa, self.rank = swa, check_steps("rank", rank, 2)
        self.every = None if every is None else check_steps("every", every, 1)
        self.sq: list[Tensor] = []
        self.deviations: list[list[Tensor]] = []
        self.n_columns = 0  # deviation columns written (the newest rank are kept)
        self._seen = 0  # main-average updates seen
        self._first: tuple[int, int] | None = None  # (update count, env step) of the first snapshot

    def _init_callback(self) -> None:
        if self.sq:
            return
        main = self.swa.average
        if main.mode != "swa":
            raise ValueError(f"SWAGRecorder: the main average is {main.mode!r}; SWAG needs the equal average (mode='swa')")
        self._live = [self.swa.tensors[n] for n in main.names]
        self._mean = [main.averages[n] for n in main.names]
        self.sq = [torch.zeros_like(t) for t in self._mean]
        self.deviations = [[torch.zeros_like(t) for t in self._mean] for _ in range(self.rank)]
        self.swa.after_update.append(self._after_update)

    def _on_step(self) -> bool:
        return True

    @torch.no_grad()
    def _after_update(self, step: int) -> None:
        main = self.swa.average
        if main.n_updates == self._seen:
            return
        self._seen = main.n_updates
        ok, n = main.last_snapshot()
        if isinstance(ok, bool):  # host path: a skipped snapshot changes nothing
            if not ok:
                return
            torch._foreach_mul_(self.sq, 1.0 - 1.0 / n)
            torch._foreach_addcmul_(self.sq, self._live, self._live, value=1.0 / n)
        else:  # device path: where(ok, live**2, sq), in bounded chunks, lerped with weight ok / n
            weight = ok.to(n.dtype) / n.clamp(min=1)
            for a, x in chunks(self.sq, self._live):
                sources = [torch.where(ok, xi * xi, ai) for xi, ai in zip(x, a)]
                torch._foreach_lerp_(a, sources, [weight.to(a[0].dtype)] * len(a))
        if self._first is None:
            self._first = (main.n_updates, step)
            return
        if self.every is None:
            if step == self._first[1]:  # several updates per env step: measure once the step moves
                return
            per_snapshot = (step - self._first[1]) / (main.n_updates - self._first[0])  # env steps per snapshot
            remaining = int((self.model._total_timesteps - self._first[1]) / per_snapshot)  # snapshots after the first
            self.every = max(1, remaining // self.rank)
        if (main.n_updates - self._first[0]) % self.every == 0:
            self._write_column(ok)

    def _write_column(self, ok) -> None:
        column = self.deviations[self.n_columns % self.rank]
        if isinstance(ok, bool):
            torch._foreach_copy_(column, self._live)
            torch._foreach_sub_(column, self._mean)
        else:  # a skipped snapshot leaves the column as it was
            torch._foreach_copy_(column, [torch.where(ok, x - m, c) for x, m, c in zip(self._live, self._mean, column)])
        self.n_columns += 1

    def policy(self, n_samples: int = 10, scale: float = 0.5, seed: int | None = 0) -> SWAGPolicy:
        """The :class:`SWAGPolicy` of the statistics so far (host copies; training may go on)."""
        if self.n_columns < 2:
            raise RuntimeError(f"SWAGRecorder.policy: {self.n_columns} deviation columns so far; at least 2 are needed")
        names = self.swa.average.names
        kept = self.deviations[: min(self.n_columns, self.rank)]
        return SWAGPolicy(
            self.swa.policy,
            {n: t.to("cpu", copy=True) for n, t in zip(names, self.sq)},
            [{n: t.to("cpu", copy=True) for n, t in zip(names, column)} for column in kept],
            n_samples=n_samples,
            scale=scale,
            seed=seed,
        )

    def state_dict(self) -> dict:
        return {
            "sq": [t.detach().clone() for t in self.sq],
            "deviations": [[t.detach().clone() for t in c] for c in self.deviations],
            "n_columns": self.n_columns,
            "every": self.every,
            "seen": self._seen,
            "first": self._first,
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        if len(state["deviations"]) != self.rank:
            raise ValueError(f"SWAGRecorder state holds rank {len(state['deviations'])}, this recorder {self.rank}")
        torch._foreach_copy_(self.sq, state["sq"])
        for column, saved in zip(self.deviations, state["deviations"]):
            torch._foreach_copy_(column, saved)
        self.n_columns, self.every, self._seen = state["n_columns"], state["every"], state["seen"]
        self._first = tuple(state["first"]) if state["first"] is not None else None


class SWAGPolicy:
    """Weights drawn from SWAG's Gaussian around an :class:`SWAPolicy`; acts, with SB3's ``predict``,
    as the mean over ``n_samples`` drawn policies (continuous: mean action; discrete: mean of
    probabilities). A draw is ``mean + sqrt(scale) * (sigma * z1 + D z2 / sqrt(K - 1)) / sqrt(2)``
    with ``z1``, ``z2`` standard normal (Maddox et al. 2019; their code's default ``scale=0.5``).

    :param mean: the averaged policy.
    :param sq_mean: name -> mean of the squared snapshots (names inside ``mean.policy``).
    :param deviations: K >= 2 columns, each name -> a snapshot's deviation from the average.
    :param seed: seed of the draws (``predict`` always uses the same ``n_samples`` policies).
    """

    def __init__(
        self,
        mean: SWAPolicy,
        sq_mean: dict[str, Tensor],
        deviations: list[dict[str, Tensor]],
        n_samples: int = 10,
        scale: float = 0.5,
        seed: int | None = 0,
    ):
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
            raise ValueError(f"SWAGPolicy: n_samples={n_samples!r} is not allowed; it must be an int >= 1")
        if not (isinstance(scale, int | float) and math.isfinite(scale) and scale >= 0):
            raise ValueError(f"SWAGPolicy: scale={scale!r} is not allowed; it must be a finite number >= 0")
        if len(deviations) < 2 or any(set(d) != set(sq_mean) for d in deviations):
            raise ValueError("SWAGPolicy: deviations must be >= 2 columns over the names of sq_mean")
        own = mean.policy.state_dict()
        missing = sorted(set(sq_mean) - set(own))
        if missing:
            raise ValueError(f"SWAGPolicy: the policy has no tensors named {missing[:3]}")
        self.mean, self.sq_mean, self.deviations = mean, dict(sq_mean), list(deviations)
        self.n_samples, self.scale, self.seed = n_samples, float(scale), seed
        self._ensemble: EnsemblePolicy | None = None

    @property
    def observation_space(self):
        return self.mean.observation_space

    @property
    def action_space(self):
        return self.mean.action_space

    @property
    def rank(self) -> int:
        return len(self.deviations)

    def variance(self) -> dict[str, Tensor]:
        """The diagonal part: name -> ``sq_mean - mean**2`` (clamped at 0)."""
        own = self.mean.policy.state_dict()
        return {n: (sq - own[n].detach().cpu().square()).clamp(min=0) for n, sq in self.sq_mean.items()}

    def sample(self, generator: torch.Generator | None = None) -> SWAPolicy:
        """One policy with weights drawn from the Gaussian."""
        z2 = torch.randn(self.rank, generator=generator, dtype=torch.float64)
        policy = copy_policy(self.mean.policy)
        state = policy.state_dict()
        root = math.sqrt(self.scale / 2)
        for name, var in self.variance().items():
            z1 = torch.randn(var.shape, generator=generator, dtype=var.dtype)
            low_rank = sum(float(z) * d[name] for z, d in zip(z2, self.deviations)) / math.sqrt(self.rank - 1)
            state[name] = state[name] + (root * (var.sqrt() * z1 + low_rank)).to(state[name].device, state[name].dtype)
        policy.load_state_dict(state)
        return SWAPolicy(policy, {**self.mean.metadata, "swag_sample": True}, self.mean.obs_normalizer)

    def ensemble(self) -> EnsemblePolicy:
        """The ``n_samples`` drawn policies (the same ones on every call: drawn once from ``seed``)."""
        if self._ensemble is None:
            generator = torch.Generator().manual_seed(self.seed) if self.seed is not None else None
            self._ensemble = EnsemblePolicy([self.sample(generator) for _ in range(self.n_samples)], seed=self.seed)
        return self._ensemble

    def disagreement(self, observations) -> float:
        """How much the drawn policies disagree on these raw observations (:meth:`EnsemblePolicy.disagreement`)."""
        return self.ensemble().disagreement(observations)

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = False):
        return self.ensemble().predict(observation, state, episode_start, deterministic)

    def save(self, path: str | os.PathLike) -> Path:
        """One ``.safetensors`` file: the averaged policy's, plus the statistics and the sampling settings."""
        tensors = {f"{PREFIX}sq.{n}": t for n, t in self.sq_mean.items()}
        for k, column in enumerate(self.deviations):
            tensors.update({f"{PREFIX}dev{k}.{n}": t for n, t in column.items()})
        settings = {"names": list(self.sq_mean), "rank": self.rank, "n_samples": self.n_samples, "scale": self.scale}
        return write_policy_file(self.mean, path, tensors, {"swag": json.dumps({**settings, "seed": self.seed})})

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str = "auto") -> SWAGPolicy:
        mean, header, extra = read_policy_file(path, device, prefix=PREFIX)
        if "swag" not in header:
            raise ValueError(f"{path}: an SWAPolicy file without SWAG statistics (load it with SWAPolicy.load)")
        s = json.loads(header["swag"])
        sq = {n: extra[f"{PREFIX}sq.{n}"] for n in s["names"]}
        deviations = [{n: extra[f"{PREFIX}dev{k}.{n}"] for n in s["names"]} for k in range(s["rank"])]
        return cls(mean, sq, deviations, n_samples=s["n_samples"], scale=s["scale"], seed=s["seed"])
