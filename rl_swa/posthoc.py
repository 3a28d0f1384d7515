"""Post-hoc averaging: averages rebuilt after training from a few saved running averages.

Two families, both from states saved at a handful of times during one run (``SWACallback(posthoc_points=S)``):

- :func:`window_average`: the exact equal average over any window between two saved times of a
  running equal average;
- :func:`synthesize_ema`: post-hoc EMA (Karras et al. 2024, "Analyzing and Improving the Training
  Dynamics of Diffusion Models", Algorithm 3): a power-function EMA with any relative width
  ``sigma_rel``, approximated as the least-squares combination of the saved power EMAs (and of
  the saved equal averages, which are power EMAs with ``gamma = 0``). The profile algebra is
  ema-pytorch's (``p_dot_p``, ``sigma_rel_to_gamma``).

A saved point is ``{"step", "n", "averages": {name: tensor}, "power": [{"gamma", "n", "averages"}],
"online": {name: tensor}, "obs_normalizer": None | {"header", "tensors"}}``: the online weights and the
observation statistics at that time are candidates of their own (:mod:`rl_swa.selection`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from ema_pytorch.post_hoc_ema import p_dot_p, sigma_rel_to_gamma
from stable_baselines3.common.callbacks import BaseCallback
from torch import Tensor

from rl_swa.averaging import WeightAverage  # noqa: F401 (type of the recorder's averages)
from rl_swa.normalization import ObsNormalizer

# sigma_rel of the equal average over the whole run (gamma = 0): the widest power profile.
MAX_SIGMA_REL = math.sqrt(1 / 12)


def gamma_of(sigma_rel: float) -> float:
    """The power-EMA exponent whose profile has relative standard deviation ``sigma_rel``."""
    if isinstance(sigma_rel, bool) or not (isinstance(sigma_rel, (int, float)) and 0 < sigma_rel < MAX_SIGMA_REL):
        raise ValueError(f"sigma_rel={sigma_rel!r} is not allowed; it must be a float in (0, {MAX_SIGMA_REL:.4f})")
    return float(sigma_rel_to_gamma(float(sigma_rel)))


def check_sigma_rels(name: str, values) -> list[float]:
    """Validate a list of distinct relative widths; the error names the field ``name``."""
    allowed = f"a list of distinct floats in (0, {MAX_SIGMA_REL:.4f}), e.g. [0.05, 0.1]"
    ok = (
        isinstance(values, (list, tuple))
        and len(set(values)) == len(values)
        and all(not isinstance(v, bool) and isinstance(v, (int, float)) and 0 < v < MAX_SIGMA_REL for v in values)
    )
    if not ok:
        raise ValueError(f"{name}={values!r} is not allowed; use {allowed}")
    return [float(v) for v in values]


def normalizer_state(env) -> dict | None:
    """The observation statistics of ``env``'s VecNormalize as plain tensors and a JSON header (or None):
    a form that ``torch.load(weights_only=True)`` reads back."""
    normalizer = ObsNormalizer.from_env(env)
    return None if normalizer is None else {"header": normalizer.header(), "tensors": normalizer.tensors()}


def normalizer_of(state: dict | None) -> ObsNormalizer | None:
    """The :class:`ObsNormalizer` of :func:`normalizer_state`'s output."""
    return None if state is None else ObsNormalizer.from_file(state["header"], state["tensors"])


def window_average(later: Mapping, earlier: Mapping | None = None) -> dict[str, Tensor]:
    """The exact equal average of the snapshots between two saved states of one running average.

    ``later`` and ``earlier`` are ``{"n": count, "averages": {name: tensor}}`` taken from the same
    equal (SWA) running average at two times; the snapshots taken after ``earlier`` and up to
    ``later`` average to ``(n_b * A_b - n_a * A_a) / (n_b - n_a)``. Computed in float64, returned
    in the tensors' dtype. ``earlier=None`` means from the first snapshot.
    """
    n_b = int(later["n"])
    n_a = 0 if earlier is None else int(earlier["n"])
    if n_b <= n_a:
        raise ValueError(f"empty window: the later state holds {n_b} snapshots, the earlier {n_a}")
    out = {}
    for name, a_b in later["averages"].items():
        total = a_b.double() * n_b
        if earlier is not None:
            total -= earlier["averages"][name].double() * n_a
        out[name] = (total / (n_b - n_a)).to(a_b.dtype)
    return out


def _basis(points: Sequence[Mapping]) -> list[tuple[int, float, Mapping]]:
    """Every saved average as (snapshot count t, gamma, averages): equal ones have gamma 0."""
    basis = [(int(p["n"]), 0.0, p["averages"]) for p in points]
    for p in points:
        basis += [(int(q["n"]), float(q["gamma"]), q["averages"]) for q in p.get("power", ())]
    return [b for b in basis if b[0] > 0]


