"""The scripts as a user runs them: subprocesses on smoke budgets (seconds each)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CARTPOLE = str(ROOT / "configs/classic/cartpole_a2c.yaml")
PENDULUM = str(ROOT / "configs/classic/pendulum_ddpg.yaml")


def script(name, *args, cwd=None):
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600
    )


@pytest.mark.parametrize(
    "args, field",
    [
        (["--set", "swa.start=1.5"], "swa.start"),
        (["--set", "swa.bogus=1"], "swa.bogus: unknown key"),
        (["--set", "n_envs=many"], "n_envs"),
        (["--set", "envs=[NoSuchEnv-v0]", "--env", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
        (["--budget", "huge"], "--budget"),
        (["--variant", "fancy"], "--variant"),
        (["--set", "hyperparams.foo=1"], "hyperparams.foo: unknown key"),
        (["--set", "hyperparams.n_steps=abc"], "hyperparams.n_steps"),
        (["--set", "hyperparams.n_steps=0"], "hyperparams.n_steps"),
        (["--set", "hyperparams.learning_rate=-1"], "hyperparams.learning_rate"),
        (["--set", "policy=FooPolicy"], "policy"),
        (["--set", "policy_kwargs.foo=1"], "policy_kwargs.foo: unknown key"),
        (["--set", "n_envs=100000000"], "n_envs"),
        (["--set", "experiment=.."], "experiment"),
        (["--set", "policy=CnnPolicy"], "SB3 cannot build a2c with CnnPolicy"),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, args, field):
    out = tmp_path / "runs"
    proc = script("train.py", CARTPOLE, "--budget", "smoke", "--out", out, "--no-progress", *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert field in lines[0]
    assert not out.exists() or not any(out.rglob("*.json"))


def test_missing_config_file(tmp_path):
    proc = script("train.py", tmp_path / "nope.yaml")
    assert proc.returncode == 2 and "no such config file" in proc.stderr


def test_train_writes_run_directory_and_refuses_overwrite(tmp_path):
    proc = script("train.py", CARTPOLE, "--budget", "smoke", "--seed", "3", "--out", tmp_path, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "classic_cartpole_a2c/CartPole-v1/swa/seed3"
    for name in (
        "config.yaml",
        "command.txt",
        "eval.csv",
        "model.zip",
        "policy.safetensors",
        "swa_policy.safetensors",
        "result.json",
    ):
        assert (run / name).is_file(), name
    assert list((run / "tb").glob("events.out.tfevents.*"))
    result = json.loads((run / "result.json").read_text())
    assert result["timesteps"] == 2000 and result["n_averaged"] > 0 and result["final_swa"] is not None
    assert "--seed 3" in (run / "command.txt").read_text()
    again = script("train.py", CARTPOLE, "--budget", "smoke", "--seed", "3", "--out", tmp_path, "--no-progress")
    assert again.returncode == 2 and "exists" in again.stderr
    ev = script("evaluate.py", run / "swa_policy.safetensors", "--episodes", "2")
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["episodes"] == 2
    # an SB3 zip unpickles: refused without --trusted, one line
    zipped = script("evaluate.py", run / "model.zip", "--algo", "a2c", "--env", "CartPole-v1", "--episodes", "1")
    assert zipped.returncode == 2 and "--trusted" in zipped.stderr and zipped.stderr.count("\n") == 1
    trusted = script("evaluate.py", run / "model.zip", "--trusted", "--algo", "a2c", "--env", "CartPole-v1", "--episodes", "1")
    assert trusted.returncode == 0, trusted.stderr
    for bad in (["--trusted", "--algo", "ddpg"], ["--trusted", "--algo", "nope"]):
        proc = script("evaluate.py", run / "model.zip", *bad, "--env", "CartPole-v1", "--episodes", "1")
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    other_env = script("evaluate.py", run / "swa_policy.safetensors", "--env", "Pendulum-v1", "--episodes", "1")
    assert other_env.returncode == 2 and "observation_space" in other_env.stderr and other_env.stderr.count("\n") == 1


def test_compare_forks_pairs_resumes_and_reports(tmp_path):
    proc = script(
        "compare.py", PENDULUM, "--budget", "smoke", "--seeds", "2", "--jobs", "2", "--out", tmp_path, "--reps", "100"
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    exp = tmp_path / "classic_pendulum_ddpg"
    for seed in (0, 1):
        base = json.loads((exp / f"Pendulum-v1/baseline/seed{seed}/result.json").read_text())
        swa = json.loads((exp / f"Pendulum-v1/swa/seed{seed}/result.json").read_text())
        # identical weights at the fork, for both arms
        assert base["fork_digest"] == swa["fork_digest"] is not None
        assert base["fork_step"] == swa["fork_step"] == 300
    report = (exp / "report/report.md").read_text()
    assert "## Pendulum-v1" in report and "swa - baseline" in report
    assert (exp / "report/curves_Pendulum-v1.png").stat().st_size > 1000
    mtime = (exp / "Pendulum-v1/swa/seed0/result.json").stat().st_mtime
    again = script("compare.py", PENDULUM, "--budget", "smoke", "--seeds", "2", "--out", tmp_path, "--reps", "100")
    assert again.returncode == 0 and "0 runs to do, 4 already finished" in again.stdout
    assert (exp / "Pendulum-v1/swa/seed0/result.json").stat().st_mtime == mtime
    result = json.loads((exp / "Pendulum-v1/swa/seed0/result.json").read_text())
    assert result["code"] and result["cpu"] and len(result["config_digest"]) == 16
    # a changed config never reuses these runs: one line naming the field, nothing written
    before = sorted(p for p in exp.rglob("*") if p.is_file())
    changed = script("compare.py", PENDULUM, "--budget", "smoke", "--seeds", "2", "--out", tmp_path, "--set", "swa.start=0.5")
    assert changed.returncode == 2 and changed.stderr.count("\n") == 1, changed.stderr
    assert "swa.start: 0.75 there, 0.5 now" in changed.stderr
    assert sorted(p for p in exp.rglob("*") if p.is_file()) == before


def test_mujoco_hopper_smoke(tmp_path):
    pytest.importorskip("mujoco")
    proc = script(
        "train.py",
        ROOT / "configs/mujoco/ddpg.yaml",
        "--env",
        "Hopper-v5",
        "--budget",
        "smoke",
        "--out",
        tmp_path,
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["env"] == "Hopper-v5" and result["n_averaged"] == 75  # updates after step 225 of 300


def test_arms_go_before_the_next_prefix_and_not_after_a_failed_one(capsys):
    from agents.cli.compare import Job, _drive

    order = []

    def submit(job):
        order.append(job.label)
        return job.label

    def wait_one(handles, timeout):
        label = handles[0]  # finishes in submission order
        return label, (("failed", "boom") if label == "prefix 1" else ("done", ""))

    arms = {k: [Job(print, (), f"arm {k}{v}") for v in "ab"] for k in (0, 1, 2)}
    tally = _drive(submit, wait_one, [Job(print, (), f"prefix {k}", then=arms[k]) for k in (0, 1, 2)], limit=1)
    # one at a time: a finished prefix's arms run before the next prefix; arms of prefix 1 never run
    assert order == ["prefix 0", "arm 0a", "arm 0b", "prefix 1", "prefix 2", "arm 2a", "arm 2b"]
    assert tally.failed == ["prefix 1", "arm 1a", "arm 1b"] and tally.exit_code == 1
    assert "not run: prefix 1 failed" in capsys.readouterr().out


def test_run_stops_pickle_back_whole():
    """They cross the process boundary of compare.py's workers; one that does not unpickle broke the pool."""
    import pickle

    from agents.checkpoint import Divergence
    from agents.runner import Diverged, Interrupted

    for exc in (Diverged(Path("/r"), 7, None), Interrupted(Path("/r"), 7, Path("/r/ckpt/step_7.ckpt")), Divergence(7)):
        back = pickle.loads(pickle.dumps(exc))
        assert type(back) is type(exc) and str(back) == str(exc) and back.step == 7


