"""The runs of one or more grids, and the arms (policies) a report compares."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agents.config import ConfigError
from agents.rundir import read_csv, read_json

# What each arm deploys: the baseline its online policy, the swa arm its averaged policy.
ARMS = {
    "baseline": ("baseline", "online_mean_reward"),
    "baseline_avg": ("baseline", "swa_mean_reward"),
    "swa_online": ("swa", "online_mean_reward"),
    "swa": ("swa", "swa_mean_reward"),
}
ARM_LABELS = {
    "baseline": "baseline (online)",
    "baseline_avg": "baseline + eval-only average",
    "swa_online": "swa arm, online weights",
    "swa": "SWA (averaged policy)",
}


def load_runs(experiment_dir: str | Path, variants: Sequence[str] = ()) -> list[dict]:
    """Every finished run (with result.json) under ``experiment_dir``; only ``variants`` if given."""
    runs = []
    for result in sorted(Path(experiment_dir).glob("*/*/seed*/result.json")):
        if result.parent.parent.name == "prefix" or (variants and result.parent.parent.name not in variants):
            continue
        info = read_json(result)
        info["curve"] = read_csv(result.parent / "eval.csv") if (result.parent / "eval.csv").exists() else []
        posthoc = result.parent / "posthoc.json"
        info["posthoc"] = read_json(posthoc) if posthoc.exists() else None
        selection = result.parent / "selection.json"  # rl-swa select
        if selection.exists():
            info["selection"] = read_json(selection)
        runs.append(info)
    return runs


def load_ensembles(experiment_dir: str | Path, variants: Sequence[str] = ()) -> list[dict]:
    """The test scores of SWAG and the ensembles of averages (``scripts/ensemble.py``), one per (env, variant)."""
    found = [read_json(p) for p in sorted(Path(experiment_dir).glob("ensemble_*.json"))]
    return [e for e in found if not variants or e["variant"] in variants]


def load_grids(experiment_dirs: Sequence[str | Path], variants: Sequence[str] = ()) -> tuple[list[dict], list[dict]]:
    """Runs and ensembles of one or more grids; two grids may not hold the same env."""
    runs, ensembles, owner = [], [], {}
    for d in experiment_dirs:
        found = load_runs(d, variants)
        for env in sorted({r["env"] for r in found}):
            if env in owner:
                raise ConfigError(f"{d}: {env} is also in {owner[env]}; give each env's runs from one grid only")
            owner[env] = d
        runs += found
        ensembles += load_ensembles(d, variants)
    return runs, ensembles


def arms_in(runs: list[dict]) -> dict[str, tuple[str, str]]:
    """The standard arms plus one per further average found in the evaluation histories."""
    arms = dict(ARMS)
    for variant in sorted({r["variant"] for r in runs} - {"baseline", "swa"}):  # act_avg, reset_avg: online and average
        arms[variant] = (variant, "online_mean_reward")
        arms[f"{variant}:average"] = (variant, "swa_mean_reward")
    for r in runs:
        for key in r["curve"][-1] if r["curve"] else {}:
            name = key.removesuffix("_mean_reward")
            if key.endswith("_mean_reward") and name not in ("online", "swa"):
                arms[f"{r['variant']}:{name}"] = (r["variant"], key)
    return arms


def label(arm: str) -> str:
    if arm in ARM_LABELS:
        return ARM_LABELS[arm]
    if ":" not in arm:
        return f"{arm} arm, online weights"
    variant, name = arm.split(":", 1)
    return f"{variant} arm, its main average" if name == "average" else f"{variant} arm, average {name}"


def arm_scores(runs: list[dict], env: str, arm: str, arms: dict | None = None) -> dict[int, float]:
    variant, key = (arms or ARMS)[arm]
    out = {}
    for r in runs:
        if r["env"] == env and r["variant"] == variant and r["curve"]:
            value = r["curve"][-1].get(key, np.nan)
            if not np.isnan(value):
                out[int(r["seed"])] = float(value)
    return out
