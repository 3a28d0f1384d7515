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
    "a2c": (
        ROOT / "configs/classic/cartpole_a2c.yaml",
        ["budgets.smoke.timesteps=12000", "budgets.smoke.checkpoint_every=2000", "budgets.smoke.eval_freq=4000"],
    ),
    "ddpg": (
        ROOT / "configs/classic/pendulum_ddpg.yaml",
        ["budgets.smoke.timesteps=900", "budgets.smoke.checkpoint_every=200", "budgets.smoke.eval_freq=300"],
    ),
    # VecNormalize's running statistics travel in the checkpoint
    "a2c_normalized": (
        ROOT / "configs/classic/cartpole_a2c.yaml",
        [
            "budgets.smoke.timesteps=12000",
            "budgets.smoke.checkpoint_every=2000",
            "budgets.smoke.eval_freq=4000",
            "normalize=true",
        ],
    ),
    # A2C on Breakout, 16 envs: the emulators' states travel in the checkpoint
    "atari": (
        ROOT / "configs/atari/a2c.yaml",
        ["budgets.smoke.timesteps=4000", "budgets.smoke.checkpoint_every=800", "budgets.smoke.eval_freq=2000"],
    ),
}


START_S = 300  # as long as the twin may take to reach its first checkpoint: a loaded machine starts runs slowly


def _cmd(config, overrides, out):
    sets = [a for o in overrides for a in ("--set", o)]
    return [
        sys.executable,
        str(ROOT / "scripts/train.py"),
        str(config),
        "--budget",
        "smoke",
        "--out",
        str(out),
        "--no-progress",
        *sets,
    ]


def _weights(run):
    with zipfile.ZipFile(run / "model.zip") as z:
        return torch.load(io.BytesIO(z.read("policy.pth")), weights_only=True)


def _run_dir(out):
    (run,) = Path(out).glob("*/*/swa/seed0")
    return run


