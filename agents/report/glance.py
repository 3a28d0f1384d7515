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

from agents.stats import bootstrap_ci

# The test scores compared with the online weights, as selection.json names them -> as the figure does.
POLICIES = {
    "deployed": "deployed by select",
    "best evaluated": "best evaluated checkpoint (EvalCallback)",
    "fixed-start average": "equal average of the last quarter (SWA, eval-only)",
    "posthoc choice": "post-hoc average chosen on validation episodes",
}


def collect(folders: list[str | Path]) -> dict[str, dict]:
    """Per env: the runs, their difference from online per policy, and how many replaced online."""
    out: dict[str, dict] = {}
    for folder in folders:
        for path in sorted(Path(folder).glob("**/selection.json")):
            data = json.loads(path.read_text())
            means = (data.get("test") or {}).get("means") or {}
            if "online" not in means:
                continue
            env = out.setdefault(data["env"], {"runs": 0, "replaced": 0, "diffs": {k: [] for k in POLICIES}})
            env["runs"] += 1
            env["replaced"] += data["deployed"] != data.get("default", "online")
            for key in POLICIES:
                if key in means:
                    env["diffs"][key].append(means[key] - means["online"])
    return out


def _interval(diffs: list[float]) -> tuple[float, float, float]:
    lo, hi = bootstrap_ci(diffs) if len(diffs) > 1 else (float("nan"), float("nan"))
    return float(np.mean(diffs)), lo, hi


def _num(x: float) -> str:
    return f"{x:+.0f}" if abs(x) >= 100 else f"{x:+.1f}" if abs(x) >= 1 else f"{x:+.2f}"


def table(data: dict[str, dict]) -> str:
    head = "| env | runs | replaced online | " + " | ".join(f"{k} - online" for k in POLICIES) + " |"
    lines = [head, "|" + "---|" * (3 + len(POLICIES))]
    for env, d in data.items():
        cells = []
        for key in POLICIES:
            x = d["diffs"][key]
            if not x:
                cells.append("")
                continue
            m, lo, hi = _interval(x)
            wins = sum(v > 0 for v in x)
            cells.append(f"{_num(m)} [{_num(lo)}, {_num(hi)}] ({wins}/{len(x)})" if len(x) > 1 else f"{_num(m)} (1 run)")
        lines.append(f"| {env} | {d['runs']} | {d['replaced']} of {d['runs']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(data: dict[str, dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(data)
    cols = min(3, len(envs))
    rows = -(-len(envs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols + 2.2, 2.3 * rows + 0.6), sharey=True, squeeze=False)
    keys = list(POLICIES)
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
        ax.set_xlabel("test return - online", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(envs) :]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_yticks(range(len(keys)), [POLICIES[k] for k in keys], fontsize=8)
    axes[0][0].invert_yaxis()
    fig.suptitle("Each policy against the final online weights on the same test episodes (mean over runs, 95% CI)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_glance(folders: list[str | Path], out: str | Path) -> Path:
    """``glance.png`` and ``glance.md`` in ``out``; the path of the Markdown file."""
    data = collect(folders)
    if not data:
        raise ValueError("no selection.json with test scores under the folders given")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figure(data, out / "glance.png")
    command = "rl-swa report --glance " + " ".join(str(f) for f in folders) + f" --out {out}"
    md = f"{table(data)}\n\nMade by `{command}`.\n"
    (out / "glance.md").write_text(md)
    return out / "glance.md"