def test_a_diverging_run_does_not_take_the_grid_down(tmp_path):
    proc = script(
        "compare.py",
        CARTPOLE,
        "--budget",
        "smoke",
        "--seeds",
        "1",
        "--jobs",
        "2",
        "--no-fork",
        "--out",
        tmp_path,
        "--reps",
        "100",
        "--set",
        "budgets.smoke.timesteps=3000",
        "--set",
        "budgets.smoke.checkpoint_every=1000",
        "--set",
        "swa.start=0.5",
        "--set",
        "swa.swa_lr=1e30",
    )
    assert proc.returncode == 4, proc.stderr[-2000:]
    exp = tmp_path / "classic_cartpole_a2c/CartPole-v1"
    assert (exp / "baseline/seed0/result.json").is_file()  # the other run finished
    assert not (exp / "swa/seed0/result.json").exists() and list((exp / "swa/seed0/ckpt").glob("step_*.ckpt"))
    assert "diverged    CartPole-v1 swa seed0" in proc.stdout
    report = (tmp_path / "classic_cartpole_a2c/report/report.md").read_text()
    assert "## Runs that did not finish" in report and "CartPole-v1 swa seed0: " in report


def _catches_sigterm(pid: int) -> bool:
    """Linux: has the process installed a handler for SIGTERM (bit 15 of SigCgt)?"""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> 14 & 1)
    return False


