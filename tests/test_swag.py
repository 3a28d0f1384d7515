import contextlib
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, DDPG
from torch import nn

from rl_swa import SWACallback, SWAConfig, SWAGPolicy, SWAGRecorder, SWAPolicy, WeightAverage


def _recorder(on_host: bool, rank: int = 3, every: int = 2):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3))
    average = WeightAverage(net)
    average.on_host = on_host  # False: the accelerator path (device-side guard, no host branch) on CPU tensors
    swa = SimpleNamespace(average=average, tensors=dict(net.named_parameters()), after_update=[])
    recorder = SWAGRecorder(swa, rank=rank, every=every)
    recorder._init_callback()
    return net, average, recorder


@pytest.mark.parametrize("on_host", [True, False])
def test_second_moments_and_deviations_are_those_of_the_snapshots(on_host):
    net, average, recorder = _recorder(on_host)
    gen = torch.Generator().manual_seed(1)
    taken, columns = [], []
    for i in range(1, 12):  # update i; columns at updates 3, 5, 7, 9, 11 (every 2 after the first)
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn(p.shape, generator=gen))
            if i == 6:  # a diverged snapshot: skipped by the average and by SWAG alike
                net[0].weight[0, 0] = float("nan")
        with pytest.warns(RuntimeWarning) if i == 6 and on_host else contextlib.nullcontext():
            average.update()
        recorder._after_update(step=10 * i)
        if i == 6:
            with torch.no_grad():
                net[0].weight[0, 0] = 0.0
            continue
        taken.append([p.detach().clone() for p in net.parameters()])
        if i in (3, 5, 7, 9, 11):
            mean = [torch.stack(ts).mean(0) for ts in zip(*taken)]
            columns.append([x - m for x, m in zip(taken[-1], mean)])
    assert average.n_averaged == 10 and recorder.n_columns == 5
    for sq, snapshots in zip(recorder.sq, zip(*taken)):
        torch.testing.assert_close(sq, torch.stack(snapshots).square().mean(0), rtol=1e-5, atol=1e-5)
    kept = [recorder.deviations[k % 3] for k in range(2, 5)]  # the newest 3 of 5, in a ring
    for got, want in zip(kept, columns[2:]):
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


def test_columns_are_spread_over_the_averaging_phase():
    net, average, recorder = _recorder(on_host=True, rank=4, every=None)
    recorder.model = SimpleNamespace(_total_timesteps=1000)
    for i in range(1, 5):
        average.update()
        recorder._after_update(step=200 + 40 * i)  # a snapshot every 40 steps from step 240 to 1000: ~20 snapshots
    assert recorder.every == 4  # 19 snapshots after the first / 4 columns
    net, average, recorder = _recorder(on_host=True, rank=4, every=None)
    recorder.model = SimpleNamespace(_total_timesteps=1000)
    for i in range(1, 7):  # two snapshots per env step (e.g. DDPG's gradient_steps=2): one every 20 steps
        average.update()
        recorder._after_update(step=200 + 40 * ((i + 1) // 2))
    assert recorder.every == 9  # (1000 - 240) / 20 = 38 snapshots after the first / 4 columns


def test_a_policy_drawn_with_scale_zero_is_the_average_and_draws_spread_as_the_gaussian(tmp_path):
    model = A2C("MlpPolicy", "CartPole-v1", n_steps=5, seed=0, device="cpu", policy_kwargs=dict(net_arch=[4]))
    swa = SWACallback(start=0.3, swag_rank=4)
    model.learn(3000, callback=swa)
    recorder = swa.component(SWAGRecorder)
    assert recorder.n_columns >= 4 and recorder.every >= 1
    obs = np.stack([model.observation_space.sample() for _ in range(64)])
    mean_actions = swa.policy.predict(obs, deterministic=True)[0]
    still = recorder.policy(n_samples=3, scale=0.0)
    np.testing.assert_array_equal(still.predict(obs, deterministic=True)[0], mean_actions)
    swag = recorder.policy(n_samples=2, scale=0.5, seed=3)
    name = "action_net.weight"
    draws = torch.stack([swag.sample(torch.Generator().manual_seed(s)).policy.state_dict()[name] for s in range(400)])
    mean = swa.policy.policy.state_dict()[name]
    cols = torch.stack([d[name] for d in swag.deviations])
    expected_var = 0.5 / 2 * (swag.variance()[name] + cols.square().sum(0) / (swag.rank - 1))
    torch.testing.assert_close(draws.mean(0), mean, atol=4 * (expected_var.max().sqrt() / 20).item(), rtol=0)
    ratio = draws.var(0) / expected_var
    assert 0.8 < ratio.nanmedian() < 1.2


def test_swag_policy_saves_loads_and_resumes(tmp_path):
    model = DDPG("MlpPolicy", "Pendulum-v1", learning_starts=50, batch_size=16, seed=0, device="cpu")
    swa = SWACallback(SWAConfig(start=0.5, swag_rank=3))
    model.learn(300, callback=swa)
    swag = swa.component(SWAGRecorder).policy(n_samples=4, seed=1)
    obs = np.stack([model.observation_space.sample() for _ in range(8)])
    path = swag.save(tmp_path / "swag")
    loaded = SWAGPolicy.load(path, device="cpu")
    assert (loaded.rank, loaded.n_samples, loaded.scale, loaded.seed) == (3, 4, 0.5, 1)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], swag.predict(obs, deterministic=True)[0])
    members = [m.predict(obs, deterministic=True)[0] for m in swag.ensemble().members]
    np.testing.assert_allclose(swag.predict(obs, deterministic=True)[0], np.mean(members, axis=0), rtol=1e-6)
    with pytest.raises(ValueError, match="SWAGPolicy.load"):
        SWAPolicy.load(path)
    state = swa.state_dict()
    fresh = SWACallback(SWAConfig(start=0.5, swag_rank=3))
    fresh.init_callback(model)
    fresh.load_state_dict(state)
    a, b = swa.component(SWAGRecorder), fresh.component(SWAGRecorder)
    assert (a.n_columns, a.every) == (b.n_columns, b.every)
    assert all(torch.equal(x, y) for x, y in zip(a.sq + sum(a.deviations, []), b.sq + sum(b.deviations, [])))


@pytest.mark.parametrize(
    "settings, field",
    [({"swag_rank": 1}, "swag_rank=1"), ({"swag_rank": 3, "mode": "ema"}, "mode=swa"), ({"swag_rank": -1}, "swag_rank")],
)
def test_bad_swag_settings_name_the_field(settings, field):
    with pytest.raises(ValueError, match=field):
        SWACallback(**settings)


def test_disagreement_of_drawn_policies_grows_with_the_scale():
    model = DDPG("MlpPolicy", "Pendulum-v1", learning_starts=50, batch_size=16, seed=0, device="cpu")
    swa = SWACallback(start=0.5, swag_rank=3)
    model.learn(300, callback=swa)
    recorder = swa.component(SWAGRecorder)
    obs = np.stack([model.observation_space.sample() for _ in range(32)])
    spread = [recorder.policy(n_samples=6, scale=s, seed=2).disagreement(obs) for s in (0.0, 0.5, 4.0)]
    assert spread[0] < 1e-6 < spread[1] < spread[2]  # identical draws at scale 0 (float32 rounding of the std)
