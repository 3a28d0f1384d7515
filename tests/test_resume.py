"""Interrupted runs resume exactly: kill a run (SIGTERM, SIGKILL), resume it, compare with its twin."""

import io
import json
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from agents import checkpoint

ROOT = Path(__file__).resolve().parent.parent
CASES = {
    "a2c": (ROOT / "configs/classic/cartpole_a2c.yaml", ["budgets.smoke.timesteps=12000", "budgets.smoke.checkpoint_every=2000", "budgets.smoke.eval_freq=4000"]),
    "ddpg": (ROOT / "configs/classic/pendulum_ddpg.yaml", ["budgets.smoke.timesteps=900", "budgets.smoke.checkpoint_every=200", "budgets.smoke.eval_freq=300"]),
}


def _cmd(config, overrides, out):
    sets = [a for o in overrides for a in ("--set", o)]
    return [sys.executable, str(ROOT / "scripts/train.py"), str(config), "--budget", "smoke", "--out", str(out), "--no-progress", *sets]


def _weights(run):
    with zipfile.ZipFile(run / "model.zip") as z:
        return torch.load(io.BytesIO(z.read("policy.pth")), weights_only=True)


def _run_dir(out):
    (run,) = Path(out).glob("*/*/swa/seed0")
    return run


def _interrupt(config, overrides, out, sig):
    proc = subprocess.Popen(_cmd(config, overrides, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(Path(out).glob("*/*/swa/seed0/ckpt/*.ckpt")):
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.mark.parametrize("algo, sig", [("a2c", signal.SIGTERM), ("ddpg", signal.SIGKILL)])
def test_killed_run_resumes_to_its_uninterrupted_twin(tmp_path, algo, sig):
    config, overrides = CASES[algo]
    twin = subprocess.run(_cmd(config, overrides, tmp_path / "twin"), capture_output=True, text=True, timeout=300)
    assert twin.returncode == 0, twin.stderr
    code, err = _interrupt(config, overrides, tmp_path / "cut", sig)
    run = _run_dir(tmp_path / "cut")
    assert not (run / "result.json").exists()
    if sig == signal.SIGTERM:
        assert code == 3 and "resume with: python scripts/train.py --resume" in err.strip().splitlines()[-1]
    else:
        assert code == -signal.SIGKILL
    resumed = subprocess.run([sys.executable, str(ROOT / "scripts/train.py"), "--resume", str(run), "--no-progress"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert result["resumed_from"] is not None and result["resumed_from"] > 0
    twin_run = _run_dir(tmp_path / "twin")
    # bit-exact on CPU: weights, evaluation history and the averaged policy
    a, b = _weights(twin_run), _weights(run)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (twin_run / "eval.csv").read_text() == (run / "eval.csv").read_text()
    twin_result = json.loads((twin_run / "result.json").read_text())
    for key in ("final_online", "final_swa", "n_averaged", "timesteps"):
        assert twin_result[key] == result[key]


def test_damaged_newest_checkpoint_falls_back_to_previous(tmp_path, capsys):
    folder = tmp_path / "ckpt"
    state = {"version": checkpoint.VERSION, "payload": 1}
    checkpoint.write(folder / "step_100.ckpt", state)
    checkpoint.write(folder / "step_200.ckpt", {**state, "payload": 2})
    blob = (folder / "step_200.ckpt").read_bytes()
    (folder / "step_200.ckpt").write_bytes(blob[: len(blob) // 2])  # half-written
    path, loaded = checkpoint.latest(folder)
    assert path.name == "step_100.ckpt" and loaded["payload"] == 1
    assert "step_200.ckpt: truncated or corrupted" in capsys.readouterr().out
    (folder / "junk.ckpt").write_bytes(b"x")
    with pytest.raises(checkpoint.CheckpointError, match="not an rl-swa checkpoint"):
        checkpoint.read(folder / "junk.ckpt")


def test_resume_refuses_finished_or_foreign_dirs(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/train.py"), "--resume", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and "not a run directory" in proc.stderr


class _Poison:
    """Sets one weight to NaN inside ``train()`` (after an optimizer step) once past ``step``, as divergence does."""

    def __new__(cls, step):
        from stable_baselines3.common.callbacks import BaseCallback

        class Poison(BaseCallback):
            def _on_training_start(self):
                params = list(self.model.policy.parameters())

                def hook(optimizer, args, kwargs):
                    if self.model.num_timesteps >= step:
                        with torch.no_grad():
                            params[0].view(-1)[0] = float("nan")

                for opt in {id(p.optimizer): p.optimizer for p in self.model.policy.modules() if hasattr(p, "optimizer")}.values():
                    opt.register_step_post_hook(hook)

            def _on_step(self):
                return True

        return Poison()


def test_divergence_stops_before_acting_and_is_never_checkpointed(tmp_path):
    from stable_baselines3 import A2C
    from stable_baselines3.common.callbacks import CallbackList

    from rl_swa import SWACallback

    model = A2C("MlpPolicy", "CartPole-v1", n_steps=5, seed=0, device="cpu", policy_kwargs=dict(net_arch=[8]))
    swa = SWACallback(start=100)
    saver = checkpoint.Checkpointer(tmp_path, every=100, env=model.get_env(), swa=swa, on_divergence="stop")
    with pytest.raises(checkpoint.Divergence, match="NaN/Inf at step 400"):
        model.learn(1000, callback=CallbackList([swa, saver, _Poison(400)]))
    saved = checkpoint.checkpoints(tmp_path)
    assert [p.name for p in saved] == ["step_300.ckpt", "step_200.ckpt"]  # the state at 400 is already broken
    state = checkpoint.read(saved[0])
    assert all(torch.isfinite(t).all() for t in state["callback"]["average"]["averages"].values())
    assert all(torch.isfinite(a).all() for a in swa.average.averages.values())


def test_divergence_continue_keeps_going_with_clean_averages(tmp_path):
    import numpy as np
    from stable_baselines3 import DDPG
    from stable_baselines3.common.callbacks import CallbackList

    from rl_swa import SWACallback

    model = DDPG("MlpPolicy", "Pendulum-v1", learning_starts=50, batch_size=16, seed=0, device="cpu", policy_kwargs=dict(net_arch=[8]))
    swa = SWACallback(start=100)
    saver = checkpoint.Checkpointer(tmp_path, every=100, env=model.get_env(), swa=swa, on_divergence="continue")
    model.learn(400, callback=CallbackList([swa, saver, _Poison(250)]))
    assert model.num_timesteps == 400 and saver.diverged_at == 250
    assert max(int(p.stem.split("_")[1]) for p in checkpoint.checkpoints(tmp_path)) == 200
    assert swa.average.n_skipped > 0 and swa.average.n_averaged > 0
    assert all(np.isfinite(a.numpy()).all() for a in swa.average.averages.values())


def test_interrupted_prefix_continues_to_the_same_fork_point(tmp_path):
    config, overrides = CASES["ddpg"]
    code = (
        "import sys; from agents.config import load_config; from agents.runner import train_prefix, Interrupted\n"
        f"cfg = load_config({str(config)!r}, {overrides!r})\n"
        "try:\n    print(train_prefix(cfg, 'Pendulum-v1', 0, 'smoke', sys.argv[1]))\n"
        "except Interrupted as e:\n    print('interrupted', e); sys.exit(3)\n"
    )
    twin = subprocess.run([sys.executable, "-c", code, str(tmp_path / "twin")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert twin.returncode == 0, twin.stderr
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "cut")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    while not list((tmp_path / "cut").glob("*/*/prefix/seed0/ckpt/*.ckpt")):
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 3
    again = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cut")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert again.returncode == 0 and "resuming" in again.stdout, again.stderr
    a, b = (checkpoint.read(next(Path(d).glob("*/*/prefix/seed0/prefix.ckpt"))) for d in (tmp_path / "twin", tmp_path / "cut"))
    assert a["num_timesteps"] == b["num_timesteps"] == 675 and a["digest"] == b["digest"]


def test_signal_while_diverged_stops_without_a_checkpoint(tmp_path):
    import numpy as np
    from stable_baselines3 import DDPG
    from stable_baselines3.common.noise import NormalActionNoise

    model = DDPG("MlpPolicy", "Pendulum-v1", learning_starts=50, batch_size=16, seed=0, device="cpu",
                 action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)), policy_kwargs=dict(net_arch=[8]))
    saver = checkpoint.Checkpointer(tmp_path, every=10, env=model.get_env(), on_divergence="continue")
    saver.init_callback(model)
    saver.on_training_start({}, {})
    with torch.no_grad():
        model.critic.qf0[0].weight[0, 0] = float("nan")
    saver.on_rollout_start()
    assert saver.diverged_at is not None and saver.on_step() and not list(tmp_path.glob("*.ckpt"))
    saver.request_stop(signal.SIGINT, None)
    saver.on_rollout_start()
    assert saver.interrupted and not saver.on_step() and not list(tmp_path.glob("*.ckpt"))
