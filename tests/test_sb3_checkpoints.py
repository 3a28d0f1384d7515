"""SB3 checkpoint zips along a run's trajectory (``sb3_checkpoints:``): at the same steps whether
the run stopped and resumed or not, in the prefix and the arms that ask for them."""

import io
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import torch
from stable_baselines3 import A2C, DDPG

from agents.config import load_config
from agents.runner import run

ROOT = Path(__file__).resolve().parent.parent
PENDULUM = ROOT / "configs/classic/pendulum_ddpg.yaml"
SETS = ["budgets.smoke.timesteps=900", "budgets.smoke.eval_freq=300", "budgets.smoke.checkpoint_every=200"]


def _steps(folder: Path) -> list[int]:
    return sorted(int(p.name.split("_")[-2]) for p in folder.glob("rl_model_*_steps.zip"))


def _weights(zip_path: Path) -> dict:
    with zipfile.ZipFile(zip_path) as z:
        return torch.load(io.BytesIO(z.read("policy.pth")), weights_only=True)


def test_forked_pair_saves_the_baseline_trajectory(tmp_path):
    cfg = load_config(PENDULUM, [*SETS, "sb3_checkpoints.every=150"])
    for variant in ("baseline", "swa"):
        run(cfg, "Pendulum-v1", variant, 0, "smoke", tmp_path, fork=True)
    env = tmp_path / cfg.experiment / "Pendulum-v1"
    # the prefix ends at the SWA start (675 of 900): its steps, then the baseline arm's; the swa arm saves none
    assert _steps(env / "prefix/seed0/sb3_checkpoints") == [150, 300, 450, 600]
    assert _steps(env / "baseline/seed0/sb3_checkpoints") == [750, 900]
    assert not (env / "swa/seed0/sb3_checkpoints").exists()
    last = DDPG.load(env / "baseline/seed0/sb3_checkpoints/rl_model_900_steps.zip")
    assert last.num_timesteps == 900
    # saved at the step, before that step's gradient update (as SB3's CheckpointCallback saves): the arm's own weights
    fork = _weights(env / "prefix/seed0/sb3_checkpoints/rl_model_600_steps.zip")
    saved = _weights(env / "baseline/seed0/sb3_checkpoints/rl_model_900_steps.zip")
    assert fork.keys() == saved.keys() and not all(torch.equal(fork[k], saved[k]) for k in fork)


def test_normalized_run_saves_its_statistics_beside_each_zip(tmp_path):
    cfg = load_config(
        ROOT / "configs/classic/cartpole_a2c.yaml", ["normalize=true", "sb3_checkpoints.every=800", "variants=[baseline]"]
    )
    run(cfg, "CartPole-v1", "baseline", 0, "smoke", tmp_path)
    folder = tmp_path / cfg.experiment / "CartPole-v1/baseline/seed0/sb3_checkpoints"
    assert _steps(folder) == [800, 1600]  # 8 envs: 2000 steps end at 2000, not a multiple of 800
    assert sorted(p.name for p in folder.glob("*.pkl")) == [
        "rl_model_vecnormalize_1600_steps.pkl",
        "rl_model_vecnormalize_800_steps.pkl",
    ]
    assert A2C.load(folder / "rl_model_800_steps.zip").num_timesteps == 800


def test_resumed_run_saves_at_the_same_steps_as_its_twin(tmp_path):
    sets = [a for o in [*SETS, "sb3_checkpoints.every=100", "variants=[baseline]"] for a in ("--set", o)]

    def cmd(out):
        return [sys.executable, str(ROOT / "scripts/train.py"), str(PENDULUM), "--variant", "baseline", "--budget", "smoke",
                "--out", str(out), "--no-progress", *sets]  # fmt: skip

    twin = subprocess.run(cmd(tmp_path / "twin"), capture_output=True, text=True, timeout=300)
    assert twin.returncode == 0, twin.stderr
    proc = subprocess.Popen(cmd(tmp_path / "cut"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not list((tmp_path / "cut").glob("*/*/baseline/seed0/ckpt/*.ckpt")):  # the first checkpoint (step 200)
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    (cut,) = (tmp_path / "cut").glob("*/*/baseline/seed0")
    resumed = subprocess.run(
        [sys.executable, str(ROOT / "scripts/train.py"), "--resume", str(cut), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    (whole,) = (tmp_path / "twin").glob("*/*/baseline/seed0")
    assert _steps(cut / "sb3_checkpoints") == _steps(whole / "sb3_checkpoints") == list(range(100, 1000, 100))
    assert not list((cut / "sb3_checkpoints").glob(".*"))  # no temporary file left behind
    a, b = _weights(cut / "sb3_checkpoints/rl_model_900_steps.zip"), _weights(whole / "sb3_checkpoints/rl_model_900_steps.zip")
    assert all(torch.equal(a[k], b[k]) for k in a)
