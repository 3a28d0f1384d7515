"""Post-hoc scoring: a finished run's policy on N episodes one at a time vs all together (``play``).

    python benchmarks/bench_play.py <run dir> [<run dir> ...] [--episodes 10] [--json out.json]

The run's own evaluation settings (``eval.deterministic``); the validation seeds of
``scripts/posthoc.py``. ``together`` steps one VecEnv of all episodes with one batched forward
pass per step; the time of one policy's episodes is what ``posthoc.py`` pays per candidate.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from _machine import write_json

from agents.cli.posthoc import _load_run, episode_seeds, play


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--json")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = []
    for run in args.runs:
        cfg, env_id, _, online, _ = _load_run(Path(run))
        seeds = episode_seeds("validation", cfg.eval.seed, args.episodes)
        row = {"run": run, "env": env_id, "deterministic": cfg.eval.deterministic, "episodes": args.episodes}
        for together in (False, True):
            start = time.perf_counter()
            score = play(online, cfg, env_id, seeds, cfg.eval.deterministic, together)
            key = "together" if together else "alone"
            row |= {f"{key}_s": round(time.perf_counter() - start, 2), f"{key}_score": round(score, 2)}
        row["speedup"] = round(row["alone_s"] / row["together_s"], 2)
        print(row)
        rows.append(row)
    if args.json:
        write_json(args.json, {"rows": rows})


if __name__ == "__main__":
    main()
