"""Run the grid envs x {baseline, swa} x seeds in a local process pool, then write the report.

    python scripts/compare.py configs/classic/cartpole_a2c.yaml --budget short --seeds 5 --jobs 2
    python scripts/compare.py configs/atari/a2c.yaml --budget paper --seeds 5 --backend ray --address auto --out /shared/runs

Unfinished runs continue from their newest checkpoint. Forked pairs by default: per (env, seed) the prefix up to the SWA start is trained once, then both
arms continue from its checkpoint (``--no-fork`` trains each arm from scratch). Finished runs
(with ``result.json``) are skipped, so an interrupted grid resumes where it stopped. A failing
run is reported and the others go on.

``--backend ray`` submits each run as a Ray task with the config's ``resources`` (cpus, gpus);
the run directories live under ``--out``, which must be storage that every Ray node mounts at the
same path (NFS, a cluster file system). Failed or preempted runs are retried (``--retries``) and
resume from their newest checkpoint; rerunning the command resumes a partly done grid.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
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
    if (path / "result.json").exists():  # finished meanwhile (a retried task, a second driver)
        return json.loads((path / "result.json").read_text())
    # an unfinished run (no result.json) continues from its newest checkpoint
    return run(cfg, env_id, variant, seed, budget, root, command, fork=fork, resume=(path / "config.yaml").exists())


def _report(name: str, exc: BaseException | None, failures: list[str]) -> None:
    if exc is None:
        print(f"done   {name}", flush=True)
        return
    failures.append(name)  # a failing run is reported; the others go on
    print(f"FAILED {name}: {type(exc).__name__}: {exc}", flush=True)


@dataclass
class Job:
    fn: Callable
    args: tuple
    label: str
    then: list[Job] = field(default_factory=list)  # submitted when this job succeeds (a prefix's two arms)


def _drive(submit: Callable, wait_one: Callable, roots: list[Job]) -> list[str]:
    """Run jobs as soon as what they need is done: one pool for prefixes and arms, no barrier between them."""
    failures: list[str] = []
    pending = {}
    for job in roots:
        pending[submit(job)] = job
    while pending:
        handle, exc = wait_one(list(pending))
        job = pending.pop(handle)
        if exc is not None:
            traceback.print_exception(exc, file=sys.stderr)
        _report(job.label, exc, failures)
        for child in job.then:
            if exc is None:
                pending[submit(child)] = child
            else:
                _report(child.label, RuntimeError(f"not run: {job.label} failed"), failures)
    return failures


def _local_pool(jobs: int, roots: list[Job]) -> list[str]:
    with ProcessPoolExecutor(max_workers=jobs, initializer=_worker_init) as pool:

        def wait_one(futures):
            done, _ = wait(futures, return_when=FIRST_COMPLETED)
            fut = next(iter(done))
            return fut, fut.exception()

        return _drive(lambda job: pool.submit(job.fn, *job.args), wait_one, roots)


def _ray_task(fn, *args):
    _worker_init()
    return fn(*args)


def _ray_pool(ray, resources: dict, retries: int, roots: list[Job]) -> list[str]:
    """Each run a Ray task with the config's resources. A failed or preempted task is retried up to
    ``retries`` times; a retry resumes the run from its newest checkpoint in the shared run directory."""
    remote = ray.remote(num_cpus=resources["cpus"], num_gpus=resources["gpus"], max_retries=retries, retry_exceptions=True)(_ray_task)

    def wait_one(refs):
        done, _ = ray.wait(refs, num_returns=1)
        try:
            ray.get(done[0])
        except Exception as err:  # RayTaskError wraps the run's own exception
            return done[0], err
        return done[0], None

    return _drive(lambda job: remote.remote(job.fn, *job.args), wait_one, roots)


def _connect_ray(address: str | None, jobs: int):
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray: ray is not installed; pip install 'rl-swa[ray]'") from None
    if address:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    else:
        ray.init(num_cpus=jobs, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    return ray


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
    p.add_argument("--backend", choices=["local", "ray"], default="local", help="local process pool, or Ray tasks")
    p.add_argument("--address", default=None, help="Ray cluster to join ('auto', 'ray://host:port'); default: a local Ray with --jobs CPUs")
    p.add_argument("--retries", type=int, default=2, help="Ray: retries of a failed or preempted run (each resumes from its checkpoint)")
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
    config = str(Path(args.config).resolve())
    fork = not args.no_fork
    command = command_line()
    out = str(Path(args.out).resolve())  # Ray workers may start elsewhere: absolute paths on shared storage
    todo = [(e, v, s) for e in envs for s in range(args.seeds) for v in VARIANTS if not (run_dir(args.out, cfg, e, v, s) / "result.json").exists()]
    done = len(envs) * args.seeds * len(VARIANTS) - len(todo)
    print(f"{cfg.experiment}: {len(todo)} runs to do, {done} already finished; fork={fork}, jobs={args.jobs}", flush=True)
    arms = {(e, s): [] for e, _, s in todo}
    for e, v, s in todo:
        arms[e, s].append(Job(_run_job, (config, args.overrides, e, v, s, args.budget, out, command, fork), f"{e} {v} seed{s}"))
    if fork:  # each prefix once; its arms start as soon as it is done
        roots = [Job(_prefix_job, (config, args.overrides, e, s, args.budget, out, command), f"{e} prefix seed{s}", then=jobs)
                 for (e, s), jobs in sorted(arms.items())]
    else:
        roots = [job for jobs in arms.values() for job in jobs]
    if args.backend == "ray":
        failures = _ray_pool(_connect_ray(args.address, args.jobs), cfg.resources.model_dump(), args.retries, roots)
    else:
        failures = _local_pool(args.jobs, roots)
    report = write_report(Path(args.out) / cfg.experiment, reps=args.reps)
    print(f"report: {report}")
    if failures:
        print(f"{len(failures)} failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    main()