@pytest.mark.parametrize("moment", ["start-up", "training"])
def test_sigterm_at_any_moment_is_exit_3_without_a_traceback(tmp_path, moment):
    """As soon as the script runs (imports, env and model building) or while it trains: one line, exit code 3."""
    import signal
    import time

    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc")
    cmd = [
        sys.executable,
        str(ROOT / "scripts/train.py"),
        CARTPOLE,
        "--budget",
        "smoke",
        "--out",
        str(tmp_path),
        "--no-progress",
        "--set",
        "budgets.smoke.timesteps=1000000",
        "--set",
        "budgets.smoke.checkpoint_every=2000",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    ready = (lambda: _catches_sigterm(proc.pid)) if moment == "start-up" else (lambda: any(tmp_path.rglob("step_*.ckpt")))
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3 and "Traceback" not in err, err
    # the handler is in place before the imports (seconds): a signal then stops the start-up itself
    expected = (
        "interrupted before a checkpoint was written"
        if moment == "start-up"
        else "resume with: python scripts/train.py --resume"
    )
    assert expected in err.strip().splitlines()[-1], err


def test_normalize_true_runs_and_the_saved_policy_acts_as_evaluated(tmp_path):
    """normalize: true (RL Zoo's spelling): the averaged policy file takes raw observations and scores
    what the training-time evaluation reported, on the same episodes."""
    proc = script(
        "train.py",
        CARTPOLE,
        "--budget",
        "smoke",
        "--out",
        tmp_path,
        "--no-progress",
        "--set",
        "normalize=true",
        "--set",
        "budgets.smoke.timesteps=6000",
        "--set",
        "budgets.smoke.eval_episodes=3",
    )
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "classic_cartpole_a2c/CartPole-v1/swa/seed0"
    result = json.loads((run / "result.json").read_text())
    for name, key in (("swa_policy.safetensors", "final_swa"), ("policy.safetensors", "final_online")):
        ev = script("evaluate.py", run / name, "--episodes", "3", "--seed", "10000")
        assert ev.returncode == 0, ev.stderr
        assert json.loads(ev.stdout)["mean_reward"] == result[key]


def test_a_grid_says_where_it_is(tmp_path, capsys):
    """When nothing finishes for a while: runs done / running / queued, steps of each running run, time left."""
    import time

    from agents.cli.compare import Job, _drive
    from agents.progress import FILE

    run = tmp_path / "prefix"
    run.mkdir()
    now = time.time()
    calls = []

    def wait_one(handles, timeout):
        calls.append(timeout)
        if len(calls) == 1:
            (run / FILE).write_text(json.dumps({"step": 100, "total": 1000, "time": now}))
            return None
        if len(calls) == 2:
            (run / FILE).write_text(json.dumps({"step": 400, "total": 1000, "time": now + 10}))  # 30 steps/s
            return None
        return handles[0], ("done", "")

    arms = [Job(print, (), f"arm {v}", steps=500) for v in "ab"]
    _drive(
        lambda job: job.label, wait_one, [Job(print, (), "prefix", then=arms, path=run, steps=1000)], limit=1, progress_every=7
    )
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("progress:")]
    assert calls[0] == 7 and len(lines) == 2
    assert lines[0] == "progress: 0 done, 1 running, 2 queued | prefix 100/1,000"
    # 600 steps left in the prefix + 1,000 queued, at 30 steps/s: 53 s
    assert lines[1] == "progress: 0 done, 1 running, 2 queued; about 1 min left at the current speed | prefix 400/1,000"


