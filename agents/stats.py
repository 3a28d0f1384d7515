"""The estimators of the report (Agarwal et al. 2021): percentile and stratified bootstrap CIs, IQM,
probability of improvement, and the stability of a learning curve. (``rliable`` does not import beside
pandas 3, so the same estimators are written here with numpy/scipy.)"""

from __future__ import annotations

import numpy as np
from scipy import stats

# Below 3 seeds a percentile bootstrap only spans the seeds' own values (2 seeds: their range); no CI is given.
MIN_SEEDS_FOR_CI = 3


def bootstrap_ci(x, func=np.mean, reps: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of ``func`` over the runs in ``x`` (NaNs under ``MIN_SEEDS_FOR_CI`` runs)."""
    x = np.asarray(x, dtype=float)
    if len(x) < MIN_SEEDS_FOR_CI:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(reps, len(x)))
    values = np.array([func(x[i]) for i in idx])
    alpha = (1 - level) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean over all runs x tasks (the middle 50%)."""
    return float(stats.trim_mean(np.asarray(scores).reshape(-1), 0.25))


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) averaged over tasks, ties counting half (columns are tasks, rows runs)."""
    x, y = np.atleast_2d(x), np.atleast_2d(y)
    per_task = []
    for j in range(x.shape[1]):
        a, b = x[:, j][:, None], y[:, j][None, :]
        per_task.append(float(np.mean((a > b) + 0.5 * (a == b))))
    return float(np.mean(per_task))


def stratified_bootstrap_ci(func, *arrays: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, float]:
    """CI of ``func(*arrays)`` resampling runs independently within each task (column)."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(reps):
        resampled = []
        for a in arrays:
            n, k = a.shape
            idx = rng.integers(0, n, size=(n, k))
            resampled.append(np.take_along_axis(a, idx, axis=0))
        values.append(func(*resampled))
    return float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))


def mean_of_task_means(columns: list, reps: int = 2000, seed: int = 0) -> tuple[float, tuple[float, float]]:
    """The mean over tasks of each task's mean over its runs (tasks weigh the same whatever their
    number of runs), with a stratified percentile bootstrap CI (each task's runs resampled within
    it, at its own count). ``stratified_bootstrap_ci`` needs the same count in every task."""
    cols = [np.asarray(c, dtype=float) for c in columns]
    rng = np.random.default_rng(seed)
    values = [np.mean([c[rng.integers(0, len(c), len(c))].mean() for c in cols]) for _ in range(reps)]
    return float(np.mean([c.mean() for c in cols])), (float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975)))


def stability(curve: list[dict], key: str, last_k: int) -> dict[str, float]:
    """Mean and spread of the last K evaluations, and the drop from the best evaluation to the final one."""
    values = np.array([r.get(key, np.nan) for r in curve], dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return {"last_k_mean": np.nan, "last_k_std": np.nan, "best_to_final_drop": np.nan}
    tail = values[-last_k:]
    return {
        "last_k_mean": float(tail.mean()),
        "last_k_std": float(tail.std()),
        "best_to_final_drop": float(values.max() - values[-1]),
    }
