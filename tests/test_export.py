"""ONNX export: onnxruntime alone acts like ``predict(obs, deterministic=True)`` on 1,000 observations,
normalization and action post-processing included (what SB3's export recipe leaves out)."""

import subprocess
import sys

import numpy as np
import pytest
from stable_baselines3 import A2C, DDPG
from stable_baselines3.common.env_util import make_atari_env, make_vec_env
from stable_baselines3.common.vec_env import VecFrameStack, VecNormalize

from rl_swa import SWAPolicy
from rl_swa.normalization import ObsNormalizer

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
from rl_swa.export import export_onnx, onnx_predict  # noqa: E402

RL_SWA = [sys.executable, "-c", "import sys; from agents.cli import main; sys.argv[0] = 'rl-swa'; main()"]


def _observations(space, n=1000, scale=None):
    rng = np.random.default_rng(0)
    if space.dtype == np.uint8:
        return rng.integers(0, 256, size=(n, *space.shape), dtype=np.uint8)
    return rng.normal(0.0, scale or 1.0, size=(n, *space.shape)).astype(np.float32)


def _model(case):
    if case == "a2c_discrete":
        return A2C("MlpPolicy", make_vec_env("CartPole-v1", seed=0), seed=0, policy_kwargs={"net_arch": [16]}), None
    if case == "a2c_normalized":  # continuous actions, clipped to [-2, 2]; observations normalized
        env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=2, seed=0))
        model = A2C("MlpPolicy", env, n_steps=8, seed=0, policy_kwargs={"net_arch": [16]})
        model.learn(400)  # statistics away from (0, 1)
        return model, ObsNormalizer.from_env(env)
    if case == "ddpg":  # a squashed action scaled to [-2, 2]
        return DDPG("MlpPolicy", "Pendulum-v1", buffer_size=10, seed=0, policy_kwargs={"net_arch": [16]}), None
    pytest.importorskip("ale_py")
    import ale_py
    import gymnasium

    gymnasium.register_envs(ale_py)
    env = VecFrameStack(make_atari_env("ALE/Breakout-v5", n_envs=1, seed=0, env_kwargs={"frameskip": 1}), n_stack=4)
    return A2C("CnnPolicy", env, seed=0), None


@pytest.mark.parametrize("case", ["a2c_discrete", "a2c_normalized", "ddpg", "atari_cnn"])
def test_onnx_acts_like_predict(case, tmp_path):
    model, norm = _model(case)
    policy = SWAPolicy(model.policy, {"algorithm": type(model).__name__}, norm)
    path = export_onnx(policy, tmp_path / "policy.onnx")
    obs = _observations(model.observation_space, scale=3.0)
    want = policy.predict(obs, deterministic=True)[0]
    got = onnx_predict(path, obs)
    assert got.shape == want.shape
    if want.dtype.kind == "f":
        assert np.allclose(got, want, atol=1e-5), np.abs(got - want).max()
        if case != "a2c_discrete":  # the post-processing is inside: every action within the bounds
            assert got.min() >= model.action_space.low.min() and got.max() <= model.action_space.high.max()
    else:
        assert np.array_equal(got, want)
    if case == "a2c_normalized":  # without the normalization in the graph the actions would differ
        raw = SWAPolicy(model.policy, {}, None)
        assert not np.allclose(raw.predict(obs, deterministic=True)[0], want, atol=1e-3)


def test_export_command_writes_beside_the_deployed_policy(tmp_path):
    model, _ = _model("ddpg")
    deployed = tmp_path / "deployed"
    deployed.mkdir()
    SWAPolicy(model.policy, {"algorithm": "DDPG"}).save(deployed / "policy.safetensors")
    done = subprocess.run([*RL_SWA, "export", str(deployed), "--onnx"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (deployed / "policy.onnx").is_file() and "wrote" in done.stdout
    missing = subprocess.run([*RL_SWA, "export", str(tmp_path), "--onnx"], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "policy.safetensors" in missing.stderr
