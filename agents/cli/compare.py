"""Run the grid envs x {baseline, swa} x seeds in a local process pool, then write the report.

    python scripts/compare.py configs/classic/cartpole_a2c.yaml --budget short --seeds 5 --jobs 2
    python scripts/compare.py configs/atari/a2c.yaml --budget paper --seeds 5 --backend ray --address auto --out /shared/runs

Unfinished runs continue from their newest checkpoint. Forked pairs by default: per (env, seed)
the prefix up to the SWA start is trained once, then both arms continue from its checkpoint
(``--no-fork`` trains each arm from scratch). Finished runs (with ``result.json``) are skipped,
so an interrupted grid resumes where it stopped. A failing, diverging or interrupted run is
reported (and listed in the report) and the others go on. Exit code: 0 all finished, 1 a run
failed, 4 a run diverged, 3 interrupted (Ctrl-C or SIGTERM: the running jobs write a
checkpoint; rerun the same command to resume). A run or prefix directory made with another
config or other code is never reused: the grid refuses to start (exit 2).

``--backend ray`` submits each run as a Ray task with the config's ``resources`` (cpus, gpus);
the run directories live under ``--out``, which must be storage that every Ray node mounts at the
same path (NFS, a cluster file system). Failed or preempted runs are retried (``--retries``) and
resume from their newest checkpoint; rerunning the command resumes a partly done grid.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from agents.cli._cli import Parser, command_line, guarded, int_in  # first: signals during start-up

# isort: split
from agents import progress  # noqa: E402  (after the handlers)
from agents.config import ConfigError, load_config


def _worker_init() -> None:
    import signal

    import torch

    torch.set_num_threads(1)
    # an idle worker ignores Ctrl-C; a running job catches it (checkpoint, then Interrupted)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _prefix_job(config, overrides, env_id, seed, budget, root, command):
    from agents.runner import train_prefix

    cfg = load_config(config, overrides)
    return str(train_prefix(cfg, env_id, seed, budget, root, command))


def _run_job(config, overrides, env_id, variant, seed, budget, root, command, fork):
    from agents.rundir import read_json
    from agents.runner import run, run_dir

    cfg = load_config(config, overrides)
    path = run_dir(root, cfg, env_id, variant, seed)
    if (path / "result.json").exists():  # finished meanwhile (a retried task, a second driver)
        return read_json(path / "result.json")
    # an unfinished run (no result.json) continues from its newest checkpoint
    return run(cfg, env_id, variant, seed, budget, root, command, fork=fork, resume=(path / "config.yaml").exists())


def _outcome(fn: Callable, *args) -> tuple[str, str]:
    """Run a job; return ``(status, message)`` with status done, interrupted, diverged or failed.

    Only these two strings leave a worker: an exception object that does not unpickle in the
    driver would break the whole pool and stop the other runs."""
    from agents.checkpoint import Divergence
    from agents.runner import Diverged, Interrupted

    try:
        fn(*args)
    except Interrupted as exc:
        return "interrupted", str(exc)
    except (Diverged, Divergence) as exc:
        return "diverged", str(exc)
    except ConfigError as exc:  # an expected condition (a run directory in use, a bad file): its one line
        return "failed", str(exc).replace("\n", " ")
    except Exception as exc:  # any failure of one run is reported; the grid goes on
        return "failed", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    return "done", ""


@dataclass
class Job:
    fn: Callable
    args: tuple
    label: str
    then: list[Job] = field(default_factory=list)  # submitted when this job succeeds (a prefix's two arms)
    path: Path | None = None  # its run directory (progress.json)
    steps: int = 0  # env steps it trains


@dataclass
class Tally:
    """What became of each job of a grid."""

    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)
    messages: dict[str, str] = field(default_factory=dict)

    def add(self, label: str, status: str, message: str = "") -> None:
        getattr(self, status).append(label)
        if message:
            self.messages[label] = message.splitlines()[0]
        line = f"{status:<11} {label}" + (f": {message.splitlines()[0]}" if message else "")
        print(line, flush=True)
        if status == "failed" and "\n" in message:
            print(message.split("\n", 1)[1], file=sys.stderr, flush=True)

    @property
    def exit_code(self) -> int:
        """3: interrupted (rerun to resume), 1: a run failed, 4: a run diverged, 0: all done."""
        return 3 if self.interrupted else 1 if self.failed else 4 if self.diverged else 0


def _drive(
    submit: Callable,
    wait_one: Callable,
    roots: list[Job],
    limit: int | None = None,
    interrupt: Callable[[list], None] = lambda handles: None,
    progress_every: float = 300.0,
) -> Tally:
    """Run jobs as soon as what they need is done, at most ``limit`` at a time.

    A finished prefix's arms go after the arms already waiting and before the next prefix, so
    pairs finish one after the other, in order, instead of all prefixes first.
    ``wait_one(handles, timeout)`` returns ``(handle, (status, message))``, or None when nothing
    finished within ``timeout`` seconds: then it shows where the grid is
    (:class:`agents.progress.Board`: live on a terminal, a line every ``progress_every`` s in a log).
    Ctrl-C (or SIGTERM) stops submitting, passes the signal on (``interrupt(handles)``) and waits
    for the running jobs to write their checkpoints; a second one stops waiting.
    """
    tally = Tally()
    ready = list(roots)
    pending: dict = {}
    stopping = False
    with progress.Board(progress_every) as board:
        while pending or (ready and not stopping):
            stopping = _step(submit, wait_one, tally, ready, pending, limit, stopping, interrupt, board)
    for job in ready if stopping else []:
        tally.interrupted.append(job.label)
    return tally


ASK_AGAIN_S = 2.0  # while stopping: how often the running jobs are signalled again


def _step(submit, wait_one, tally, ready, pending, limit, stopping, interrupt, board) -> bool:
    """Submit what may run, wait for one job (or show progress), file its outcome; returns ``stopping``."""
    while ready and not stopping and (limit is None or len(pending) < limit):
        job = ready.pop(0)
        pending[submit(job)] = job
    try:
        finished = wait_one(list(pending), ASK_AGAIN_S if stopping else board.every)
    except KeyboardInterrupt:
        if stopping:
            raise
        print("stopping: the running jobs write a checkpoint; rerun the same command to resume", file=sys.stderr, flush=True)
        interrupt(list(pending))
        return True
    if finished is None and stopping:  # a job still loading when the signal came ignored it: ask again
        interrupt(list(pending))
        return stopping
    if finished is None:
        queued = [(j.label, j.steps) for job in ready for j in (job, *job.then)]
        queued += [(j.label, j.steps) for job in pending.values() for j in job.then]
        board.show(len(tally.done), {j.label: j.path for j in pending.values() if j.path is not None}, queued)
        return stopping
    handle, (status, message) = finished
    job = pending.pop(handle)
    tally.add(job.label, status, message)
    if status == "done":
        at = next((i for i, j in enumerate(ready) if j.then), len(ready))  # after the arms already waiting
        ready[at:at] = job.then
    else:
        for child in job.then:
            tally.add(child.label, "interrupted" if status == "interrupted" else "failed", f"not run: {job.label} {status}")
    return stopping


def _local_pool(jobs: int, roots: list[Job], progress_every: float) -> Tally:
    from concurrent.futures.process import BrokenProcessPool

    pool = ProcessPoolExecutor(max_workers=jobs, initializer=_worker_init)

    def wait_one(futures, timeout):
        done, _ = wait(futures, timeout=timeout, return_when=FIRST_COMPLETED)
        if not done:
            return None
        fut = next(iter(done))
        try:
            return fut, fut.result()
        except BrokenProcessPool:  # a worker was killed (out of memory, SIGKILL): its run resumes on a rerun
            return fut, ("failed", "the worker process died (killed by a signal or out of memory)")

    def interrupt(_futures):
        for proc in list(getattr(pool, "_processes", {}).values()):  # the pool has no public list of its workers
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGINT)

    try:
        return _drive(lambda job: pool.submit(_outcome, job.fn, *job.args), wait_one, roots, jobs, interrupt, progress_every)
    except KeyboardInterrupt:  # a second signal: stop at once; the jobs resume from their newest checkpoints
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.kill()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _ray_task(fn, *args):
    _worker_init()
    return _outcome(fn, *args)


def _ray_pool(ray, resources: dict, retries: int, roots: list[Job], progress_every: float) -> Tally:
    """Each run a Ray task with the config's resources. A preempted task is retried up to ``retries``
    times; a retry resumes the run from its newest checkpoint in the shared run directory."""
    remote = ray.remote(num_cpus=resources["cpus"], num_gpus=resources["gpus"], max_retries=retries)(_ray_task)

    def wait_one(refs, timeout):
        done, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if not done:
            return None
        try:
            return done[0], ray.get(done[0])
        except ray.exceptions.TaskCancelledError:  # stopped while still queued
            return done[0], ("interrupted", "stopped before it started")
        except Exception as err:  # the task's worker died for good
            return done[0], ("failed", f"{type(err).__name__}: {err}")

    def interrupt(refs):
        for ref in refs:  # a running task's SIGINT handler runs (checkpoint, then Interrupted); a queued one never starts
            ray.cancel(ref, force=False)

    return _drive(
        lambda job: remote.remote(job.fn, *job.args), wait_one, roots, interrupt=interrupt, progress_every=progress_every
    )


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


def _parser() -> argparse.ArgumentParser:
    p = Parser(description=__doc__)
    p.add_argument("config")
    p.add_argument("--budget", default="short")
    p.add_argument("--seeds", type=int_in(1, 10_000), default=5, help="seeds 0..N-1")
    p.add_argument("--envs", nargs="*", default=None, help="subset of the config's envs")
    p.add_argument("--jobs", type=int_in(1, 1024), default=os.cpu_count() or 1, help="parallel runs (one torch thread each)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default="runs")
    p.add_argument("--no-fork", action="store_true", help="train both arms from scratch")
    p.add_argument("--reps", type=int_in(1, 10**7), default=2000, help="bootstrap resamples in the report")
    p.add_argument("--backend", choices=["local", "ray"], default="local", help="local process pool, or Ray tasks")
    p.add_argument("--address", default=None, help="Ray cluster to join ('auto', 'ray://host:port'); default: a local Ray")
    p.add_argument(
        "--progress-every",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="in a log: print where the grid is (runs done / running / queued, steps, time left) this often",
    )
    p.add_argument(
        "--retries", type=int_in(0, 100), default=2, help="Ray: retries of a failed or preempted run (each resumes)"
    )
    return p


def _checked(args):
    """The config and the envs of the grid; a bad argument or a run made otherwise: ConfigError."""
    from agents.envs import check_env_id
    from agents.provenance import check_same
    from agents.runner import run_dir

    cfg = load_config(args.config, args.overrides)
    cfg.budget(args.budget)
    if not args.progress_every > 0:  # the integer arguments are checked by their argparse types
        raise ConfigError(f"--progress-every: {args.progress_every} is not allowed; use seconds > 0")
    envs = args.envs or cfg.envs
    unknown = [e for e in envs if e not in cfg.envs]
    if unknown:
        raise ConfigError(f"--envs: {unknown} not in the config's envs {cfg.envs}")
    for env_id in envs:
        check_env_id(cfg, env_id)
    for e in envs:  # never reuse a run or a prefix made with another config or other code
        for s in range(args.seeds):
            for v in (*cfg.variants, "prefix"):
                check_same(run_dir(args.out, cfg, e, v, s), cfg)
    return cfg, envs


def _unselected(args, cfg, envs) -> None:
    """With a select section, say in one line how to select the finished runs that lack a selection
    (a section added after they finished: the grid does not train them again)."""
    from agents.runner import run_dir

    if cfg.select is None:
        return
    runs = [run_dir(args.out, cfg, e, v, s) for s in range(args.seeds) for e in envs for v in cfg.variants]
    missing = [p for p in runs if (p / "result.json").exists() and not (p / "selection.json").exists()]
    if missing:
        s = cfg.select
        print(
            f"{len(missing)} finished runs have no selection (the select section came after them); select each with: "
            f"rl-swa select RUN_DIR --episodes {s.episodes} --level {s.level} --rule {s.rule} "
            f"--test-episodes {s.test_episodes} "
            f"(first: {missing[0]})",
            flush=True,
        )


def _jobs(args, cfg, envs) -> list[Job]:
    """The grid's jobs still to run: per (seed, env) its prefix, then its arms (or the arms alone)."""
    from agents.runner import run_dir
    from rl_swa.config import resolve_steps

    config, fork, command = str(Path(args.config).resolve()), not args.no_fork, command_line()
    out = str(Path(args.out).resolve())  # Ray workers may start elsewhere: absolute paths on shared storage
    todo = [
        (e, v, s)
        for s in range(args.seeds)
        for e in envs
        for v in cfg.variants
        if not (run_dir(args.out, cfg, e, v, s) / "result.json").exists()
    ]
    done = len(envs) * args.seeds * len(cfg.variants) - len(todo)
    print(f"{cfg.experiment}: {len(todo)} runs to do, {done} already finished; fork={fork}, jobs={args.jobs}", flush=True)
    _unselected(args, cfg, envs)
    total = cfg.budget(args.budget).timesteps
    fork_at = resolve_steps(cfg.swa.start, total) if fork else 0
    arms: dict[tuple, list[Job]] = {}  # seed-major: every env gets seed 0 before any gets seed 1
    for e, v, s in todo:
        arms.setdefault((s, e), []).append(
            Job(
                _run_job,
                (config, args.overrides, e, v, s, args.budget, out, command, fork),
                f"{e} {v} seed{s}",
                path=run_dir(out, cfg, e, v, s),
                steps=total - fork_at,
            )
        )
    if not fork:
        return [job for jobs in arms.values() for job in jobs]
    return [
        Job(
            _prefix_job,
            (config, args.overrides, e, s, args.budget, out, command),
            f"{e} prefix seed{s}",
            then=jobs,
            path=run_dir(out, cfg, e, "prefix", s),
            steps=fork_at,
        )  # each prefix once; its arms start when it is done
        for (s, e), jobs in arms.items()
    ]


