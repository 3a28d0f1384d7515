"""The results at a glance: per env, each policy's test score relative to the final online weights.

Reads the ``selection.json`` of finished runs (``rl-swa select --test-episodes N``: every policy
scored on the same test episodes) under the given folders, and writes ``glance.png`` (one panel
per env: the mean difference from the online weights over the runs with its bootstrap 95% interval,
for the deployed policy, the best evaluated checkpoint, the fixed-start average and the post-hoc
choice) and ``glance.md`` (the same as a table, with how often ``select`` replaced the online weights).

    rl-swa report --glance docs/results/campaign/deploy_* --out docs/results
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from agents.report.tables import _fmt, decimals
from agents.rundir import training_wall_s
from agents.stats import bootstrap_ci

# The test scores compared with the online weights, as selection.json names them -> as the figure does.
POLICIES = {
    "deployed": "deployed by select",
    "best evaluated": "best evaluated checkpoint (EvalCallback)",
    "fixed-start average": "equal average of the last quarter (SWA, eval-only)",
    "posthoc choice": "post-hoc average chosen on validation episodes",
}
# The same for folders made without rl-swa (RL Zoo, CheckpointCallback): against the final model.
FOLDER_POLICIES = {
    "deployed": "deployed by select",
    "best model": "best_model.zip, final statistics (enjoy.py --load-best)",
    "last checkpoint": "last checkpoint",
}


def collect(folders: list[str | Path], reference: str = "online", policies: dict = POLICIES) -> dict[str, dict]:
    """Per env: the runs, their difference from ``reference`` per policy, how many replaced the
    default, and the cost (episodes, select's wall time and its share of training where recorded).
    An env trained at several budgets gets one entry per budget ("Hopper-v5 at 1M steps")."""
    records = []
    for folder in folders:
        for path in sorted(Path(folder).glob("**/selection.json")):
            data = json.loads(path.read_text())
            means = (data.get("test") or {}).get("means") or {}
            if reference in means:
                records.append((data["env"], _timesteps(path), path, data, means))
    budgets: dict[str, set] = {}
    for env, steps, *_ in records:
        budgets.setdefault(env, set()).add(steps)
    first = {env: i for i, (env, *_) in reversed(list(enumerate(records)))}
    out: dict[str, dict] = {}
    for env, steps, path, data, means in sorted(records, key=lambda r: (first[r[0]], r[1] or 0)):
        key = env if len(budgets[env]) == 1 else f"{env} at {steps_label(steps)}"
        entry = out.setdefault(key, {"runs": 0, "replaced": 0, "diffs": {k: [] for k in policies}, "cost": []})
        entry["runs"] += 1
        entry["replaced"] += data["deployed"] != data.get("default", "online")
        for name in policies:
            if name in means:
                entry["diffs"][name].append(means[name] - means[reference])
        entry["cost"].append((data.get("episodes"), data.get("wall_s"), _train_wall_s(path, data)))
    return out


def _timesteps(path: Path) -> int | None:
    """The run's training budget in steps, from the ``result.json`` beside its ``selection.json``."""
    result = path.parent / "result.json"
    return json.loads(result.read_text()).get("timesteps") if result.is_file() else None


def steps_label(steps: int | None) -> str:
    """1000000 -> "1M steps", 120000 -> "120k steps"; an unrecorded budget: "an unrecorded budget"."""
    if not steps:
        return "an unrecorded budget"
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if steps >= size:
            return f"{steps / size:g}{suffix} steps"
    return f"{steps} steps"


def _train_wall_s(path: Path, data: dict) -> float | None:
    """The training wall time: from the run's ``result.json`` (a forked or resumed run's estimated
    whole), its selection's record, or ``train_wall_s.txt`` beside an RL Zoo run's files."""
    if (path.parent / "result.json").is_file():
        return training_wall_s(json.loads((path.parent / "result.json").read_text()))
    if data.get("train_wall_s"):
        return float(data["train_wall_s"])
    for f in (path.parent / "train_wall_s.txt", path.parent.parent / "train_wall_s.txt"):
        if f.is_file():
            return float(f.read_text().split()[0])
    return None


def _interval(diffs: list[float]) -> tuple[float, float, float]:
    lo, hi = bootstrap_ci(diffs) if len(diffs) > 1 else (float("nan"), float("nan"))
    return float(np.mean(diffs)), lo, hi


def _cell(x: list[float]) -> str:
    """Mean [CI] (runs above 0 / runs), the report's rule for decimals; a policy never different: 0."""
    if not any(x):
        return "0 (1 run)" if len(x) == 1 else f"0 in all {len(x)} runs"
    m, lo, hi = _interval(x)
    if len(x) == 1:
        return f"{_fmt(m)} (1 run)"
    d = decimals(m, lo, hi)
    return f"{_fmt(m, d)} [{_fmt(lo, d)}, {_fmt(hi, d)}] ({sum(v > 0 for v in x)}/{len(x)})"


def table(data: dict[str, dict], reference: str = "online", policies: dict = POLICIES) -> str:
    head = f"| env | runs | replaced {reference} | " + " | ".join(f"{k} - {reference}" for k in policies) + " |"
    lines = [head, "|" + "---|" * (3 + len(policies))]
    for env, d in data.items():
        cells = []
        for key in policies:
            cells.append(_cell(d["diffs"][key]) if d["diffs"][key] else "")
        lines.append(f"| {env} | {d['runs']} | {d['replaced']} of {d['runs']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cost_table(data: dict[str, dict]) -> str:
    """Per env: validation episodes, select's wall time, and its share of the training wall time."""
    lines = ["| env | episodes (mean) | select wall s (mean) | share of training (range) |", "|---|---|---|---|"]
    for env, d in data.items():
        eps = [c[0] for c in d["cost"] if c[0] is not None]
        wall = [c[1] for c in d["cost"] if c[1] is not None]
        share = [c[1] / c[2] for c in d["cost"] if c[1] is not None and c[2]]
        shares = f"{100 * min(share):.1f}-{100 * max(share):.1f}%" if share else ""
        mean_eps = f"{np.mean(eps):.0f}" if eps else ""
        mean_wall = f"{np.mean(wall):.1f}" if wall else ""
        lines.append(f"| {env} | {mean_eps} | {mean_wall} | {shares} |")
    return "\n".join(lines)


def figure(data: dict[str, dict], path: Path, reference: str = "online", policies: dict = POLICIES) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(data)
    cols = min(3, len(envs))
    rows = -(-len(envs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols + 2.2, 2.3 * rows + 0.6), sharey=True, squeeze=False)
    keys = list(policies)
    for ax, env in zip(axes.flat, envs):
        for y, key in enumerate(keys):
            x = data[env]["diffs"][key]
            if not x:
                continue
            m, lo, hi = _interval(x)
            color = "tab:blue" if key == "deployed" else "tab:gray"
            err = [[m - lo if lo == lo else 0.0], [hi - m if hi == hi else 0.0]]  # no interval from one run
            ax.errorbar([m], [y], xerr=err, fmt="o", color=color, capsize=3)
        ax.axvline(0.0, color="black", lw=0.8)
        ax.set_title(f"{env} ({data[env]['runs']} runs)", fontsize=9)
        ax.set_xlabel(f"test return - {reference}", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(envs) :]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_yticks(range(len(keys)), [policies[k] for k in keys], fontsize=8)
    axes[0][0].invert_yaxis()
    title = "the final online weights" if reference == "online" else "the final model"
    fig.suptitle(f"Each policy against {title} on the same test episodes (mean over runs, 95% CI)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_glance(folders: list[str | Path], out: str | Path) -> Path:
    """``glance.png`` and ``glance.md`` in ``out``; the path of the Markdown file. Runs of rl-swa are
    compared with their online weights; folders made without rl-swa (RL Zoo, CheckpointCallback)
    with their final model, written as ``any_run.png`` and ``any_run.md``."""
    reference, policies, name = "online", POLICIES, "glance"
    data = collect(folders, reference, policies)
    if not data:
        reference, policies, name = "final model", FOLDER_POLICIES, "any_run"
        data = collect(folders, reference, policies)
    if not data:
        raise ValueError("no selection.json with test scores under the folders given")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figure(data, out / f"{name}.png", reference, policies)
    command = "rl-swa report --glance " + " ".join(str(f) for f in folders) + f" --out {out}"
    md = f"{table(data, reference, policies)}\n\n{cost_table(data)}\n\nMade by `{command}`.\n"
    (out / f"{name}.md").write_text(md)
    return out / f"{name}.md"
