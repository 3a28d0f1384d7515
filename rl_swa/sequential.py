"""Group-sequential boundaries for the confirmation of ``rl-swa select``: look at the paired
differences in stages and stop as soon as the leader is clearly better, at an overall level.

The level is spent over the stages by Lan and DeMets' O'Brien-Fleming-type spending function
``alpha(t) = 2 - 2 Phi(z_{1 - level/2} / sqrt(t))`` (t: the share of the pairs seen): almost nothing
early, nearly the whole level at the last stage, so a leader near the line keeps nearly the power of
one fixed test while a clearly better one stops early. The boundary ``c_k`` of stage ``k`` solves
``P(Z_1 < c_1, ..., Z_{k-1} < c_{k-1}, Z_k >= c_k) = alpha(t_k) - alpha(t_{k-1})`` under the null,
where the stage statistics are standard normal with ``corr(Z_i, Z_j) = sqrt(t_i / t_j)``
(scipy's multivariate normal CDF). Each stage's t-test uses the boundary's nominal p-value, the usual
t approximation. A futility stop (the leader clearly not better) only ever lowers the rate of false
deploys, so it needs no share of the level ("non-binding").

Hand-written: scipy has the multivariate normal but no group-sequential design; the R packages
(gsDesign, rpact) have no maintained Python port.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import optimize, stats


def spent(t: float, level: float) -> float:
    """The share of ``level`` spent once the fraction ``t`` of the pairs is seen (O'Brien-Fleming type)."""
    if t <= 0:
        return 0.0
    return float(2 * stats.norm.sf(stats.norm.isf(level / 2) / math.sqrt(min(t, 1.0))))


@functools.lru_cache(maxsize=64)
def boundaries(fractions: tuple[float, ...], level: float) -> tuple[float, ...]:
    """The z boundary of each stage, for stages at the increasing ``fractions`` (the last one 1)."""
    if not fractions or fractions[-1] != 1.0 or any(b <= a for a, b in zip(fractions, fractions[1:])) or fractions[0] <= 0:
        raise ValueError(f"fractions={fractions!r} are not allowed; they must increase in (0, 1] and end at 1")
    bounds: list[float] = []
    alive = 1.0  # P(no boundary crossed so far) under the null
    for k, t in enumerate(fractions):
        delta = spent(t, level) - spent(fractions[k - 1] if k else 0.0, level)
        if k == 0:
            bounds.append(float(stats.norm.isf(delta)))
        else:
            f = np.asarray(fractions[: k + 1])
            cov = np.sqrt(np.minimum.outer(f, f) / np.maximum.outer(f, f))
            mvn = stats.multivariate_normal(np.zeros(k + 1), cov, seed=0)  # seeded: the same boundaries every run

            def gap(c, mvn=mvn, alive=alive, delta=delta):
                return alive - mvn.cdf(np.array([*bounds, c])) - delta

            bounds.append(float(optimize.brentq(gap, -1.0, 12.0, xtol=1e-7)))
        alive -= delta
    return tuple(bounds)


def stage_pairs(pairs: int, stages: int, least: int) -> list[int]:
    """Cumulative pairs at each stage: ``pairs`` split evenly, no stage below ``least`` pairs."""
    cuts = sorted({min(pairs, max(least, round(pairs * k / stages))) for k in range(1, stages + 1)})
    return cuts or [pairs]


def nominal_levels(cuts: list[int], level: float) -> list[float]:
    """The one-sided p-value each stage's test must fall below."""
    fractions = tuple(c / cuts[-1] for c in cuts)
    return [float(stats.norm.sf(c)) for c in boundaries(fractions, round(level, 12))]
