"""Post-hoc averaging: windows rebuilt from saved running averages, disjoint validation/test episodes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3 import A2C

from agents.cli.posthoc import episode_seeds, select_window, windows
from rl_swa import PosthocRecorder, SWACallback
from rl_swa.averaging import WeightAverage
from rl_swa.posthoc import gamma_of, synthesize_ema, window_average

ROOT = Path(__file__).resolve().parent.parent


def test_window_rebuilt_from_saved_running_averages_equals_direct_average():
    model = A2C("MlpPolicy", "CartPole-v1", n_steps=5, seed=0, device="cpu", policy_kwargs=dict(net_arch=[8]))
    snaps = []
    model.policy.optimizer.register_step_post_hook(
        lambda o, a, k: snaps.append(
            (model.num_timesteps, {n: p.detach().clone() for n, p in model.policy.named_parameters()})
        )
    )
    swa = SWACallback(posthoc_points=4)
    model.learn(400, callback=swa)
    assert [(p["step"], p["n"]) for p in swa.posthoc] == [(100, 20), (200, 40), (300, 60), (400, 80)]
    for earlier, later in windows(swa.posthoc):
        lo = 0 if earlier is None else earlier["step"]
        rebuilt = window_average(later, earlier)
        for name, value in rebuilt.items():
            direct = torch.stack([s[name] for step, s in snaps if lo < step <= later["step"]]).mean(0)
            torch.testing.assert_close(value, direct, rtol=1e-5, atol=1e-6)
    assert len(windows(swa.posthoc)) == 10  # 4 ends x (start or an earlier point)


def test_power_ema_weighs_snapshots_as_karras_power_function():
    gamma = 2.5
    x = torch.zeros(3, dtype=torch.float64)
    average = WeightAverage([x], mode="power", gamma=gamma)
    snaps = [torch.randn(3, dtype=torch.float64) for _ in range(40)]
    for s in snaps:
        x.copy_(s)
        average.update()
    # Karras et al.: beta_t = (1 - 1/t)^(gamma+1): snapshot tau of t weighs prod over later t of beta, times (1 - beta_tau)
    weights = []
    for tau in range(1, 41):
        w = 1 - (1 - 1 / tau) ** (gamma + 1)
        for t in range(tau + 1, 41):
            w *= (1 - 1 / t) ** (gamma + 1)
        weights.append(w)
    expected = sum(w * s for w, s in zip(weights, snaps))
    torch.testing.assert_close(average.averages["0"], expected)
    assert weights[-1] > weights[20] > weights[0]  # later snapshots weigh more
    equal = WeightAverage([x], mode="power", gamma=0)
    x.copy_(snaps[0])
    equal.update()
    x.copy_(snaps[1])
    equal.update()
    torch.testing.assert_close(equal.averages["0"], (snaps[0] + snaps[1]) / 2)
    with pytest.raises(ValueError, match="gamma"):
        WeightAverage([x], mode="power", gamma=-1.0)


def _trajectory_points(sigma_rels, steps=2000, every=200):
    """Saved equal and power averages along a smooth trajectory; the direct power EMA of any width for comparison."""
    torch.manual_seed(0)
    coef = torch.randn(4, 50, dtype=torch.float64)
    path = [
        coef[0] + coef[1] * u + coef[2] * u**2 + coef[3] * torch.sin(torch.tensor(6 * u))
        for u in (t / steps for t in range(1, steps + 1))
    ]
    x = torch.zeros(50, dtype=torch.float64)
    equal = WeightAverage({"w": x})
    power = [WeightAverage({"w": x}, mode="power", gamma=gamma_of(s)) for s in sigma_rels]
    points = []
    for t, value in enumerate(path, 1):
        x.copy_(value)
        for a in (equal, *power):
            a.update()
        if t % every == 0:
            points.append(
                {
                    "step": t,
                    "n": equal.n_averaged,
                    "averages": {"w": equal.averages["w"].clone()},
                    "power": [
                        {"gamma": gamma_of(s), "n": p.n_averaged, "averages": {"w": p.averages["w"].clone()}}
                        for s, p in zip(sigma_rels, power)
                    ],
                }
            )

    def direct(sigma):
        a = WeightAverage({"w": x}, mode="power", gamma=gamma_of(sigma))
        for value in path:
            x.copy_(value)
            a.update()
        return a.averages["w"]

    return points, direct


def test_posthoc_ema_reproduces_a_saved_profile_and_approximates_others():
    points, direct = _trajectory_points([0.05, 0.10])
    saved, error = synthesize_ema(points, 0.10)  # a saved profile: solved exactly
    assert error < 1e-6
    torch.testing.assert_close(saved["w"], points[-1]["power"][1]["averages"]["w"])
    for sigma in (0.03, 0.07, 0.15, 0.2):
        synthesized, error = synthesize_ema(points, sigma)
        target = direct(sigma)
        nearest = min((target - q["averages"]["w"]).norm() for q in points[-1]["power"])
        # far closer to the true power EMA of that width than any saved average is
        assert (synthesized["w"] - target).norm() < 0.01 * nearest, sigma
        assert 0 <= error < 0.1
    repeated, _ = synthesize_ema(points + [points[-1]], 0.07)  # a duplicated profile: singular system
    torch.testing.assert_close(repeated["w"], synthesize_ema(points, 0.07)[0]["w"])
    with pytest.raises(ValueError, match="sigma_rel"):
        synthesize_ema(points, 0.5)


def test_callback_saves_power_emas_that_resume_exactly():
    def run():
        model = A2C("MlpPolicy", "CartPole-v1", n_steps=5, seed=0, device="cpu", policy_kwargs=dict(net_arch=[8]))
        swa = SWACallback(posthoc_points=4, posthoc_sigma_rels=[0.05, 0.2])
        model.learn(400, callback=swa)
        return swa

    swa = run()
    assert [len(p["power"]) for p in swa.posthoc] == [2, 2, 2, 2]
    assert all(q["n"] == p["n"] for p in swa.posthoc for q in p["power"])
    last = swa.posthoc[-1]["power"]
    assert not torch.equal(
        last[0]["averages"]["mlp_extractor.policy_net.0.weight"], last[1]["averages"]["mlp_extractor.policy_net.0.weight"]
    )
    state = swa.state_dict()
    other = SWACallback(posthoc_points=4, posthoc_sigma_rels=[0.05, 0.2])
    other.init_callback(A2C("MlpPolicy", "CartPole-v1", n_steps=5, seed=0, device="cpu", policy_kwargs=dict(net_arch=[8])))
    other.load_state_dict(state)
    assert all(
        torch.equal(a.averages[n], b.averages[n])
        for a, b in zip(other.component(PosthocRecorder).power, swa.component(PosthocRecorder).power)
        for n in a.averages
    )
    mismatch = SWACallback(posthoc_points=4, posthoc_sigma_rels=[0.05])
    mismatch.init_callback(A2C("MlpPolicy", "CartPole-v1", n_steps=5, seed=0, device="cpu", policy_kwargs=dict(net_arch=[8])))
    with pytest.raises(ValueError, match="posthoc_sigma_rels"):
        mismatch.load_state_dict(state)
    for bad in ([0.05, 0.05], [0.3], "0.05", [0]):
        with pytest.raises(ValueError, match="posthoc_sigma_rels"):
            SWACallback(posthoc_points=4, posthoc_sigma_rels=bad)


def test_empty_window_is_an_error():
    point = {"n": 3, "averages": {"w": torch.ones(2)}}
    with pytest.raises(ValueError, match="empty window"):
        window_average(point, point)


@settings(max_examples=200, deadline=None)
@given(base=st.integers(0, 10**6), n_val=st.integers(1, 500), n_test=st.integers(1, 500))
def test_validation_and_test_seeds_never_overlap(base, n_val, n_test):
    assert not set(episode_seeds("validation", base, n_val)) & set(episode_seeds("test", base, n_test))


def test_episodes_played_together_are_the_episodes_each_seed_plays_alone():
    """``play(together=True)`` steps one VecEnv of all seeds at once; each episode must still start
    from its own seed (Pendulum: not chaotic, so the batched forward pass's last-bit rounding stays small)."""
    from stable_baselines3 import DDPG

    from agents.cli.posthoc import play
    from agents.config import load_config

    cfg = load_config(ROOT / "configs/classic/pendulum_ddpg.yaml")
    model = DDPG("MlpPolicy", "Pendulum-v1", seed=0, device="cpu", policy_kwargs=dict(net_arch=[16]))
    seeds = episode_seeds("test", cfg.eval.seed, 3)
    alone = [play(model, cfg, "Pendulum-v1", [s], True) for s in seeds]
    assert len(set(alone)) == 3  # the seeds give different episodes
    assert play(model, cfg, "Pendulum-v1", seeds, True) == pytest.approx(sum(alone) / 3, abs=0)
    assert play(model, cfg, "Pendulum-v1", seeds, True, together=True) == pytest.approx(sum(alone) / 3, rel=1e-6)
    with pytest.raises(ValueError, match="consecutive"):
        play(model, cfg, "Pendulum-v1", [seeds[0], seeds[2]], True, together=True)


def test_episode_returns_are_in_seed_order_with_each_episodes_own_steps():
    """Played together, CartPole episodes end at different steps; the returns still come back in
    seed order (SB3 records them in the order they end), and ``on_step`` sees each episode's own
    observations (CartPole pays 1 a step, so a return is its episode's step count)."""
    from agents.cli.posthoc import episode_returns
    from agents.config import load_config

    cfg = load_config(ROOT / "configs/classic/cartpole_a2c.yaml")
    model = A2C("MlpPolicy", "CartPole-v1", seed=0, device="cpu")
    seeds = episode_seeds("test", cfg.eval.seed, 6)
    alone = episode_returns(model, cfg, "CartPole-v1", seeds, True)
    assert alone != sorted(alone)  # the episodes do not end in seed order
    steps = [[] for _ in seeds]
    together = episode_returns(
        model, cfg, "CartPole-v1", seeds, True, together=True, on_step=lambda k, obs: steps[k].append(obs)
    )
    assert together == alone
    assert [len(s) for s in steps] == alone
    assert all(s[0].shape == (4,) for s in steps)


def test_selection_sees_validation_scores_only():
    seen = []
    best, scores = select_window(["a", "b", "c"], lambda c: seen.append(c) or {"a": 1.0, "b": 3.0, "c": 2.0}[c])
    assert best == 1 and seen == ["a", "b", "c"] and scores == [1.0, 3.0, 2.0]


def test_posthoc_script_on_a_finished_run(tmp_path):
    cfg = ROOT / "configs/classic/pendulum_ddpg.yaml"
    train = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts/train.py"),
            str(cfg),
            "--variant",
            "baseline",
            "--budget",
            "smoke",
            "--out",
            str(tmp_path),
            "--no-progress",
            "--set",
            "swa.posthoc_points=3",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert train.returncode == 0, train.stderr
    run = tmp_path / "classic_pendulum_ddpg/Pendulum-v1/baseline/seed0"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts/posthoc.py"), str(run), "--val-episodes", "2", "--test-episodes", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads((run / "posthoc.json").read_text())
    assert result["windows_tried"] == len(result["saved_points"]) * (len(result["saved_points"]) + 1) // 2
    assert result["ema_profiles_tried"] == 9
    assert {"test_online", "test_posthoc", "test_fixed_start", "test_posthoc_window", "test_posthoc_ema"} <= set(result)
    best = max(result["validation"].values())
    assert result["chosen"]["validation"] == best  # chosen on validation scores
    assert result["chosen_ema"]["label"].startswith("ema") and result["chosen_window"]["label"].startswith("window")
    assert result["val_seeds"][0] > result["test_seeds"][1]
    assert result["together"] is False and result["code"] and result["cpu"]
    args = [sys.executable, str(ROOT / "scripts/posthoc.py"), str(run), "--val-episodes", "2", "--test-episodes", "2"]
    together = subprocess.run([*args, "--together"], capture_output=True, text=True, timeout=300)
    assert together.returncode == 0, together.stderr
    again = json.loads((run / "posthoc.json").read_text())
    assert again["together"] is True and again["test_online"] == pytest.approx(result["test_online"], rel=1e-6)
    missing = subprocess.run([sys.executable, str(ROOT / "scripts/posthoc.py"), str(tmp_path)], capture_output=True, text=True)
    assert missing.returncode == 2 and "posthoc_points" in missing.stderr


def test_saved_points_keep_the_online_weights_of_their_time():
    model = A2C("MlpPolicy", "CartPole-v1", n_steps=5, seed=0, device="cpu", policy_kwargs=dict(net_arch=[8]))
    seen = {}
    model.policy.optimizer.register_step_post_hook(
        lambda o, a, k: seen.__setitem__(
            model.num_timesteps, {n: p.detach().clone() for n, p in model.policy.named_parameters()}
        )
    )
    swa = SWACallback(posthoc_points=4)
    model.learn(400, callback=swa)
    for point in swa.posthoc:
        assert point["obs_normalizer"] is None  # no VecNormalize here
        for name, value in point["online"].items():
            torch.testing.assert_close(value, seen[point["step"]][name], rtol=0, atol=0)
    first, last = swa.posthoc[0]["online"], swa.posthoc[-1]["online"]
    assert any(not torch.equal(first[n], last[n]) for n in first)  # copies, not views of the live weights
