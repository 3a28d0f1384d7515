"""Choosing the weights to deploy after training: a race on validation episodes, then a paired test.

Candidates are any policies of one run (the final online weights, the best evaluated ones, the
averages, post-hoc windows and EMA profiles, the online weights at saved points). :func:`choose`
spends an episode budget in two parts:

1. **Race** (successive halving, Karnin et al. 2013): every surviving candidate plays the same new
   episode seeds each round; the better half by mean return over all its episodes goes on, until
   one is left: the *leader*.
2. **Confirmation**: the leader and the *default* (the final online weights) play the same fresh
   episodes, never seen by the race; the leader is deployed only when a one-sided paired t-test
   finds it better at ``level``. Otherwise the default is deployed.

Two rules (:data:`RULES`) differ in how they spend the budget. ``fixed``: the race's budget spread
evenly over its rounds (1 episode a candidate in the first round of 16), one test on all the
confirmation's pairs. ``sequential``: the same episodes per candidate in every round (fewer good
candidates lost in a first round of single episodes), and a confirmation in stages that stops as soon
as the leader is clearly better or clearly not (:mod:`rl_swa.sequential`: O'Brien-Fleming-type
spending keeps the overall level). benchmarks/bench_select_power.py measures both.

The race's winner is biased upward (the maximum of noisy means); the confirmation's episodes are
not, so the chance of deploying a candidate that is no better than the default stays at about
``level`` however many candidates raced (tests/test_selection.py checks it on known distributions,
and that picking the best validation mean does not hold it).

Episode seeds: validation episodes are ``base + 1_000_000 + i``, test episodes (for reporting,
never for choosing) ``base + 2_000_000 + i``; an evaluation during training reseeds with ``base``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from rl_swa.sequential import nominal_levels, stage_pairs

VALIDATION_OFFSET = 1_000_000
TEST_OFFSET = 2_000_000
MIN_PAIRS = 5  # a paired t-test on fewer episodes says little


def episode_seeds(split: str, base: int, n: int, start: int = 0) -> list[int]:
    """Seeds of ``n`` episodes of ``split`` (``"validation"`` or ``"test"``), from the ``start``-th on."""
    offsets = {"validation": VALIDATION_OFFSET, "test": TEST_OFFSET}
    if split not in offsets:
        raise ValueError(f"split={split!r} is not supported; allowed: {', '.join(offsets)}")
    return [base + offsets[split] + start + i for i in range(n)]


def check_settings(episodes: int, level: float) -> tuple[int, float]:
    """The budget and level, validated (errors name the field and what is allowed)."""
    if isinstance(episodes, bool) or not isinstance(episodes, (int, np.integer)) or not 4 * MIN_PAIRS <= episodes <= 10**6:
        raise ValueError(f"episodes={episodes!r} is not allowed; it must be an int in [{4 * MIN_PAIRS}, 1000000]")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 0.5:
        raise ValueError(f"level={level!r} is not allowed; it must be a float in (0, 0.5), e.g. 0.05")
    return int(episodes), float(level)


@dataclass(frozen=True)
class Rule:
    """How ``choose`` spends its budget."""

    allocation: str  # halving: the race's budget spread evenly over its rounds; flat: equal episodes a candidate each round
    stages: int  # looks at the confirmation's pairs (1: one test on all of them)
    futility: float | None = None  # stop before the last stage when the paired t statistic is below this


RULES = {"fixed": Rule("halving", 1), "sequential": Rule("flat", 3, -0.5)}


def parse_rule(text: str) -> tuple[str, Rule]:
    """``NAME=ALLOCATION:STAGES:FUTILITY`` (futility ``none``: no early stop for the default), for trying rules."""
    try:
        name, spec = text.split("=")
        allocation, stages, futility = spec.split(":")
        if not name or allocation not in ("halving", "flat") or int(stages) < 1:
            raise ValueError
        return name, Rule(allocation, int(stages), None if futility == "none" else float(futility))
    except ValueError:
        raise ValueError(f"{text!r} is not a rule; use NAME=ALLOCATION:STAGES:FUTILITY, e.g. flat4=flat:4:none") from None


def check_rule(rule: str) -> Rule:
    if rule not in RULES:
        raise ValueError(f"rule={rule!r} is not allowed; allowed: {', '.join(RULES)}")
    return RULES[rule]


@dataclass
class Candidate:
    """A policy that may be deployed: ``make()`` builds it (on demand: a run has dozens)."""

    name: str
    kind: str  # online | best | average | window | ema | online_point
    make: Callable[[], Any]
    info: dict[str, Any] = field(default_factory=dict)


def race_minimum(n: int) -> int:
    """Episodes the race of ``n`` candidates needs at least: one per survivor and round."""
    survivors, total = n, 0
    while survivors > 1:
        total += survivors
        survivors = math.ceil(survivors / 2)
    return total


def check_budget(n: int, episodes: int, confirm_share: float = 0.5) -> tuple[int, int]:
    """(confirmation pairs, race budget) of ``episodes`` for ``n`` candidates; a budget too small
    for the race raises ``ValueError`` naming the least that is enough."""

    def split(e: int) -> tuple[int, int]:
        pairs = max(MIN_PAIRS, int(e * confirm_share) // 2)
        return pairs, max(e - 2 * pairs, 0)

    pairs, race_budget = split(episodes)
    if race_budget < race_minimum(n):
        least = next(e for e in itertools.count(episodes) if split(e)[1] >= race_minimum(n))
        raise ValueError(
            f"episodes={episodes} is not allowed for {n} candidates: the race needs one episode per survivor and round "
            f"({race_minimum(n)}), the confirmation {2 * pairs}; use episodes >= {least}"
        )
    return pairs, race_budget


def paired_test(leader: Sequence[float], default: Sequence[float], level: float) -> dict[str, float | bool]:
    """One-sided paired t-test of ``leader > default`` on the same episodes: the mean difference,
    its lower confidence bound at ``1 - level``, the p-value and whether the leader is better."""
    d = np.asarray(leader, dtype=float) - np.asarray(default, dtype=float)
    mean, n = float(d.mean()), len(d)
    sd = float(d.std(ddof=1)) if n > 1 else 0.0
    if sd == 0.0:  # every episode gave the same difference: no noise to test against
        p, lower = (0.0, mean) if mean > 0 else (1.0, mean)
    else:
        p = float(stats.ttest_1samp(d, 0.0, alternative="greater").pvalue)
        lower = mean - float(stats.t.ppf(1 - level, n - 1)) * sd / math.sqrt(n)
    return {"pairs": n, "mean_difference": mean, "lower_bound": lower, "p_value": p, "better": bool(p < level)}


def choose(
    play: Callable[[int, list[int]], Sequence[float]],
    names: Sequence[str],
    default: int = 0,
    episodes: int = 200,
    level: float = 0.05,
    base_seed: int = 0,
    confirm_share: float = 0.5,
    confirm: bool = True,
    on_round: Callable[[str], None] | None = None,
    rule: str = "fixed",
) -> dict[str, Any]:
    """Race the candidates ``0..len(names)-1`` and confirm the leader against ``default``.

    :param play: ``play(i, seeds)`` -> the returns of candidate ``i``, one episode per seed (the
        seeds are consecutive; every candidate gets the same ones within a round).
    :param episodes: the validation budget, in episodes over all candidates; ``confirm_share`` of it
        goes to the confirmation (half to the leader, half to the default), the rest to the race.
    :param level: the chance of deploying a candidate no better than the default, at most.
    :param confirm: False when the default cannot act (its weights hold NaN/Inf): the race's
        leader is deployed without a confirmation, since there is nothing to fall back on.
    :param on_round: called with one line after each round of the race and after the confirmation (progress).
    :param rule: a key of :data:`RULES`: ``fixed`` (one test) or ``sequential`` (a staged confirmation).
    :return: ``{"deployed", "leader", "confirmation", "episodes", "candidates": [{name, episodes, mean, ...}]}``.
    """
    episodes, level = check_settings(episodes, level)
    how = check_rule(rule)
    n = len(names)
    if n < 1 or not 0 <= default < n:
        raise ValueError(f"default={default!r} is not allowed; it must index one of the {n} candidates")
    pairs, race_budget = check_budget(n, episodes, confirm_share)
    seeds = itertools.count(episode_seeds("validation", base_seed, 1)[0])
    say = on_round or (lambda line: None)
    leader, returns, eliminated_in, rounds = _race(play, n, default, race_budget, seeds, say, how.allocation)
    deployed, confirmation, extra = leader, None, {}
    if confirm and leader != default:
        most = "at most " if how.stages > 1 else ""
        say(f"confirmation: {names[leader]} against {names[default]} on {most}{pairs} paired episodes")
        confirmation, extra = _confirm(play, names, leader, default, pairs, level, seeds, how, say)
        deployed = leader if confirmation["better"] else default
    elif confirm:
        deployed = default
    spent = sum(len(v) for v in returns.values()) + sum(len(v) for v in extra.values())
    return {
        "deployed": names[deployed],
        "deployed_index": deployed,
        "default": names[default],
        "leader": names[leader],
        "level": level,
        "rule": rule,
        "budget": episodes,
        "episodes": spent,
        "rounds": rounds,
        "confirmation": confirmation,
        "deployed_returns": list(extra.get(deployed) or returns[deployed]),  # its confirmation episodes, else its race's
        "candidates": _table(names, returns, eliminated_in, extra),
    }


def _race(play, n: int, default: int, budget: int, seeds, say, allocation: str = "halving"):
    """Successive halving on shared seeds: (leader, every candidate's returns, the round each left
    and those that left tied with a survivor, rounds). ``allocation``: see :class:`Rule`."""
    returns: dict[int, list[float]] = {i: [] for i in range(n)}
    alive = [default, *(i for i in range(n) if i != default)]  # ties go to the default (a stable sort)
    rounds = math.ceil(math.log2(n)) if n > 1 else 0
    eliminated_in: dict[int, int] = {}
    tied: set[int] = set()
    left = budget
    sizes = [math.ceil(n / 2**r) for r in range(rounds)]  # survivors in each round
    for r in range(rounds):
        if allocation == "flat":  # the same episodes a candidate in this round and every one to come
            k = max(1, left // sum(sizes[r:]))
        else:  # what is left, spread over the rounds to come
            k = max(1, left // ((rounds - r) * len(alive)))
        left -= k * len(alive)
        batch = [next(seeds) for _ in range(k)]
        for i in alive:
            returns[i] += [float(x) for x in play(i, batch)]
        alive.sort(key=lambda i: -float(np.mean(returns[i])))
        keep = math.ceil(len(alive) / 2)
        for i in alive[keep:]:
            eliminated_in[i] = r + 1
            if float(np.mean(returns[i])) == float(np.mean(returns[alive[keep - 1]])):
                tied.add(i)  # as good as a survivor: left by candidate order (the default first)
        alive = alive[:keep]
        say(f"race round {r + 1}/{rounds}: {k} episodes each, {len(alive)} of {n} candidates left")
    return alive[0], returns, {"round": eliminated_in, "tied": tied}, rounds


def _confirm(play, names, leader: int, default: int, pairs: int, level: float, seeds, how: Rule = RULES["fixed"], say=None):
    """The leader and the default on the same fresh episodes, in ``how.stages`` looks: the test on
    the pairs played (``better``: the staged decision), each stage's record, both returns."""
    batch = [next(seeds) for _ in range(pairs)]  # reserved whole: where a stop falls changes no later seed
    cuts = stage_pairs(pairs, how.stages, MIN_PAIRS)
    nominal = nominal_levels(cuts, level) if len(cuts) > 1 else [level]
    a: list[float] = []
    b: list[float] = []
    record = []
    for k, (cut, p_k) in enumerate(zip(cuts, nominal)):
        new = batch[len(a) : cut]
        a += [float(x) for x in play(leader, new)]
        b += [float(x) for x in play(default, new)]
        test = paired_test(a, b, p_k)
        last = k == len(cuts) - 1
        # t < futility, read from the test's p-value (p = P(T > t) falls as t rises)
        futile = not last and how.futility is not None and test["p_value"] > stats.t.sf(how.futility, cut - 1)
        stop = "better" if test["better"] else "futility" if futile else None
        diff, p = test["mean_difference"], test["p_value"]
        record.append({"pairs": cut, "mean_difference": diff, "p_value": p, "nominal_level": p_k})
        if len(cuts) > 1 and say:
            say(f"confirmation stage {k + 1}/{len(cuts)}: {cut} pairs, {diff:+.3g}, p {p:.3g} (deploy below {p_k:.3g})")
        if stop or last:
            break
    confirmation = {"leader": names[leader], "leader_mean": float(np.mean(a)), "default_mean": float(np.mean(b))}
    confirmation |= paired_test(a, b, level)
    confirmation["better"] = bool(stop == "better")
    if len(cuts) > 1:
        confirmation |= {"max_pairs": pairs, "stopped": stop or "last stage", "stages": record}
    return confirmation, {leader: a, default: b}


def _table(names, returns, eliminated, extra) -> list[dict[str, Any]]:
    """One row per candidate. Race means are over each one's own race episodes: one that left early
    played fewer (its mean may be above a survivor's later one); ``tied``: it left as good as a survivor."""
    table = []
    for i, name in enumerate(names):
        row = {"name": name, "race_episodes": len(returns[i]), "race_mean": float(np.mean(returns[i])) if returns[i] else None}
        row["eliminated_in_round"] = eliminated["round"].get(i)
        if i in eliminated["tied"]:
            row["tied"] = True
        if i in extra:
            row["confirmation_episodes"], row["confirmation_mean"] = len(extra[i]), float(np.mean(extra[i]))
        table.append(row)
    return table
