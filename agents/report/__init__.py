"""Statistics and the results report of a compare grid.

    python scripts/report.py runs/<experiment> [--out DIR] [--last-k 3] [--reps 2000]
    python scripts/report.py runs/<a> runs/<b> --out DIR [--variants baseline swa]   # grids side by side

Reads every ``<env>/<variant>/seed<k>/`` (``result.json`` + ``eval.csv``, and ``posthoc.json`` where
made) of one experiment, and its ``ensemble_<env>_<variant>.json`` (``scripts/ensemble.py``) where
made; of several, when their envs differ (the aggregate then spans them all); writes ``report.md``,
``runs.csv`` and a learning-curve PNG per env (the deployed policies; the further averages).

Statistics follow Agarwal et al. (2021): per env, mean +- std and 95% percentile-bootstrap CI
over seeds; the paired difference (same seed, forked from the same prefix) with its CI;
across envs, IQM and probability of improvement over the baseline (of SWA and of the baseline's
eval-only average) with stratified-bootstrap CIs; no CI under 3 seeds, and an env under 3 baseline
seeds, or whose baseline has not left random play (CI lower bound at or under the random score),
is left out of the aggregate, and an env with more seeds than another enters with its first n (the
report names both). The estimators are in ``agents/stats.py``, the reference scores in
``agents/references.py``. Parts: ``runs`` (loading, arms), ``summary`` (the numbers), ``tables``
(the text), ``plots`` (the curves); ``rl-swa report`` is ``agents/cli/report.py``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from agents.config import ConfigError
from agents.report.plots import curve_series, plot_curves
from agents.report.runs import ARMS, arms_in, load_grids, load_runs
from agents.report.summary import summarize
from agents.report.tables import markdown, runs_csv

__all__ = [
    "ARMS",
    "arms_in",
    "curve_series",
    "load_grids",
    "load_runs",
    "markdown",
    "report_text",
    "summarize",
    "write_report",
]


def report_text(dirs: Sequence[Path], runs: list[dict], summary: dict, not_finished: dict[str, str] | None = None) -> str:
    """report.md of ``summary`` (made from ``runs`` of the grids ``dirs``)."""
    text = markdown(summary, f"Results: {' + '.join(d.name for d in dirs)}")
    made_by = sorted({(r.get("code", "not recorded"), r.get("cpu", "not recorded")) for r in runs})
    text += "\n## Made by\n\n" + "".join(f"- code {code} on {cpu}\n" for code, cpu in made_by)
    if not_finished:
        text += "\n## Runs that did not finish\n\n" + "".join(
            f"- {label}: {why}\n" for label, why in sorted(not_finished.items())
        )
    return text


def write_report(
    experiment_dir: str | Path | Sequence[str | Path],
    out_dir: str | Path | None = None,
    last_k: int = 3,
    reps: int = 2000,
    not_finished: dict[str, str] | None = None,
    variants: Sequence[str] = (),
) -> Path:
    """The report of one grid (in its ``report/`` unless ``out_dir``) or of several side by side (``out_dir`` needed)."""
    dirs = [Path(experiment_dir)] if isinstance(experiment_dir, (str, Path)) else [Path(d) for d in experiment_dir]
    if len(dirs) > 1 and out_dir is None:
        raise ConfigError("--out: needed when the report covers several grids")
    out = Path(out_dir) if out_dir else dirs[0] / "report"
    out.mkdir(parents=True, exist_ok=True)
    runs, ensembles = load_grids(dirs, variants)
    if not runs:
        raise ConfigError(f"{', '.join(map(str, dirs))}: no finished runs (no */*/seed*/result.json)")
    summary = summarize(runs, last_k, reps, ensembles)
    for env in summary["envs"]:
        plot_curves(runs, env, out / f"curves_{env.replace('/', '_')}.png")
    (out / "runs.csv").write_text(runs_csv(runs))
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    (out / "report.md").write_text(report_text(dirs, runs, summary, not_finished))
    return out / "report.md"