def synthesize_ema(points: Sequence[Mapping], sigma_rel: float) -> tuple[dict[str, Tensor], float]:
    """Post-hoc EMA at the last saved time with relative width ``sigma_rel``.

    Returns the synthesized averages (in the tensors' dtype, computed in float64) and the
    relative L2 error of the approximated profile (0 = exact; it is a property of the saved
    times and exponents, not of the weights, so it can be stated before looking at any score).
    """
    gamma_r = gamma_of(sigma_rel)
    basis = _basis(points)
    if not basis:
        raise ValueError("no saved averages to synthesize from")
    t_i = torch.tensor([float(t) for t, _, _ in basis], dtype=torch.float64)
    gamma_i = torch.tensor([g for _, g, _ in basis], dtype=torch.float64)
    t_r = t_i.max().reshape(1)
    g_r = torch.tensor([gamma_r], dtype=torch.float64)
    # Karras et al. Algorithm 3: Gram matrix of the saved profiles and their products with the target.
    a = p_dot_p(t_i[:, None], gamma_i[:, None], t_i[None, :], gamma_i[None, :])
    b = p_dot_p(t_i, gamma_i, t_r, g_r)
    # SVD least squares: the same solution as a plain solve when the saved profiles are distinct,
    # and a sane one when some nearly coincide (a plain solve then returns huge, cancelling weights).
    weights = torch.linalg.lstsq(a, b[:, None], driver="gelsd").solution.squeeze(-1)
    target = p_dot_p(t_r, g_r, t_r, g_r)
    residual = (target - 2 * weights @ b + weights @ a @ weights).clamp(min=0)
    error = float((residual / target).sqrt())
    out = {}
    for name, ref in basis[0][2].items():
        total = torch.zeros_like(ref, dtype=torch.float64)
        for w, (_, _, averages) in zip(weights.tolist(), basis):
            total += w * averages[name].double()
        out[name] = total.to(ref.dtype)
    return out, error


class PosthocRecorder(BaseCallback):
    """Saves a running equal average (from the first update) and power EMAs at ``points`` evenly
    spaced times, so that any window or EMA width can be chosen after training (host copies, one
    set per point; one more on-device copy per average). Each point also keeps the online weights
    of that time and the observation statistics of a ``VecNormalize`` training env. ``SWACallback(posthoc_points=S)`` builds
    it; alone, list it after ``swa`` in a ``CallbackList``. The saved points are :attr:`points`.

    :param sigma_rels: relative widths of the power EMAs (Karras et al. 2024: 0.05 and 0.10).
    """

    def __init__(self, swa, points: int, sigma_rels: Sequence[float] = (0.05, 0.10)):
        super().__init__()
        if isinstance(points, bool) or not isinstance(points, int) or points < 1:
            raise ValueError(f"PosthocRecorder: points={points!r} is not allowed; it must be an int >= 1")
        self.swa, self.n_points = swa, points
        self.sigma_rels = check_sigma_rels("sigma_rels", sigma_rels)
        self.points: list[dict] = []
        self.running: WeightAverage | None = None
        self.power: list[WeightAverage] = []
        self._next: int | None = None

    def _init_callback(self) -> None:
        if self.running is None:
            self.running = self.swa.new_average()
            self.power = [self.swa.new_average(mode="power", gamma=gamma_of(s)) for s in self.sigma_rels]
            for average in (self.running, *self.power):
                self.swa.follow(average, start_step=0)
            self.swa.after_update.append(self._after_update)

    def _on_training_start(self) -> None:
        self._total = int(self.model._total_timesteps)
        self._next = self._next_step(self.num_timesteps)

    def _next_step(self, step: int) -> int:
        times = [round(self._total * k / self.n_points) for k in range(1, self.n_points + 1)]
        return next((t for t in times if t > step), self._total + 1)

    def _after_update(self, step: int) -> None:
        if self._next is not None and step >= self._next:
            self._save()
            self._next = self._next_step(step)

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        if self.num_timesteps >= self._total:
            self._save()  # the end of the run is always a saved time

    def _save(self) -> None:
        avg = self.running
        if not (avg.n_updates and avg.n_averaged) or (self.points and self.points[-1]["n"] == avg.n_averaged):
            return

        def host(a: WeightAverage) -> dict:
            return {name: a.averages[name].to("cpu", copy=True) for name in a.names}

        self.points.append(
            {
                "step": int(self.model.num_timesteps),
                "n": avg.n_averaged,
                "averages": host(avg),
                "online": {name: t.detach().to("cpu", copy=True) for name, t in self.swa.tensors.items()},
                "obs_normalizer": normalizer_state(self.model.get_env()),
                "power": [
                    {"gamma": gamma_of(s), "sigma_rel": s, "n": p.n_averaged, "averages": host(p)}
                    for s, p in zip(self.sigma_rels, self.power)
                ],
            }
        )

    def state_dict(self) -> dict:
        return {
            "running": self.running.state_dict(),
            "power": [p.state_dict() for p in self.power],
            "points": list(self.points),
        }

    def load_state_dict(self, state: dict) -> None:
        if len(state["power"]) != len(self.power):
            saved = len(state["power"])
            raise ValueError(
                f"PosthocRecorder state holds {saved} power EMAs, this recorder {len(self.power)} (posthoc_sigma_rels)"
            )
        self.running.load_state_dict(state["running"])
        for average, saved in zip(self.power, state["power"]):
            average.load_state_dict(saved)
        self.points = list(state["points"])