def test_pairs_finish_in_the_order_of_their_prefixes():
    """A prefix's arms queue behind the arms already waiting (an earlier seed's), not ahead of them."""
    from agents.cli.compare import Job, _drive

    submitted = []

    def submit(job):
        submitted.append(job.label)
        return job.label

    def wait_one(handles, timeout):  # the job submitted first finishes first
        return min(handles, key=submitted.index), ("done", "")

    roots = [Job(print, (), f"prefix{s}", then=[Job(print, (), f"{v}{s}") for v in ("baseline", "swa")]) for s in (0, 1)]
    _drive(submit, wait_one, roots, limit=2)
    assert submitted == ["prefix0", "prefix1", "baseline0", "swa0", "baseline1", "swa1"]


def test_a_stop_reaches_a_job_that_was_still_loading_when_it_came():
    """A worker ignores SIGINT until its job has loaded (its checkpoint, its envs); the driver asks
    again until the job stops, instead of waiting for it to train to the end."""
    from agents.cli.compare import Job, _drive

    asked, timeouts = [], []

    def wait_one(handles, timeout):
        timeouts.append(timeout)
        if len(timeouts) == 1:
            raise KeyboardInterrupt  # Ctrl-C or SIGTERM at the driver
        assert len(timeouts) < 20, "the driver waits on a job that never heard the stop"
        # the first SIGINT reached the worker while it was loading: ignored; the second one stops it
        return (handles[0], ("interrupted", "checkpoint written")) if len(asked) >= 2 else None

    arms = [Job(print, (), f"arm {v}") for v in "ab"]
    tally = _drive(
        lambda job: job.label, wait_one, [Job(print, (), "prefix", then=arms)], 1, lambda handles: asked.append(handles)
    )
    assert tally.interrupted == ["prefix", "arm a", "arm b"] and asked == [["prefix"], ["prefix"]]
    assert max(timeouts[1:]) <= 5  # asked again within seconds, not at the progress interval


def _sleep(seconds):
    import time

    time.sleep(seconds)


def test_a_second_stop_ends_the_grid_at_once():
    """The first Ctrl-C asks the jobs to checkpoint; the second one does not wait for them."""
    import signal
    import threading
    import time

    from agents.cli.compare import Job, _local_pool

    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    timers = [threading.Timer(t, os.kill, (os.getpid(), signal.SIGINT)) for t in (1.5, 3.0)]
    start = time.time()
    try:
        for t in timers:
            t.start()
        with pytest.raises(KeyboardInterrupt):  # the job ignores SIGINT, as one still loading does
            _local_pool(1, [Job(_sleep, (30,), "stuck")], progress_every=60)
    finally:
        for t in timers:
            t.cancel()
        signal.signal(signal.SIGINT, old)
    assert time.time() - start < 15


