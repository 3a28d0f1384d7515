import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, DDPG, DQN
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from rl_swa import EnsemblePolicy, SWACallback, SWAGPolicy, SWAPolicy


def averaged(algo, env, seed, tmp_path, **kwargs):
    model = algo("MlpPolicy", env, seed=seed, device="cpu", policy_kwargs=dict(net_arch=[16]), **kwargs)
    swa = SWACallback(start=0.5)
    model.learn(400, callback=swa)
    return SWAPolicy.load(swa.policy.save(tmp_path / f"{algo.__name__}{seed}"), device="cpu")


def test_discrete_members_act_by_their_mean_probabilities(tmp_path):
    members = [averaged(A2C, "CartPole-v1", s, tmp_path, n_steps=5) for s in range(3)]
    ensemble = EnsemblePolicy(members)
    obs = np.stack([members[0].observation_space.sample() for _ in range(64)])
    with torch.no_grad():
        probs = np.mean(
            [m.policy.get_distribution(m.policy.obs_to_tensor(obs)[0]).distribution.probs.numpy() for m in members], axis=0
        )
    actions, state = ensemble.predict(obs, deterministic=True)
    assert state is None and np.array_equal(actions, probs.argmax(axis=1))
    single = ensemble.predict(obs[0], deterministic=True)[0]
    assert np.ndim(single) == 0 and single == actions[0]
    alone = EnsemblePolicy(members[:1])  # one member: the member itself
    np.testing.assert_array_equal(alone.predict(obs, deterministic=True)[0], members[0].predict(obs, deterministic=True)[0])
    rewards, _ = evaluate_policy(ensemble, make_vec_env("CartPole-v1", n_envs=1, seed=0), n_eval_episodes=2)
    assert rewards > 0


def test_continuous_members_act_by_their_mean_action(tmp_path):
    members = [averaged(DDPG, "Pendulum-v1", s, tmp_path, learning_starts=100, batch_size=32) for s in range(2)]
    obs = np.stack([members[0].observation_space.sample() for _ in range(16)])
    expected = np.mean([m.predict(obs, deterministic=True)[0] for m in members], axis=0)
    np.testing.assert_allclose(EnsemblePolicy(members).predict(obs, deterministic=True)[0], expected, rtol=1e-6)


def test_q_network_members_act_by_their_mean_q_values(tmp_path):
    members = [averaged(DQN, "CartPole-v1", s, tmp_path, learning_starts=100, target_update_interval=100) for s in range(2)]
    obs = np.stack([members[0].observation_space.sample() for _ in range(32)])
    with torch.no_grad():
        q = np.mean([m.policy.q_net(m.policy.obs_to_tensor(obs)[0]).numpy() for m in members], axis=0)
    np.testing.assert_array_equal(EnsemblePolicy(members).predict(obs, deterministic=False)[0], q.argmax(axis=1))


def test_members_of_other_spaces_are_refused(tmp_path):
    cartpole = averaged(A2C, "CartPole-v1", 0, tmp_path, n_steps=5)
    acrobot = averaged(A2C, "Acrobot-v1", 0, tmp_path, n_steps=5)
    with pytest.raises(ValueError, match="member 1"):
        EnsemblePolicy([cartpole, acrobot])
    with pytest.raises(ValueError, match="non-empty"):
        EnsemblePolicy([])
    loaded = EnsemblePolicy.load([tmp_path / "A2C0.safetensors"] * 2, device="cpu")
    assert len(loaded) == 2


def test_ensemble_script_scores_a_grids_averaged_policies_on_the_test_episodes(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    from agents.cli.posthoc import episode_seeds, play
    from agents.config import load_config

    root = Path(__file__).resolve().parent.parent
    config = root / "configs/classic/cartpole_a2c.yaml"

    def script(*args):
        return subprocess.run(
            [sys.executable, str(root / "scripts" / args[0]), *map(str, args[1:])], capture_output=True, text=True, timeout=600
        )

    grid = script(
        "compare.py",
        config,
        *"--budget smoke --seeds 2 --jobs 2 --reps 50 --set variants=[baseline] --set swa.swag_rank=2".split(),
        "--out",
        tmp_path,
    )
    assert grid.returncode == 0, grid.stderr[-2000:]
    exp = tmp_path / "classic_cartpole_a2c"
    proc = script("ensemble.py", exp, "--env", "CartPole-v1", "--test-episodes", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((exp / "ensemble_CartPole-v1_baseline.json").read_text())
    assert result["seeds"] == ["seed0", "seed1"]
    cfg = load_config(config)
    seeds = episode_seeds("test", cfg.eval.seed, 2)
    members = [SWAPolicy.load(exp / f"CartPole-v1/baseline/seed{s}/swa_policy.safetensors", device="cpu") for s in (0, 1)]
    assert result["test_members"] == [play(m, cfg, "CartPole-v1", seeds, True) for m in members]
    assert result["test_ensemble"] == play(EnsemblePolicy(members), cfg, "CartPole-v1", seeds, True)
    online = [SWAPolicy.load(exp / f"CartPole-v1/baseline/seed{s}/policy.safetensors", device="cpu") for s in (0, 1)]
    assert result["test_online_ensemble"] == play(EnsemblePolicy(online), cfg, "CartPole-v1", seeds, True)
    swags = [SWAGPolicy.load(exp / f"CartPole-v1/baseline/seed{s}/swag_policy.safetensors", device="cpu") for s in (0, 1)]
    assert result["test_swag"] == [play(s, cfg, "CartPole-v1", seeds, True) for s in swags]
    multi = EnsemblePolicy([m for s in swags for m in s.ensemble().members], seed=0)
    assert result["test_multiswag"] == play(multi, cfg, "CartPole-v1", seeds, True) and len(multi) == 20
    assert [np.mean(e["returns"]) for e in result["swag_episodes"]] == result["test_swag"]
    assert all(0 <= d <= 0.5 for e in result["swag_episodes"] for d in e["disagreement"])
    few = script("ensemble.py", exp, "--env", "CartPole-v1", "--variant", "swa")
    assert few.returncode == 2 and "need 2 or more" in few.stderr and len(few.stderr.strip().splitlines()) == 1
