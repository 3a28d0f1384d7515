"""The report's estimators against hand-computed values."""

import numpy as np
import pytest

from agents.stats import bootstrap_ci, iqm, probability_of_improvement, stability, stratified_bootstrap_ci


def test_estimators_by_hand():
    assert iqm(np.array([1, 2, 3, 4, 5, 6, 7, 100])) == pytest.approx(np.mean([3, 4, 5, 6]))
    assert probability_of_improvement(np.array([[2.0], [3.0]]), np.array([[1.0], [3.0]])) == pytest.approx(
        (1 + 0 + 1 + 0.5) / 4
    )
    lo, hi = bootstrap_ci([1.0, 1.0, 1.0])
    assert lo == hi == 1.0
    s = stability([{"online_mean_reward": v} for v in (1, 5, 3, 4)], "online_mean_reward", 2)
    assert s == {"last_k_mean": 3.5, "last_k_std": 0.5, "best_to_final_drop": 1.0}


def test_stratified_bootstrap_resamples_within_each_task():
    # two tasks on different scales: resampling within a column never mixes them, so the mean of
    # column 0 stays in [0, 1] and that of column 1 in [100, 101] in every resample
    x = np.array([[0.0, 100.0], [1.0, 101.0], [0.5, 100.5]])
    lo, hi = stratified_bootstrap_ci(lambda m: m[:, 1].mean() - m[:, 0].mean(), x, reps=200)
    assert 99.0 <= lo <= hi <= 101.0
