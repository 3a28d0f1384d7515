"""The same comparisons of several grids in one table, one row per (env, grid): an env trained at
120k and at 1M steps reads as two rows of the same columns.

    rl-swa report --budgets docs/results/campaign/mujoco_all docs/results/campaign/deploy_mujoco_ddpg \
        docs/results/campaign/scale_mujoco_ddpg_1m --out docs/results/scale

Each grid is summarized on its own (``summarize``: seeds pair within a grid only), so grids that
hold the same env at different budgets never mix. Columns: SWA against the baseline, the
baseline's eval-only average against its online weights (last evaluation, paired per seed), and
``rl-swa select`` on the baseline runs (test episodes: the deployed policy against the online
weights, the best evaluated checkpoint and the fixed-start average), what it deployed and its cost.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agents.config import ConfigError
from agents.report.glance import steps_label
from agents.report.runs import load_runs
from agents.report.summary import summarize
from agents.report.tables import _fmt, _mean_ci, _row, _signed, decimals

PAIRED = {"swa - baseline": "SWA - baseline", "baseline_avg - baseline": "eval-only average - online"}
DEPLOYED = ("deployed - online", "deployed - best evaluated", "deployed - fixed-start average")


def _steps(steps: list[int]) -> str:
    return " / ".join(steps_label(s).removesuffix(" steps") for s in steps) or "n/a"


def _cell(stat: dict | None) -> str:
    """Mean [95% CI] (wins / seeds); under 3 seeds the mean alone; absent: empty."""
    if stat is None:
        return ""
    if stat["n"] < 3:
        return f"{_signed(stat['mean'], decimals(stat['mean']))} ({stat['n']} seed{'s' * (stat['n'] > 1)}, no CI)"
    _, ci = _mean_ci(stat)
    return f"{_signed(stat['mean'], decimals(stat['mean'], *stat['ci']))} {ci} ({stat['wins']}/{stat['n']})"


def rows(dirs: Sequence[str | Path], reps: int = 2000) -> list[dict]:
    """Per grid and env: the budget, the paired differences and select's results, as plain data."""
    out = []
    for d in dirs:
        runs = load_runs(d)
        if not runs:
            raise ConfigError(f"{d}: no finished runs (no */*/seed*/result.json)")
        summary = summarize(runs, reps=reps)
        for env in summary["envs"]:
            per = summary["per_env"][env]
            sel = per.get("selection", {}).get("baseline", {})
            out.append(
                {
                    "env": env,
                    "grid": Path(d).name,
                    "timesteps": per["timesteps"],
                    "seeds": per["arms"].get("baseline", {}).get("n", 0),
                    **{k: per["paired"].get(k) for k in PAIRED},
                    **{k: sel.get(k) for k in DEPLOYED},
                    "deployed": dict(Counter(sel.get("deployed", []))),
                    "wall_share": sel.get("wall_share"),
                }
            )
    return sorted(out, key=lambda r: (r["env"], max(r["timesteps"], default=0)))


def table(data: list[dict]) -> str:
    head = [
        "env",
        "budget",
        "grid",
        "seeds",
        *PAIRED.values(),
        *DEPLOYED,
        "deployed (runs)",
        "select's share of training",
    ]
    lines = [_row(head), "|" + "---|" * len(head)]
    for r in data:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(r["deployed"].items(), key=lambda kv: -kv[1]))
        share = r["wall_share"]
        share = f"{_fmt(100 * share)}%" if share is not None and np.isfinite(share) else ""
        cells = [_cell(r[k]) for k in (*PAIRED, *DEPLOYED)]
        lines.append(_row([r["env"], _steps(r["timesteps"]), r["grid"], r["seeds"], *cells, kinds, share]))
    return "\n".join(lines)


def write_budgets(dirs: Sequence[str | Path], out: str | Path, reps: int = 2000) -> Path:
    """``budgets.md`` in ``out``: the table and the command that made it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    command = "rl-swa report --budgets " + " ".join(str(d) for d in dirs) + f" --out {out}"
    text = (
        "Last evaluation (SWA, eval-only average: paired per seed within a grid) and `rl-swa select`'s "
        "test episodes (baseline runs): mean over seeds [95% bootstrap CI] (seeds above 0 / seeds).\n\n"
        f"{table(rows(dirs, reps))}\n\nMade by `{command}`.\n"
    )
    (out / "budgets.md").write_text(text)
    return out / "budgets.md"
