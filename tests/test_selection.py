"""The choice of the deployed policy on candidates whose episode returns follow known distributions.

Each candidate's return on episode seed ``s`` is ``mean + shared(s) + noise``: the shared part is
the episode's difficulty (the same initial state for every candidate, as paired episodes give),
the noise is the candidate's own, normal or with rare falls (a Hopper falling over).
"""

import numpy as np
import pytest

from rl_swa.selection import choose, episode_seeds, paired_test

LEVEL = 0.05
REPS = 600
# Monte Carlo slack: 3 standard errors of a rate of LEVEL over REPS repetitions.
SLACK = 3 * np.sqrt(LEVEL * (1 - LEVEL) / REPS)


class Stub:
    """Known return distributions; ``play`` is deterministic in (candidate, seed) as real episodes are."""

    def __init__(self, means, rep: int, falls: bool = False):
        self.means, self.rep, self.falls = np.asarray(means, float), rep, falls
        self.played = 0

    def noise(self, i: int, seed: int) -> float:
        rng = np.random.default_rng([self.rep, i, seed])
        x = rng.normal()
        if self.falls and rng.random() < 0.15:  # a fall: a large loss, skewing the distribution
            x -= 3.0
        return x

    def play(self, i: int, seeds: list[int]) -> list[float]:
        self.played += len(seeds)
        shared = [np.random.default_rng([self.rep, 10**6, s]).normal(scale=2.0) for s in seeds]
        return [self.means[i] + sh + self.noise(i, s) for s, sh in zip(seeds, shared)]


def naive(stub: Stub, n: int, episodes: int) -> int:
    """Pick the best validation mean, the same budget spread over all candidates."""
    seeds = episode_seeds("validation", 0, episodes // n)
    return int(np.argmax([np.mean(stub.play(i, seeds)) for i in range(n)]))


@pytest.mark.parametrize("falls", [False, True])
def test_a_worse_candidate_is_deployed_at_most_at_the_level(falls):
    """15 candidates slightly worse than the default (index 0): our rule deploys one of them in
    at most LEVEL of the runs; the naive rule (best validation mean) in most runs."""
    means = [0.0] + [-0.05] * 15
    ours = naive_wrong = 0
    for rep in range(REPS):
        stub = Stub(means, rep, falls)
        result = choose(stub.play, [f"c{i}" for i in range(16)], default=0, episodes=200, level=LEVEL)
        ours += result["deployed_index"] != 0
        assert stub.played == result["episodes"] <= 200
        naive_wrong += naive(Stub(means, rep, falls), 16, 200) != 0
    assert ours / REPS <= LEVEL + SLACK, ours / REPS
    assert naive_wrong / REPS > 0.5  # the naive rule fails the same requirement


def test_a_better_candidate_is_found():
    """One candidate better by 1.0 (the own noise's standard deviation) among 15 no better:
    deployed in at least 80% of the runs with a budget of 200 episodes."""
    means = [0.0] * 10 + [1.0] + [-0.2] * 5
    found = sum(
        choose(Stub(means, rep).play, [f"c{i}" for i in range(16)], default=0, episodes=200, level=LEVEL)["deployed"] == "c10"
        for rep in range(200)
    )
    assert found / 200 >= 0.8, found / 200


def test_the_default_wins_ties_and_one_candidate_needs_no_race():
    flat = choose(lambda i, seeds: [1.0] * len(seeds), ["online", "avg"], default=0, episodes=40)
    assert flat["deployed"] == "online" and flat["leader"] == "online" and flat["confirmation"] is None
    alone = choose(lambda i, seeds: list(seeds), ["online"], episodes=40)
    assert alone["deployed"] == "online" and alone["episodes"] == 0


def test_paired_test_on_known_differences():
    assert paired_test([2, 3, 4, 5, 6], [1, 2, 3, 4, 5], 0.05)["better"]  # constant +1: no noise
    assert not paired_test([1, 2, 3], [1, 2, 3], 0.05)["better"]
    r = paired_test([1.0, 2.0, 0.0, 3.0], [0.0, 1.0, 1.0, 1.0], 0.05)
    assert r["mean_difference"] == pytest.approx(0.75) and not r["better"] and r["lower_bound"] < 0


def test_the_budget_is_never_exceeded_and_a_too_small_one_names_the_least():
    for n, episodes in ((33, 200), (33, 135), (16, 60), (2, 20), (100, 1000), (7, 1234)):
        spent = choose(lambda i, seeds: [float(i)] * len(seeds), [f"c{i}" for i in range(n)], episodes=episodes)["episodes"]
        assert spent <= episodes
    with pytest.raises(ValueError, match=r"episodes=40 is not allowed for 33 candidates.*use episodes >= 135"):
        choose(lambda i, seeds: [0.0] * len(seeds), [f"c{i}" for i in range(33)], episodes=40)


@pytest.mark.parametrize("episodes,level", [(5, 0.05), (200, 0.0), (200, 0.7), (True, 0.05), (200, "0.05")])
def test_bad_settings_name_the_field(episodes, level):
    with pytest.raises(ValueError, match="episodes=|level="):
        choose(lambda i, s: [0.0] * len(s), ["a", "b"], episodes=episodes, level=level)


def test_validation_and_test_seeds_are_disjoint_from_training_evaluations():
    val, test = episode_seeds("validation", 10000, 10**5), episode_seeds("test", 10000, 10**5)
    assert not set(val) & set(test) and min(val) > 10000 + 10**5


def test_candidates_that_leave_the_race_tied_are_marked():
    """At a score cap every candidate ties: the default survives by order, and the table says why
    the others left (a naive table shows them at the cap above the deployed one with no word)."""
    from rl_swa.selection import choose

    result = choose(lambda i, seeds: [500.0] * len(seeds), ["online", "a", "b", "c"], episodes=40)
    rows = {r["name"]: r for r in result["candidates"]}
    assert result["deployed"] == "online" and result["leader"] == "online"
    assert all(rows[n].get("tied") for n in ("a", "b", "c")) and not rows["online"].get("tied")
    worse = choose(lambda i, seeds: [float(10 - i)] * len(seeds), ["online", "a", "b", "c"], episodes=40)
    assert not any(r.get("tied") for r in worse["candidates"])