def _interrupt(config, overrides, out, sig):
    proc = subprocess.Popen(_cmd(config, overrides, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + START_S
    while not list(Path(out).glob("*/*/swa/seed0/ckpt/*.ckpt")):
        assert proc.poll() is None, proc.stderr.read()
        if time.time() > deadline:
            proc.kill()
            pytest.fail(f"no checkpoint within {START_S} s under {out}: the machine is too loaded to interrupt the run")
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.mark.parametrize(
    "algo, sig",
    [("a2c", signal.SIGTERM), ("ddpg", signal.SIGKILL), ("a2c_normalized", signal.SIGKILL), ("atari", signal.SIGTERM)],
)
def test_killed_run_resumes_to_its_uninterrupted_twin(tmp_path, algo, sig):
    if algo == "atari":
        pytest.importorskip("ale_py")
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
    resumed = subprocess.run(
        [sys.executable, str(ROOT / "scripts/train.py"), "--resume", str(run), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
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
    (folder / "step_abc.ckpt").write_bytes(b"x")  # not a name of ours: ignored
    assert checkpoint.latest(folder)[0].name == "step_100.ckpt"
    # every checkpoint damaged: an error, never a silent restart from step 0
    (folder / "step_100.ckpt").write_bytes(b"y")
    with pytest.raises(checkpoint.CheckpointError, match="no readable checkpoint is left"):
        checkpoint.latest(folder)


def test_resume_of_a_damaged_run_dir_is_one_line(tmp_path):
    config, overrides = CASES["ddpg"]
    done = subprocess.run(_cmd(config, overrides, tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    run = _run_dir(tmp_path)
    (run / "result.json").unlink()
    for ckpt in (run / "ckpt").glob("*.ckpt"):
        ckpt.write_bytes(ckpt.read_bytes()[:100])
    command = (run / "command.txt").read_text()
    resume = [sys.executable, str(ROOT / "scripts/train.py"), "--resume", str(run), "--no-progress"]
    proc = subprocess.run(resume, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no readable checkpoint is left" in proc.stderr.strip().splitlines()[-1], proc.stderr
    assert (run / "command.txt").read_text() == command
    (run / "config.yaml").write_text((run / "config.yaml").read_text()[:40])  # truncated
    proc = subprocess.run(resume, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "config.yaml" in proc.stderr, proc.stderr


def test_resume_refuses_finished_or_foreign_dirs(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts/train.py"), "--resume", str(tmp_path)], capture_output=True, text=True
    )
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

                for opt in {
                    id(p.optimizer): p.optimizer for p in self.model.policy.modules() if hasattr(p, "optimizer")
                }.values():
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
    saver = checkpoint.Checkpointer(tmp_path, every=100, env=model.get_env(), swa=swa)
    with pytest.raises(checkpoint.Divergence, match="NaN/Inf at step 400"):
        model.learn(1000, callback=CallbackList([swa, saver, _Poison(400)]))
    saved = checkpoint.checkpoints(tmp_path)
    assert [p.name for p in saved] == ["step_300.ckpt", "step_200.ckpt"]  # the state at 400 is already broken
    state = checkpoint.read(saved[0])
    assert all(torch.isfinite(t).all() for t in state["callback"]["averages"]["swa"]["averages"].values())
    assert all(torch.isfinite(a).all() for a in swa.average.averages.values())


@pytest.mark.parametrize("algo", ["a2c", "ddpg"])
def test_divergence_finish_ends_the_run_with_its_averages(tmp_path, algo):
    """on_divergence=finish: training ends at the NaN, the averages (which skipped it) are evaluated and
    saved, result.json is strict JSON with the step and a null online score."""
    config, overrides = CASES[algo]
    sets = [*overrides, "on_divergence=finish", "swa.start=0.5", "swa.swa_lr=1e30"]
    proc = subprocess.run(_cmd(config, sets, tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "finishing the run with its averages" in proc.stdout
    run = _run_dir(tmp_path)
    result = json.loads((run / "result.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in result.json"))
    assert result["diverged_at"] is not None and result["final_online"] is None
    assert result["skipped"] > 0
    if algo == "ddpg":  # one step per rollout: it diverges at the first SWA-phase update, nothing averaged yet
        assert result["n_averaged"] == 0 and result["final_swa"] is None and not (run / "swa_policy.safetensors").exists()
        return
    assert result["final_swa"] is not None and result["n_averaged"] > 0

    from rl_swa import SWAPolicy

    policy = SWAPolicy.load(run / "swa_policy.safetensors")
    assert all(torch.isfinite(t).all() for t in policy.policy.state_dict().values())


def test_interrupted_prefix_continues_to_the_same_fork_point(tmp_path):
    config, overrides = CASES["ddpg"]
    code = (
        # one torch thread, as the CLIs set: two threads on busy cores run this prefix ~20x slower
        "import sys, torch; torch.set_num_threads(1)\n"
        "from agents.config import load_config; from agents.runner import train_prefix, Interrupted\n"
        f"cfg = load_config({str(config)!r}, {overrides!r})\n"
        "try:\n    print(train_prefix(cfg, 'Pendulum-v1', 0, 'smoke', sys.argv[1]))\n"
        "except Interrupted as e:\n    print('interrupted', e); sys.exit(3)\n"
    )
    twin = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "twin")], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert twin.returncode == 0, twin.stderr
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "cut")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    while not list((tmp_path / "cut").glob("*/*/prefix/seed0/ckpt/*.ckpt")):
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 3
    again = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "cut")], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert again.returncode == 0 and "resuming" in again.stdout, again.stderr
    a, b = (checkpoint.read(next(Path(d).glob("*/*/prefix/seed0/prefix.ckpt"))) for d in (tmp_path / "twin", tmp_path / "cut"))
    assert a["num_timesteps"] == b["num_timesteps"] == 675 and a["digest"] == b["digest"]


def test_signal_while_diverged_stops_without_a_checkpoint(tmp_path):
    import numpy as np
    from stable_baselines3 import DDPG
    from stable_baselines3.common.noise import NormalActionNoise

    model = DDPG(
        "MlpPolicy",
        "Pendulum-v1",
        learning_starts=50,
        batch_size=16,
        seed=0,
        device="cpu",
        action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)),
        policy_kwargs=dict(net_arch=[8]),
    )
    saver = checkpoint.Checkpointer(tmp_path, every=10, env=model.get_env())
    saver.init_callback(model)
    saver.on_training_start({}, {})
    with torch.no_grad():
        model.critic.qf0[0].weight[0, 0] = float("nan")
    saver.request_stop(signal.SIGINT, None)  # a signal asks for a checkpoint: broken weights are never saved
    with pytest.raises(checkpoint.Divergence):
        saver.on_rollout_start()
    assert not list(tmp_path.glob("*.ckpt"))


def test_a_live_run_directory_is_locked(tmp_path):
    """--overwrite and a second --resume refuse while a run writes its directory; a killed run frees it."""
    config, overrides = CASES["a2c"]
    overrides = [*overrides, "budgets.smoke.timesteps=400000"]
    proc = subprocess.Popen(_cmd(config, overrides, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list(tmp_path.glob("*/*/swa/seed0/ckpt/*.ckpt")):
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        run = _run_dir(tmp_path)
        for extra in (["--overwrite"], []):
            cmd = (
                _cmd(config, overrides, tmp_path) + extra
                if extra
                else [sys.executable, str(ROOT / "scripts/train.py"), "--resume", str(run)]
            )
            other = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            assert other.returncode == 2 and f"in use by process {proc.pid} (" in other.stderr, other.stderr
            assert other.stderr.count("\n") == 1
        assert proc.poll() is None and (run / "config.yaml").is_file()  # the live run goes on, its directory intact
    finally:
        proc.kill()
        proc.wait()
    from agents.runner import locked

    with locked(run):  # the lock died with the process
        pass


def test_mujoco_training_env_pickles_mid_episode_with_its_physics_and_rng():
    """A MuJoCo env (EzPickle) copied through a checkpoint continues as its twin, across resets."""
    pytest.importorskip("mujoco")
    import cloudpickle
    import numpy as np
    from stable_baselines3.common.env_util import make_vec_env

    from agents import env_state

    env = make_vec_env("Hopper-v5", n_envs=2, seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(230, 2, 3)).astype(np.float32)
    env.reset()
    for a in actions[:30]:
        env.step(a)
    copy = cloudpickle.loads(env_state.dumps(env))
    resets = 0
    for a in actions[30:]:  # random actions end Hopper's episodes within tens of steps: the resets draw from the RNG
        obs, rewards, dones, _ = env.step(a)
        obs2, rewards2, dones2, _ = copy.step(a)
        np.testing.assert_array_equal(obs, obs2)
        np.testing.assert_array_equal(rewards, rewards2)
        resets += int(dones.sum())
    assert resets >= 4
