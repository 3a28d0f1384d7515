"""The Ray backend: a smoke grid on a local Ray instance gives the same report as the local pool."""

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PENDULUM = ROOT / "configs/classic/pendulum_ddpg.yaml"


def compare(out, *extra, popen=False):
    cmd = [
        sys.executable,
        str(ROOT / "scripts/compare.py"),
        str(PENDULUM),
        "--budget",
        "smoke",
        "--seeds",
        "1",
        "--jobs",
        "2",
        "--out",
        str(out),
        "--reps",
        "200",
        *extra,
    ]
    if popen:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def test_ray_grid_report_equals_local(tmp_path):
    pytest.importorskip("ray")
    ray_run = compare(tmp_path / "ray", "--backend", "ray")
    assert ray_run.returncode == 0, ray_run.stderr[-3000:] + ray_run.stdout
    local = compare(tmp_path / "local")
    assert local.returncode == 0, local.stderr[-3000:]
    report = "classic_pendulum_ddpg/report/report.md"

    def numbers(path):  # the report but its wall times, which depend on the machine's load
        return [line for line in path.read_text().splitlines() if not line.startswith("Wall time per arm")]

    assert numbers(tmp_path / "ray" / report) == numbers(tmp_path / "local" / report)
    again = compare(tmp_path / "ray", "--backend", "ray")
    assert again.returncode == 0 and "0 runs to do, 2 already finished" in again.stdout


def test_ray_missing_is_a_clear_error(tmp_path):
    code = (
        "import sys; sys.modules['ray'] = None; sys.argv = "
        + repr(["compare.py", str(PENDULUM), "--budget", "smoke", "--seeds", "1", "--out", str(tmp_path), "--backend", "ray"])
        + "; from agents.cli import compare; compare.main()"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "pip install 'rl-swa[ray]'" in proc.stderr


def test_a_stop_makes_the_running_ray_task_checkpoint(tmp_path):
    """Ctrl-C at the driver: the running task writes its checkpoint, the queued one never starts and
    the grid exits 3 (instead of waiting for the running task to train to its end)."""
    pytest.importorskip("ray")
    long_runs = ["--set", "budgets.smoke.timesteps=1000000", "--set", "budgets.smoke.checkpoint_every=500"]
    proc = compare(tmp_path, "--backend", "ray", "--no-fork", "--jobs", "1", *long_runs, popen=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None and not any(tmp_path.rglob("step_*.ckpt")):
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # a second Ctrl-C: stop at once
            proc.communicate(timeout=60)
    assert proc.returncode == 3, err[-3000:]
    arm = r"interrupted +Pendulum-v1 (baseline|swa) seed0: "
    assert len(re.findall(arm + r"interrupted at step \d+; checkpoint", out)) == 1, out
    assert len(re.findall(arm + "stopped before it started", out)) == 1, out
