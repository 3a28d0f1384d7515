"""Checkpoint averages against per-step averages: what `rl-swa select` keeps from a run's SB3
checkpoint zips alone, against what it keeps from the run's own candidates (the callback's averages).

    python scripts/checkpoint_averages.py score RUN_DIR [RUN_DIR ...] [--episodes 200] [--test-episodes 50]
    python scripts/checkpoint_averages.py table RUN_DIR_OR_FOLDER [...] [--out FILE.md]

score: RUN_DIR is a finished run that saved SB3 ``CheckpointCallback`` zips (``sb3_checkpoints:`` in
its config) and was selected (its ``selection.json`` with test episodes). Its zips, and those of its
shared prefix when it was forked, are linked into ``RUN_DIR/sb3_folder/`` (what a user's own
checkpoint folder holds); `rl-swa select` chooses among them as a checkpoint folder (the last
checkpoint, every checkpoint, equal averages of the last k, EMA averages) with the run's own
validation and test seeds, so both choices play the same test episodes (paired). Writes
``RUN_DIR/checkpoint_selection.json``.

table: per env, test means of the deployed policies minus the online weights: from the zips, from
the run's candidates, and the share of the second's gain the first keeps (sum over runs).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from agents.cli._cli import Parser, guarded, int_in  # first: signals during start-up
from agents.report.per_run import emit, per_run, share
from rl_swa.files import atomic_write


def _args() -> argparse.Namespace:
    p = Parser(description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("score")
    s.add_argument("runs", nargs="+")
    s.add_argument("--episodes", type=int_in(20, 10**5), default=200)
    s.add_argument("--test-episodes", type=int_in(1, 10**5), default=50)
    t = sub.add_parser("table")
    t.add_argument("paths", nargs="+")
    t.add_argument("--out", default=None)
    return p.parse_args()


def link_folder(run: Path) -> Path:
    """RUN/sb3_folder/ with links to the zips (and pkl files) of the run and of its prefix."""
    folder = run / "sb3_folder"
    folder.mkdir(exist_ok=True)
    prefix = run.parent.parent / "prefix" / run.name
    for src in (prefix / "sb3_checkpoints", run / "sb3_checkpoints"):
        for f in sorted(src.glob("rl_model_*")) if src.is_dir() else []:
            link = folder / f.name
            if not link.exists():
                link.symlink_to(f.resolve())
    return folder


def score(run: Path, episodes: int, test_episodes: int) -> dict:
    from agents.deploy import run_config
    from rl_swa.select_folder import select_folder

    cfg, env_id = run_config(run)
    own = json.loads((run / "selection.json").read_text())
    if len(own.get("test", {}).get("returns", {}).get("online", [])) < test_episodes:
        raise SystemExit(f"{run}/selection.json: no {test_episodes} test episodes (rl-swa select RUN --test-episodes N first)")
    _, result = select_folder(
        link_folder(run), episodes, env=env_id, test_episodes=test_episodes, seed=cfg.eval.seed, write=False
    )
    out = {"run": str(run), "env": env_id, "checkpoints": result, "own": {k: own[k] for k in ("deployed", "episodes", "test")}}
    atomic_write(run / "checkpoint_selection.json", json.dumps(out, indent=1, allow_nan=False))
    return out


def rows(results: list[dict]) -> list[str]:
    lines = []
    for env in sorted({r["env"] for r in results}):
        runs = [r for r in results if r["env"] == env]
        n = len(runs)
        zips, own = [], []
        for r in runs:
            mine = r["checkpoints"]["test"]["returns"]["deployed"]
            theirs = {k: v[: len(mine)] for k, v in r["own"]["test"]["returns"].items()}  # the same seeds, first to last
            zips.append(np.mean(mine) - np.mean(theirs["online"]))
            own.append(np.mean(theirs["deployed"]) - np.mean(theirs["online"]))
        kept = share(sum(zips), sum(own))
        kinds = ", ".join(r["checkpoints"]["deployed"] for r in runs)
        lines.append(f"| {env} | {n} | {np.mean(zips):+.4g} | {np.mean(own):+.4g} | {kept} | {kinds} |")
    return lines


@guarded
def main() -> int:
    args = _args()
    torch.set_num_threads(1)
    if args.command == "score":
        for run in map(Path, args.runs):
            out = score(run, args.episodes, args.test_episodes)
            print(f"{run}: from the zips {out['checkpoints']['deployed']}; from the run {out['own']['deployed']}", flush=True)
        return 0
    emit(
        [
            "| env | runs | deployed from the zips - online (test) | deployed from the run - online | share kept "
            "| chosen from the zips |",
            "|---|---|---|---|---|---|",
            *rows(per_run(args.paths, "checkpoint_selection.json")),
        ],
        args.out,
    )
    return 0


if __name__ == "__main__":
    main()
