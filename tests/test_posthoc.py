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

from rl_swa import SWACallback
from rl_swa.averaging import window_average
from scripts.posthoc import episode_seeds, select_window, windows

ROOT = Path(__file__).resolve().parent.parent


def test_window_rebuilt_from_saved_running_averages_equals_direct_average():
    model = A2C("MlpPolicy", "CartPole-v1", n_steps=5, seed=0, device="cpu", policy_kwargs=dict(net_arch=[8]))
    snaps = []
    model.policy.optimizer.register_step_post_hook(
        lambda o, a, k: snaps.append((model.num_timesteps, {n: p.detach().clone() for n, p in model.policy.named_parameters()}))
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


def test_empty_window_is_an_error():
    point = {"n": 3, "averages": {"w": torch.ones(2)}}
    with pytest.raises(ValueError, match="empty window"):
        window_average(point, point)


@settings(max_examples=200, deadline=None)
@given(base=st.integers(0, 10**6), n_val=st.integers(1, 500), n_test=st.integers(1, 500))
def test_validation_and_test_seeds_never_overlap(base, n_val, n_test):
    assert not set(episode_seeds("validation", base, n_val)) & set(episode_seeds("test", base, n_test))


def test_selection_sees_validation_scores_only():
    seen = []
    best, scores = select_window(["a", "b", "c"], lambda c: seen.append(c) or {"a": 1.0, "b": 3.0, "c": 2.0}[c])
    assert best == 1 and seen == ["a", "b", "c"] and scores == [1.0, 3.0, 2.0]


def test_posthoc_script_on_a_finished_run(tmp_path):
    cfg = ROOT / "configs/classic/pendulum_ddpg.yaml"
    train = subprocess.run([sys.executable, str(ROOT / "scripts/train.py"), str(cfg), "--variant", "baseline", "--budget", "smoke",
                            "--out", str(tmp_path), "--no-progress", "--set", "swa.posthoc_points=3"], capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stderr
    run = tmp_path / "classic_pendulum_ddpg/Pendulum-v1/baseline/seed0"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/posthoc.py"), str(run), "--val-episodes", "2", "--test-episodes", "2"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((run / "posthoc.json").read_text())
    assert result["windows_tried"] == len(result["saved_points"]) * (len(result["saved_points"]) + 1) // 2
    assert {"test_online", "test_posthoc", "test_fixed_start"} <= set(result)
    assert result["val_seeds"][0] > result["test_seeds"][1]
    missing = subprocess.run([sys.executable, str(ROOT / "scripts/posthoc.py"), str(tmp_path)], capture_output=True, text=True)
    assert missing.returncode == 2 and "posthoc_points" in missing.stderr