@guarded
def main() -> int:
    from agents.report import write_report

    args = _parser().parse_args()
    cfg, envs = _checked(args)
    roots = _jobs(args, cfg, envs)
    old = {
        sig: signal.signal(sig, signal.default_int_handler) for sig in (signal.SIGINT, signal.SIGTERM)
    }  # both stop the grid
    try:
        if args.backend == "ray":
            ray = _connect_ray(args.address, args.jobs)
            tally = _ray_pool(ray, cfg.resources.model_dump(), args.retries, roots, args.progress_every)
        else:
            tally = _local_pool(args.jobs, roots, args.progress_every)
    except KeyboardInterrupt:
        print("stopped at once: the running jobs resume from their newest checkpoints", file=sys.stderr)
        return 3
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    not_finished = {
        label: tally.messages.get(label, status)
        for status in ("failed", "diverged", "interrupted")
        for label in getattr(tally, status)
    }
    if tally.interrupted:
        print(f"interrupted: {len(tally.interrupted)} jobs to finish; rerun the same command to resume", file=sys.stderr)
        return tally.exit_code
    try:
        report = write_report(Path(args.out) / cfg.experiment, reps=args.reps, not_finished=not_finished)
        print(f"report: {report}")
    except ConfigError as exc:  # no run finished at all
        print(f"no report: {exc}", file=sys.stderr)
    if not_finished:
        print(f"{len(not_finished)} did not finish: {', '.join(not_finished)}", file=sys.stderr)
    return tally.exit_code


if __name__ == "__main__":
    main()
