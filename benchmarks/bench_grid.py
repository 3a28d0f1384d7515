"""Experiment throughput: runs per hour of compare --jobs 2 vs --jobs 1, and the cost of a forked pair.

    python benchmarks/bench_grid.py [--steps 40000] [--seeds 2] [--json out.json]

A2C CartPole (the classic config, RMSprop) with a reduced budget; each grid is a fresh output
folder. A forked pair = one prefix (75%) + two arms (25% each); the unforked grid trains both
arms from scratch.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import write_json

ROOT = Path(__file__).resolve().parent.parent


def grid(out: Path, steps: int, seeds: int, jobs: int, fork: bool) -> float:
    cmd = [
        sys.executable,
        str(ROOT / "scripts/compare.py"),
        str(ROOT / "configs/classic/cartpole_a2c.yaml"),
        "--budget",
        "smoke",
        "--set",
        f"budgets.smoke.timesteps={steps}",
        "--set",
        f"budgets.smoke.eval_freq={steps // 4}",
        "--set",
        "budgets.smoke.eval_episodes=5",
        "--seeds",
        str(seeds),
        "--jobs",
        str(jobs),
        "--out",
        str(out),
        "--reps",
        "100",
    ] + ([] if fork else ["--no-fork"])
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t


def job_walls(out: Path) -> dict[str, list[float]]:
    """Wall seconds each job recorded for itself (prefix.json, result.json): training, evaluation
    and saving, without the compare process's start-up and report."""
    walls: dict[str, list[float]] = {}
    for f in sorted(out.glob("*/*/*/seed*/prefix.json")) + sorted(out.glob("*/*/*/seed*/result.json")):
        walls.setdefault(f.parent.parent.name, []).append(json.loads(f.read_text())["wall_s"])
    return walls


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=40_000)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    runs = 2 * args.seeds
    with tempfile.TemporaryDirectory() as tmp:
        walls = {
            name: grid(Path(tmp) / name, args.steps, args.seeds, jobs, fork)
            for name, jobs, fork in (("jobs1_nofork", 1, False), ("jobs1_fork", 1, True), ("jobs2_fork", 2, True))
        }
        plain, forked = job_walls(Path(tmp) / "jobs1_nofork"), job_walls(Path(tmp) / "jobs1_fork")
    one_run = sum(plain["baseline"]) / len(plain["baseline"])  # the plain baseline run
    pair = sum(sum(forked[k]) for k in ("prefix", "baseline", "swa")) / args.seeds
    per_hour = {k: runs / v * 3600 for k, v in walls.items()}
    result = {
        "steps": args.steps,
        "seeds": args.seeds,
        "runs": runs,
        "wall_s": walls,
        "runs_per_hour": per_hour,
        "jobs2_over_jobs1": per_hour["jobs2_fork"] / per_hour["jobs1_fork"],
        "forked_pair_over_one_run": (walls["jobs1_fork"] / args.seeds) / (walls["jobs1_nofork"] / runs),
        "job_walls": {"plain": plain, "forked": forked},
        "forked_pair_over_one_run_jobs_only": pair / one_run,
    }
    for k, v in walls.items():
        print(f"{k:<13} {v:7.1f} s for {runs} runs -> {per_hour[k]:6.0f} runs/h")
    print(
        f"--jobs 2 vs --jobs 1: {result['jobs2_over_jobs1']:.2f}x runs/h; "
        f"forked pair costs {result['forked_pair_over_one_run']:.2f} plain runs "
        "(process start-up and evaluation included)"
    )
    print(
        f"jobs' own wall times: prefix + two arms = {pair:.1f} s per seed, one plain baseline run = {one_run:.1f} s -> "
        f"{result['forked_pair_over_one_run_jobs_only']:.2f} plain runs (without compare's start-up and report)"
    )
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
