"""Learning curves: mean over seeds with a bootstrap band, one panel per arm."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agents.config import VARIANTS
from agents.report.runs import ARMS, arms_in, label
from agents.stats import bootstrap_ci


def _mean_curve(runs: list[dict], env: str, variant: str, key: str) -> tuple | None:
    """Steps, mean over seeds and CI band of one evaluation column of one arm; None if never evaluated."""
    curves = [r["curve"] for r in runs if r["env"] == env and r["variant"] == variant and r["curve"]]
    steps = sorted({row["step"] for c in curves for row in c if not np.isnan(row.get(key, np.nan))})
    if not steps:
        return None
    col_of = {step: j for j, step in enumerate(steps)}
    table = np.full((len(curves), len(steps)), np.nan)
    for i, c in enumerate(curves):
        for row in c:
            if row["step"] in col_of:
                table[i, col_of[row["step"]]] = row.get(key, np.nan)
    mean = np.nanmean(table, axis=0)
    ci = np.array(
        [
            bootstrap_ci(col[~np.isnan(col)], reps=500) if (~np.isnan(col)).sum() > 1 else (m, m)
            for col, m in zip(table.T, mean)
        ]
    )
    return steps, mean, ci[:, 0], ci[:, 1]


def curve_series(runs: list[dict], env: str) -> dict[str, dict[str, tuple]]:
    """Per panel (the policies each arm deploys; then per arm, its online policy and every average it kept),
    per curve: steps, mean over seeds, CI band. Each curve is computed once, whatever panels show it."""
    arms = arms_in(runs)
    curves = {arm: c for arm, (variant, key) in arms.items() if (c := _mean_curve(runs, env, variant, key))}
    panels = {"deployed policies": [*ARMS, *(a for a in arms if a not in ARMS and ":" not in a)]}
    for variant in (v for v in VARIANTS if any(r["env"] == env and r["variant"] == v for r in runs)):
        panels[f"{variant} arm"] = [a for a in arms if arms[a][0] == variant]
    out: dict[str, dict[str, tuple]] = {}
    for panel, names in panels.items():
        for arm in names:
            if arm in curves:
                out.setdefault(panel, {})[label(arm)] = curves[arm]
    return out


def plot_curves(runs: list[dict], env: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = curve_series(runs, env) or {"no evaluations": {}}
    cols = min(3, len(series))
    rows = -(-len(series) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 4 * rows), squeeze=False, sharey=True)
    for ax in axes.flat[len(series) :]:
        ax.set_visible(False)
    for ax, (panel, curves) in zip(axes.flat, series.items()):
        for name, (steps, mean, lo, hi) in curves.items():
            (line,) = ax.plot(steps, mean, label=name)
            ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.15)
        ax.set_xlabel("env steps")
        ax.set_title(f"{env}: {panel}")
        ax.set_ylabel("evaluation return")
        if curves:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
