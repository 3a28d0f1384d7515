"""Run the grid envs x {baseline, swa} x seeds in a local process pool, then write the report.

    python scripts/compare.py configs/classic/cartpole_a2c.yaml --budget short --seeds 5 --jobs 2

Unfinished runs continue from their newest checkpoint. Forked pairs by default: per (env, seed) the prefix up to the SWA start is trained once, then both
arms continue from its checkpoint (``--no-fork`` trains each arm from scratch). Finished runs
(with ``result.json``) are skipped, so an interrupted grid resumes where it stopped. A failing
run is reported and the others go on.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.builders import VARIANTS
from agents.config import ConfigError, load_config
from scripts._cli import command_line, guarded


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def _prefix_job(config, overrides, env_id, seed, budget, root, command):
    from agents.runner import train_prefix

    cfg = load_config(config, overrides)
    return str(train_prefix(cfg, env_id, seed, budget, root, command))


def _run_job(config, overrides, env_id, variant, seed, budget, root, command, fork):
    from agents.runner import run, run_dir

    cfg = load_config(config, overrides)
    path = run_dir(root, cfg, env_id, variant, seed)
    # an unfinished run (no result.json) continues from its newest checkpoint
    return run(cfg, env_id, variant, seed, budget, root, command, fork=fork, resume=(path / "config.yaml").exists())


def _pool(jobs: int, tasks: list[tuple], fn, label) -> list[str]:
    failures = []
    with ProcessPoolExecutor(max_workers=jobs, initializer=_worker_init) as pool:
        futures = {pool.submit(fn, *t): t for t in tasks}
        for fut in as_completed(futures):
            name = label(futures[fut])
            try:
                fut.result()
                print(f"done   {name}", flush=True)
            except Exception as exc:  # a failing run is reported; the others go on
                failures.append(name)
                print(f"FAILED {name}: {type(exc).__name__}: {exc}", flush=True)
                traceback.print_exc(file=sys.stderr)
    return failures


@guarded
def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config")
    p.add_argument("--budget", default="short")
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1")
    p.add_argument("--envs", nargs="*", default=None, help="subset of the config's envs")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel runs (one torch thread each)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default="runs")
    p.add_argument("--no-fork", action="store_true", help="train both arms from scratch")
    p.add_argument("--reps", type=int, default=2000, help="bootstrap resamples in the report")
    args = p.parse_args()
    cfg = load_config(args.config, args.overrides)
    cfg.budget(args.budget)
    if args.seeds < 1:
        raise ConfigError(f"--seeds: {args.seeds} is not allowed; use an int >= 1")
    if args.jobs < 1:
        raise ConfigError(f"--jobs: {args.jobs} is not allowed; use an int >= 1")
    envs = args.envs or cfg.envs
    unknown = [e for e in envs if e not in cfg.envs]
    if unknown:
        raise ConfigError(f"--envs: {unknown} not in the config's envs {cfg.envs}")
    from agents.envs import check_env_id
    from agents.runner import run_dir
    from scripts.report import write_report

    for env_id in envs:
        check_env_id(cfg, env_id)
    fork = not args.no_fork
    command = command_line()
    todo = [(e, v, s) for e in envs for s in range(args.seeds) for v in VARIANTS if not (run_dir(args.out, cfg, e, v, s) / "result.json").exists()]
    done = len(envs) * args.seeds * len(VARIANTS) - len(todo)
    print(f"{cfg.experiment}: {len(todo)} runs to do, {done} already finished; fork={fork}, jobs={args.jobs}", flush=True)
    failures = []
    if fork:
        prefixes = sorted({(e, s) for e, _, s in todo})
        failures += _pool(args.jobs, [(args.config, args.overrides, e, s, args.budget, args.out, command) for e, s in prefixes], _prefix_job, lambda t: f"{t[2]} prefix seed{t[3]}")
    tasks = [(args.config, args.overrides, e, v, s, args.budget, args.out, command, fork) for e, v, s in todo]
    failures += _pool(args.jobs, tasks, _run_job, lambda t: f"{t[2]} {t[3]} seed{t[4]}")
    report = write_report(Path(args.out) / cfg.experiment, reps=args.reps)
    print(f"report: {report}")
    if failures:
        print(f"{len(failures)} failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    main()