def test_on_a_terminal_the_grid_shows_a_live_bar_per_running_run(tmp_path):
    import io
    import time

    from rich.console import Console

    from agents.progress import FILE, Board

    run = tmp_path / "prefix"
    run.mkdir()
    (run / FILE).write_text(json.dumps({"step": 400, "total": 1000, "time": time.time()}))
    out = io.StringIO()
    with Board(300, console=Console(file=out, force_terminal=True, width=100)) as board:
        assert board.every == 2.0  # refreshed often on a terminal, not every 300 s
        board.show(1, {"Hopper prefix seed0": run}, [("Hopper swa seed0", 500)])
        print("done        Hopper baseline seed0")  # a finished job's line goes above the display
    text = out.getvalue()
    assert "progress: 1 done, 1 running, 1 queued" in text and "Hopper prefix seed0" in text and "400/1000" in text
    assert "done        Hopper baseline seed0" in text
    plain = Board(300, console=Console(file=io.StringIO()))
    assert not plain.live and plain.every == 300


def test_act_avg_and_reset_avg_arms_fork_from_the_same_prefix_and_reach_the_report(tmp_path):
    proc = script(
        "compare.py",
        CARTPOLE,
        "--budget",
        "smoke",
        "--seeds",
        "1",
        "--jobs",
        "2",
        "--out",
        tmp_path,
        "--reps",
        "50",
        "--set",
        "variants=[baseline, act_avg, reset_avg]",
        "--set",
        "swa.reset_every=5",
        "--set",
        "swa.averages=[ema@0.9@0]",
        "--set",
        "swa.act_with=ema_0.9_from_0",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    exp = tmp_path / "classic_cartpole_a2c"
    results = {
        v: json.loads((exp / f"CartPole-v1/{v}/seed0/result.json").read_text()) for v in ("baseline", "act_avg", "reset_avg")
    }
    assert len({r["fork_digest"] for r in results.values()}) == 1  # the same prefix
    assert not (exp / "CartPole-v1/swa").exists()
    report = (exp / "report/report.md").read_text()
    for arm in ("act_avg arm, online weights", "reset_avg arm, online weights", "act_avg - baseline", "reset_avg - baseline"):
        assert arm in report, arm
    bad = script("compare.py", CARTPOLE, "--budget", "smoke", "--out", tmp_path / "x", "--set", "swa.act_with=ema_0.5")
    assert bad.returncode == 2 and "swa.act_with" in bad.stderr


def test_an_expected_refusal_of_a_run_is_one_line_in_the_grid():
    """A run refused for an expected reason (its directory in use by another grid) is one 'failed'
    line naming the holder, no traceback; an unexpected error keeps its traceback."""
    from agents.cli.compare import _outcome
    from agents.config import ConfigError

    def refused():
        raise ConfigError("runs/x/seed0 is in use by process 123 (python compare.py ...); wait for it to end or stop it")

    def broken():
        raise KeyError("bug")

    status, message = _outcome(refused)
    assert status == "failed" and "\n" not in message and "process 123" in message
    assert "Traceback" in _outcome(broken)[1]


@pytest.mark.skipif(not (ROOT / ".venv/bin/python").exists(), reason="scripts/install.sh has not made .venv here")
def test_install_says_what_it_installed_and_nothing_that_reads_like_an_error():
    """Run again on an existing .venv (seconds): one line, no pip or setuptools warning blocks."""
    proc = subprocess.run(["bash", str(ROOT / "scripts/install.sh")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = (proc.stdout + proc.stderr).strip()
    assert out.startswith("installed in .venv: rl-swa ") and "\n" not in out, out


def test_oracle_capture_replays_the_rules_as_select_decides(tmp_path):
    """Every candidate scored once; the fixed rule replayed from those returns deploys what
    `rl-swa select` deploys on the same run, after the same race and confirmation (returns equal up
    to float rounding: a batch of another size sums in another order)."""
    from agents.deploy import select_run

    sets = ["--set", "swa.posthoc_points=3", "--set", "swa.averages=[swa@0.9]"]
    train = script("train.py", PENDULUM, "--budget", "smoke", "--out", tmp_path, "--no-progress", "--variant=baseline", *sets)
    assert train.returncode == 0, train.stderr
    run = tmp_path / "classic_pendulum_ddpg/Pendulum-v1/baseline/seed0"
    proc = script("oracle_capture.py", "score", run, "--episodes", "80", "--test-episodes", "4", "--committed", run.parents[2])
    assert proc.returncode == 0, proc.stderr
    oracle = json.loads((run / "oracle.json").read_text())
    assert oracle["committed"]["eval_csv_identical"] and len(oracle["validation"]["online"]) == 80
    assert oracle["oracle"] == max(oracle["test"], key=lambda n: sum(oracle["test"][n]))
    played = select_run(run, 80)
    fixed = oracle["rules"]["fixed"]
    assert [fixed[k] for k in ("deployed", "leader", "episodes")] == [played[k] for k in ("deployed", "leader", "episodes")]
    race = {r["name"]: r["race_mean"] for r in played["candidates"]}
    assert {r["name"]: r["race_mean"] for r in fixed["candidates"]} == pytest.approx(race, rel=1e-6)
    assert len(set(race.values())) > 3 and (fixed["confirmation"] is None) == (played["confirmation"] is None)
    assert {"fixed", "sequential", "naive"} <= set(oracle["rules"])
    table = script("oracle_capture.py", "table", tmp_path, "--try", "h3=halving:3:-0.5")
    assert table.returncode == 0 and "| Pendulum-v1 (1) | rule h3 |" in table.stdout, table.stderr
    row = next(line for line in table.stdout.splitlines() if "| rule fixed |" in line)
    assert row.endswith(f"| {fixed['episodes']} |")  # decided again from oracle.json: what select spent


def test_checkpoint_averages_choose_from_the_zips_on_the_runs_own_test_episodes(tmp_path):
    """A forked run's SB3 zips (its prefix's and its arm's) make one checkpoint folder; select on it
    plays the run's own test seeds: its last checkpoint (the final weights) scores as the run's online
    weights up to float rounding, so the two choices compare on the same episodes."""
    sets = ["sb3_checkpoints.every=100", "select.episodes=80", "select.test_episodes=3", "swa.posthoc_points=3"]
    grid = script(
        "compare.py",
        PENDULUM,
        "--budget",
        "smoke",
        "--seeds",
        "1",
        "--out",
        tmp_path,
        *(a for s in sets for a in ("--set", s)),
    )
    assert grid.returncode == 0, grid.stderr
    run = tmp_path / "classic_pendulum_ddpg/Pendulum-v1/baseline/seed0"
    proc = script("checkpoint_averages.py", "score", run, "--episodes", "40", "--test-episodes", "3")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (run / "sb3_folder").iterdir()) == [f"rl_model_{n}_steps.zip" for n in (100, 200, 300, 400)]
    out = json.loads((run / "checkpoint_selection.json").read_text())
    own = out["own"]["test"]
    assert out["checkpoints"]["test"]["seeds"] == own["seeds"]
    assert out["checkpoints"]["test"]["means"]["last checkpoint"] == pytest.approx(own["means"]["online"], rel=1e-2)
    table = script("checkpoint_averages.py", "table", tmp_path)
    assert table.returncode == 0 and "| Pendulum-v1 | 1 |" in table.stdout, table.stderr
