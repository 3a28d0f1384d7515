import importlib

import numpy as np
import pytest
import torch
import yaml
from stable_baselines3 import A2C, DDPG, DQN
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.noise import NormalActionNoise

from rl_swa import PosthocRecorder, SWACallback, SWAEvaluation, SWAPolicy


def a2c(seed=0, **kwargs):
    return A2C(
        "MlpPolicy",
        "CartPole-v1",
        n_steps=5,
        seed=seed,
        device="cpu",
        policy_kwargs=dict(net_arch=[8], optimizer_class=torch.optim.Adam),
        **kwargs,
    )


def ddpg(seed=0):
    return DDPG(
        "MlpPolicy",
        "Pendulum-v1",
        learning_starts=100,
        batch_size=32,
        seed=seed,
        device="cpu",
        action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)),
        policy_kwargs=dict(net_arch=[16]),
    )


def test_a2c_snapshots_are_the_mean_of_post_update_weights():
    model = a2c()
    swa = SWACallback(start=0.5, update_every=5)
    snaps = []

    def record(optimizer, args, kwargs):
        if model.num_timesteps > 250:
            record.n += 1
            if record.n % 5 == 0:
                snaps.append({n: p.detach().clone() for n, p in model.policy.named_parameters()})

    record.n = 0
    model.policy.optimizer.register_step_post_hook(record)
    model.learn(500, callback=swa)
    # 100 updates of 5 steps; 50 after step 250; every 5th -> 10 snapshots
    assert swa.average.n_averaged == 10 == len(snaps)
    for name, avg in swa.average.averages.items():
        expected = torch.stack([s[name] for s in snaps]).mean(0)
        torch.testing.assert_close(avg, expected, rtol=1e-5, atol=1e-6)
    policy = swa.policy
    assert isinstance(policy, SWAPolicy)
    for name, p in policy.policy.named_parameters():
        assert torch.equal(p, swa.average.averages[name])
    obs = np.stack([model.get_env().observation_space.sample() for _ in range(32)])
    with swa.average.swapped():
        expected_actions, _ = model.predict(obs, deterministic=True)
    actions, _ = policy.predict(obs, deterministic=True)
    np.testing.assert_array_equal(actions, expected_actions)
    # the model keeps its live weights
    assert any(not torch.equal(p, swa.average.averages[n]) for n, p in model.policy.named_parameters())


def test_ddpg_averages_actor_and_critic_not_targets_and_sets_both_lrs():
    model = ddpg()
    swa = SWACallback(start=200, swa_lr=5e-5)
    model.learn(300, callback=swa)
    names = swa.average.names
    assert any(n.startswith("actor.") for n in names) and any(n.startswith("critic.") for n in names)
    assert not any("target" in n for n in names)
    assert swa.average.n_averaged == 100  # one gradient step per env step after 200
    assert model.actor.optimizer.param_groups[0]["lr"] == pytest.approx(5e-5)
    assert model.critic.optimizer.param_groups[0]["lr"] == pytest.approx(5e-5)
    assert not hasattr(model.lr_schedule, "start_step")  # the user's schedule is back after training


def test_flat_layout_changes_neither_training_nor_the_averages(tmp_path):
    runs = {}
    for flatten in (False, True):
        model = ddpg(seed=4)
        swa = SWACallback(start=150, flatten=flatten, posthoc_points=2)
        model.learn(300, callback=swa)
        ((avg, live),) = [g.pairs() for g in swa.average._groups]
        assert len(live) == (1 if flatten else len(swa.average.names))
        model.save(tmp_path / f"m{flatten}")
        runs[flatten] = (model, swa, (tmp_path / f"m{flatten}.zip").stat().st_size)
    (plain, plain_swa, plain_size), (flat, flat_swa, flat_size) = runs[False], runs[True]
    assert flat.actor.optimizer.state  # the optimizers trained the re-laid-out parameters
    for (name, p), q in zip(plain.policy.named_parameters(), flat.policy.parameters()):
        assert torch.equal(p, q), name  # bit for bit: the layout keeps torch's 64-byte alignment
    for average in (lambda swa: swa.average, lambda swa: swa.component(PosthocRecorder).running):
        for name, value in average(plain_swa).averages.items():
            assert torch.equal(average(flat_swa).averages[name], value), name
    assert flat_size < 1.02 * plain_size  # the shared buffer is saved once, not once per tensor
    loaded = DDPG.load(tmp_path / "mTrue.zip", device="cpu")
    for p, q in zip(loaded.policy.parameters(), flat.policy.parameters()):
        assert torch.equal(p, q)
    # A2C's small matrices are where an unaligned layout changed the rounding
    a2c_runs = []
    for flatten in (False, True):  # the default [64, 64] nets; each model seeds torch's global generator
        a2c_runs.append(
            A2C(
                "MlpPolicy",
                "CartPole-v1",
                n_steps=5,
                seed=1,
                device="cpu",
                policy_kwargs=dict(optimizer_class=torch.optim.Adam),
            )
        )
        a2c_runs[-1].learn(2000, callback=SWACallback(start=0.5, flatten=flatten))
    for p, q in zip(a2c_runs[0].policy.parameters(), a2c_runs[1].policy.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("parts, has_actor, has_critic", [("actor", True, False), ("critic", False, True)])
def test_parts_selection(parts, has_actor, has_critic):
    model = ddpg()
    swa = SWACallback(start=0.5, parts=parts)
    swa.init_callback(model)
    names = swa.average.names
    assert any(n.startswith("actor.") for n in names) == has_actor
    assert any(n.startswith("critic.") for n in names) == has_critic


def test_a2c_shared_trunk_goes_with_either_part():
    model = a2c()
    actor = SWACallback(parts="actor")
    actor.init_callback(model)
    assert any(n.startswith("action_net") for n in actor.average.names)
    assert not any(n.startswith("value_net") for n in actor.average.names)
    shared = A2C("MlpPolicy", "CartPole-v1", device="cpu", policy_kwargs=dict(share_features_extractor=True))
    critic = SWACallback(parts="critic")
    critic.init_callback(shared)
    assert any(n.startswith("value_net") for n in critic.average.names)
    assert not any(n.startswith("action_net") for n in critic.average.names)


def test_cyclic_schedule_snapshots_at_cycle_ends():
    model = a2c()
    swa = SWACallback(start=0.5, swa_lr=1e-4, swa_lr_max=1e-3, cycle=4)
    lrs = []
    model.policy.optimizer.register_step_post_hook(lambda opt, a, k: lrs.append(opt.param_groups[0]["lr"]))
    model.learn(500, callback=swa)
    assert swa.average.n_averaged == 50 // 4
    swa_phase = lrs[-50:]
    assert swa_phase[3] == pytest.approx(1e-4) and swa_phase[4] == pytest.approx(1e-3 * 0.75 + 1e-4 * 0.25)


def test_each_evaluation_is_played_once_and_the_last_after_the_last_update():
    model = a2c()
    swa = SWACallback(start=0.5, eval_env="CartPole-v1", eval_freq=100, n_eval_episodes=1)
    played = []
    evaluation = swa.component(SWAEvaluation)
    evaluate = evaluation.evaluate
    evaluation.evaluate = lambda: played.append((model.num_timesteps, model._n_updates)) or evaluate()
    model.learn(300, callback=swa)
    assert [step for step, _ in played] == [100, 200, 300]  # not twice at 300
    assert played[-1][1] == 60  # the final weights: after the last of 60 updates
    assert [row["step"] for row in swa.evaluations] == [100, 200, 300]


def test_same_episodes_for_online_and_average():
    model = ddpg()
    # one snapshot, taken at the very last update: the average equals the live weights
    swa = SWACallback(start=299, eval_env="Pendulum-v1", eval_freq=300, n_eval_episodes=2)
    model.learn(300, callback=swa)
    row = swa.evaluations[-1]
    assert swa.average.n_averaged == 1
    assert row["swa_mean_reward"] == row["online_mean_reward"]
    assert row["distance"] == 0.0


def test_policy_save_load_and_apply_round_trip(tmp_path):
    model = a2c()
    swa = SWACallback(start=0.5)
    model.learn(300, callback=swa)
    obs = np.stack([model.get_env().observation_space.sample() for _ in range(64)])
    expected, _ = swa.policy.predict(obs, deterministic=True)
    path = swa.policy.save(tmp_path / "swa")
    assert path.name == "swa.safetensors"
    loaded = SWAPolicy.load(path)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], expected)
    assert loaded.metadata["algorithm"] == "A2C" and loaded.metadata["n_averaged"] == swa.average.n_averaged
    assert loaded.metadata["env_id"] == "CartPole-v1"
    single, _ = loaded.predict(obs[0], deterministic=True)
    assert single.shape == () and single == expected[0]
    swa.apply()
    model.save(tmp_path / "model.zip")
    reloaded = A2C.load(tmp_path / "model.zip", device="cpu")
    np.testing.assert_array_equal(reloaded.predict(obs, deterministic=True)[0], expected)


def test_apply_at_end_and_evaluate_policy(tmp_path):
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    model = a2c()
    swa = SWACallback(start=0.5, apply_at_end=True)
    model.learn(300, callback=swa)
    for name, p in model.policy.named_parameters():
        assert torch.equal(p, swa.average.averages[name])
    mean, _ = evaluate_policy(swa.policy, make_vec_env("CartPole-v1", n_envs=2, seed=0), n_eval_episodes=2, warn=False)
    assert mean > 0


def test_damaged_policy_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ValueError, match="bad.safetensors"):
        SWAPolicy.load(bad)
    model = a2c()
    model.save(tmp_path / "plain.zip")
    with pytest.raises(ValueError, match="not an SWAPolicy file"):
        SWAPolicy.load(tmp_path / "plain.zip")
    # garbage weights under a valid header: ValueError, not a torch or pickle error
    swa = SWACallback(start=0.5)
    model.learn(100, callback=swa)
    path = swa.policy.save(tmp_path / "ok")
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(path, "pt") as f:
        header = f.metadata()
    save_file({"nonsense": torch.zeros(3)}, tmp_path / "garbage.safetensors", metadata=header)
    with pytest.raises(ValueError, match="garbage.safetensors"):
        SWAPolicy.load(tmp_path / "garbage.safetensors")


def test_loading_a_policy_file_runs_no_stored_code(tmp_path):
    """A crafted header may name any class; only SB3, sb3-contrib, rl_swa and torch.nn/optim ones load."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    model = a2c()
    swa = SWACallback(start=0.5)
    model.learn(100, callback=swa)
    path = swa.policy.save(tmp_path / "ok")
    with safe_open(path, "pt") as f:
        header, state = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    marker = tmp_path / "pwned"
    crafted = {
        "policy_class": "os:system",
        "policy_kwargs": header["policy_kwargs"].replace("torch.nn.modules.activation:Tanh", "subprocess:Popen"),
    }
    for key, value in crafted.items():
        save_file(state, tmp_path / "evil.safetensors", metadata={**header, key: value})
        with pytest.raises(ValueError, match="not allowed"):
            SWAPolicy.load(tmp_path / "evil.safetensors")
    assert not marker.exists()
    # an explicit allow-list admits a user's own module
    from rl_swa.serialization import import_class

    with pytest.raises(ValueError, match="not allowed"):
        import_class("torch.nn.modules.activation:Tanh.__init__")  # allowed module, not a class
    with pytest.raises(ValueError, match="not allowed"):
        import_class("collections:OrderedDict", allow=["collections"])  # allowed module, not a torch class
    with pytest.raises(ValueError, match="not allowed"):
        import_class("tests.test_callback:Custom")
    assert import_class("tests.test_callback:Custom", allow=["tests"]).__qualname__ == "Custom"


class Custom(torch.nn.Module):
    """A user's own layer, loadable only when its module is allowed explicitly."""


def test_rl_zoo_style_yaml_callback():
    spec = yaml.safe_load("callback:\n  - rl_swa.SWACallback: {start: 0.75, swa_lr: 0.0003, mode: ema, decay: 0.99}\n")
    (entry,) = spec["callback"]
    ((path, kwargs),) = entry.items()
    module, name = path.rsplit(".", 1)
    callback = getattr(importlib.import_module(module), name)(**kwargs)
    assert isinstance(callback, SWACallback) and callback.start == 0.75 and callback.mode == "ema"


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"start": 1.5}, "start"),
        ({"start": -3}, "start"),
        ({"start": True}, "start"),
        ({"update_every": 0}, "update_every"),
        ({"mode": "mean"}, "mode"),
        ({"mode": "ema", "decay": 1.0}, "decay"),
        ({"parts": "trunk"}, "parts"),
        ({"swa_lr": 0}, "swa_lr"),
        ({"cycle": 4}, "swa_lr"),
        ({"cycle": 0, "swa_lr": 1e-4}, "cycle"),
        ({"swa_lr_max": 1e-3}, "swa_lr_max"),
        ({"anneal_strategy": "step"}, "anneal_strategy"),
        ({"eval_freq": 0}, "eval_freq"),
        ({"eval_env": 3}, "eval_env"),
        ({"flatten": "yes"}, "flatten"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"{field}="):
        SWACallback(**kwargs)


def test_unsupported_algorithm_lists_supported():
    from stable_baselines3.common.base_class import BaseAlgorithm

    class Custom(A2C):
        pass

    model = Custom("MlpPolicy", "CartPole-v1", device="cpu")  # a subclass of a supported one is supported
    model.learn(10, callback=SWACallback())

    class Mystery(BaseAlgorithm):  # any algorithm outside the table
        def __init__(self):
            self.policy = None

        def _setup_model(self):
            pass

        def learn(self, *args, **kwargs):
            pass

    from rl_swa.adapters import adapter_for

    with pytest.raises(ValueError, match="Mystery is not supported by rl_swa; supported: A2C, PPO, DDPG, TD3, SAC, DQN"):
        adapter_for(Mystery())


def test_dqn_averages_its_q_network_and_never_its_target(tmp_path):
    model = DQN(
        "MlpPolicy",
        "CartPole-v1",
        learning_starts=50,
        train_freq=1,
        target_update_interval=50,
        seed=0,
        device="cpu",
        policy_kwargs=dict(net_arch=[16]),
    )
    swa = SWACallback(start=0.5, eval_env="CartPole-v1", eval_freq=1000, n_eval_episodes=2)
    model.learn(400, callback=swa)
    assert set(swa.average.averages) == {n for n, _ in model.policy.named_parameters() if n.startswith("q_net.")}
    assert swa.average.n_averaged == 200  # one snapshot per gradient step from step 200
    row = swa.evaluations[-1]
    assert "swa_mean_reward" in row and "online_mean_reward" in row
    loaded = SWAPolicy.load(swa.policy.save(tmp_path / "dqn"))
    obs = np.stack([model.observation_space.sample() for _ in range(16)])
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], swa.policy.predict(obs, deterministic=True)[0])
    with torch.no_grad():  # greedy actions of the averaged Q-network
        q = torch.func.functional_call(
            model.policy.q_net, {k.removeprefix("q_net."): v for k, v in swa.average.averages.items()}, (torch.as_tensor(obs),)
        )
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], q.argmax(1).numpy())


def test_policy_before_any_snapshot_is_a_clear_error():
    swa = SWACallback()
    with pytest.raises(RuntimeError, match="no snapshot"):
        _ = swa.policy


def test_several_averages_equal_separate_runs_on_the_same_trajectory():
    many = SWACallback(start=0.75, update_every=2, averages=["swa@0.5", "ema@0.9@0", "swa@100"])
    a2c(seed=3).learn(600, callback=many)
    assert set(many.extra) == {"swa_0.5", "ema_0.9_from_0", "swa_100"}
    singles = {
        "swa_0.5": SWACallback(start=0.5, update_every=2),
        "ema_0.9_from_0": SWACallback(start=0, update_every=2, mode="ema", decay=0.9),
        "swa_100": SWACallback(start=100, update_every=2),
    }
    for name, single in singles.items():
        a2c(seed=3).learn(600, callback=single)  # averaging alone does not change the trajectory
        assert many.extra[name].n_averaged == single.average.n_averaged > 0
        for key, value in single.average.averages.items():
            assert torch.equal(many.extra[name].averages[key], value), (name, key)
    assert many.extra["swa_0.5"].n_averaged == 30  # 120 updates of 5 steps, 60 after step 300, every 2nd
    obs = np.zeros((1, 4), dtype=np.float32)
    assert many.policy_of("swa_100").predict(obs, deterministic=True)[0].shape == (1,)


def test_several_averages_are_evaluated_on_the_same_episodes():
    swa = SWACallback(start=299, averages=["swa@299"], eval_env="Pendulum-v1", eval_freq=300, n_eval_episodes=1)
    ddpg().learn(300, callback=swa)
    row = swa.evaluations[-1]
    # both averages hold the single last snapshot: the same policy, the same episodes, the same return
    assert row["swa_299_mean_reward"] == row["swa_mean_reward"] == row["online_mean_reward"]


@pytest.mark.parametrize(
    "spec",
    [
        "swa",
        "swa@1.5",
        "ema@2",
        "mean@0.5",
        "ema@0.9@x",
        ["swa@0.5", "swa@0.5"],
        "swa@0.5",
        [{"mode": "swa"}],
        [{"mode": "ema", "decay": 1.5}],
        [{"mode": "swa", "start": 0.5, "every": 2}],
    ],
)
def test_bad_average_specs(spec):
    with pytest.raises(ValueError, match=r"averages(\[0\](\.\w+)?)?="):
        SWACallback(averages=spec if isinstance(spec, list) or spec == "swa@0.5" else [spec])


def test_averages_as_structured_entries_or_short_strings_are_the_same():
    from rl_swa import Average

    short = SWACallback(averages=["swa@0.5", "ema@0.999@0"]).config
    structured = SWACallback(averages=[{"mode": "swa", "start": 0.5}, Average(mode="ema", decay=0.999, start=0)]).config
    assert short == structured and [a.name for a in short.averages] == ["swa_0.5", "ema_0.999_from_0"]


@pytest.mark.parametrize(
    "algo, env, kwargs",
    [
        ("PPO", "CartPole-v1", dict(n_steps=64, batch_size=32)),
        ("SAC", "Pendulum-v1", dict(learning_starts=50, batch_size=32)),
        ("TD3", "Pendulum-v1", dict(learning_starts=50, batch_size=32)),
        ("DQN", "CartPole-v1", dict(learning_starts=50, batch_size=32, target_update_interval=50)),
    ],
)
def test_other_algorithms_take_the_flat_path_and_train_bit_for_bit_the_same(tmp_path, algo, env, kwargs):
    import stable_baselines3

    runs = []
    for flatten in (False, True):
        model = getattr(stable_baselines3, algo)(
            "MlpPolicy", env, seed=0, device="cpu", policy_kwargs=dict(net_arch=[32, 32]), **kwargs
        )
        swa = SWACallback(start=0.5, flatten=flatten, eval_env=env, eval_freq=1000, n_eval_episodes=1)
        model.learn(300, callback=swa)
        assert {"online_mean_reward", "swa_mean_reward"} <= set(swa.evaluations[-1])
        runs.append((model, swa))
    (plain, plain_swa), (flat, flat_swa) = runs
    assert len(flat_swa.average._groups[0].pairs()[1]) == 1 < len(plain_swa.average._groups[0].pairs()[1])
    for p, q in zip(plain.policy.parameters(), flat.policy.parameters()):
        assert torch.equal(p, q)
    for name, value in plain_swa.average.averages.items():
        assert torch.equal(flat_swa.average.averages[name], value), name
    loaded = SWAPolicy.load(flat_swa.policy.save(tmp_path / algo))  # and the averaged policy round-trips
    obs = np.stack([flat.observation_space.sample() for _ in range(8)])
    np.testing.assert_array_equal(
        loaded.predict(obs, deterministic=True)[0], flat_swa.policy.predict(obs, deterministic=True)[0]
    )


def test_cnn_policy_with_a_shared_trunk_round_trips(tmp_path):
    """A2C's CnnPolicy holds its NatureCNN under three names; the file stores it once."""
    from stable_baselines3.common.envs import FakeImageEnv

    model = A2C("CnnPolicy", FakeImageEnv(screen_height=40, screen_width=40, n_channels=1), n_steps=5, seed=0, device="cpu")
    swa = SWACallback(start=0.5)
    model.learn(40, callback=swa)
    path = swa.policy.save(tmp_path / "cnn")
    loaded = SWAPolicy.load(path)
    expected, got = swa.policy.policy.state_dict(), loaded.policy.state_dict()
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)
    obs = np.stack([model.observation_space.sample() for _ in range(8)])
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], swa.policy.predict(obs, deterministic=True)[0])


NORMALIZED = [  # algorithm (SB3, else sb3-contrib), policy, env, kwargs, env steps
    ("A2C", "MlpPolicy", "CartPole-v1", dict(n_steps=5), 10_000),
    ("PPO", "MlpPolicy", "CartPole-v1", dict(n_steps=64, batch_size=64, n_epochs=1), 1024),
    ("DQN", "MlpPolicy", "CartPole-v1", dict(learning_starts=100, train_freq=1, target_update_interval=100), 600),
    ("DDPG", "MlpPolicy", "Pendulum-v1", dict(learning_starts=100, batch_size=32), 600),
    ("TD3", "MlpPolicy", "Pendulum-v1", dict(learning_starts=100, batch_size=32), 600),
    ("SAC", "MlpPolicy", "Pendulum-v1", dict(learning_starts=100, batch_size=32), 600),
    ("QRDQN", "MlpPolicy", "CartPole-v1", dict(learning_starts=100, train_freq=1, target_update_interval=100), 600),
    ("TQC", "MlpPolicy", "Pendulum-v1", dict(learning_starts=100, batch_size=32), 600),
    ("CrossQ", "MlpPolicy", "Pendulum-v1", dict(learning_starts=100, batch_size=32), 600),
    ("RecurrentPPO", "MlpLstmPolicy", "CartPole-v1", dict(n_steps=64, batch_size=64, n_epochs=1), 1024),
]


def algorithm(name):
    import stable_baselines3

    return getattr(stable_baselines3, name, None) or getattr(pytest.importorskip("sb3_contrib"), name)


@pytest.mark.parametrize("algo, policy, env_id, kwargs, steps", NORMALIZED, ids=[row[0] for row in NORMALIZED])
def test_normalized_observations_are_evaluated_and_saved_as_trained(tmp_path, algo, policy, env_id, kwargs, steps):
    """A VecNormalize training env: the callback evaluates with its statistics (as SB3's EvalCallback
    does), and the averaged policy takes raw observations, saved and loaded with them."""
    from copy import deepcopy

    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    def play(policy, env):
        env.seed(123)
        rewards, _ = evaluate_policy(
            policy, env, n_eval_episodes=3, deterministic=True, return_episode_rewards=True, warn=False
        )
        return float(np.mean(rewards))

    train_env = VecNormalize(make_vec_env(env_id, n_envs=4, seed=0), norm_reward=False)
    small = dict(net_arch=[16]) if algo != "A2C" else None
    model = algorithm(algo)(policy, train_env, seed=0, device="cpu", policy_kwargs=small, **kwargs)
    swa = SWACallback(start=0.5, eval_env=env_id, eval_freq=100_000, n_eval_episodes=3, eval_seed=123)
    model.learn(steps, callback=swa)
    row = swa.evaluations[-1]
    by_hand = VecNormalize(make_vec_env(env_id, n_envs=1), training=False, norm_reward=False)
    by_hand.obs_rms = deepcopy(train_env.obs_rms)
    assert row["online_mean_reward"] == play(model, by_hand)
    raw = make_vec_env(env_id, n_envs=1)
    assert play(swa.policy, raw) == row["swa_mean_reward"]
    loaded = SWAPolicy.load(swa.policy.save(tmp_path / "normalized"))
    assert play(loaded, raw) == row["swa_mean_reward"]
    np.testing.assert_array_equal(loaded.obs_normalizer.mean[None], train_env.obs_rms.mean)


ZOO = {  # RL Zoo name -> (our NORMALIZED row, hyperparameters in RL Zoo's YAML)
    "a2c": ("A2C", "n_envs: 4, n_timesteps: 4000"),
    "ppo": ("PPO", "n_envs: 4, n_timesteps: 1024, n_steps: 64, batch_size: 64, n_epochs: 1"),
    "dqn": ("DQN", "n_timesteps: 600, learning_starts: 100, train_freq: 1, target_update_interval: 100"),
    "ddpg": ("DDPG", "n_timesteps: 600, learning_starts: 100, batch_size: 32"),
    "td3": ("TD3", "n_timesteps: 600, learning_starts: 100, batch_size: 32"),
    "sac": ("SAC", "n_timesteps: 600, learning_starts: 100, batch_size: 32"),
    "qrdqn": ("QRDQN", "n_timesteps: 600, learning_starts: 100, train_freq: 1, target_update_interval: 100"),
    "tqc": ("TQC", "n_timesteps: 600, learning_starts: 100, batch_size: 32"),
    "crossq": ("CrossQ", "n_timesteps: 600, learning_starts: 100, batch_size: 32"),
    "ppo_lstm": ("RecurrentPPO", "n_envs: 4, n_timesteps: 1024, n_steps: 64, batch_size: 64, n_epochs: 1"),
}


def _zoo_setup(zoo_algo):
    algo, hyper = ZOO[zoo_algo]
    policy, env_id = next((row[1], row[2]) for row in NORMALIZED if row[0] == algo)
    callback = dict(start=0.5, eval_env=env_id, eval_freq=100_000, n_eval_episodes=2, verbose=1)
    conf = {
        **yaml.safe_load("{" + hyper + "}"),
        "policy": policy,
        "normalize": True,
        "policy_kwargs": "dict(net_arch=[16])",
        "callback": [{"rl_swa.SWACallback": callback}],
    }
    return algo, env_id, {env_id: conf}


@pytest.fixture(scope="module")
def zoo_runs(tmp_path_factory):
    """RL Zoo's train() for every algorithm of ZOO, in one process (its imports once): folder and stdout per algorithm."""
    import subprocess
    import sys

    pytest.importorskip("rl_zoo3")
    folder = tmp_path_factory.mktemp("zoo")
    runs = []
    for zoo_algo in ZOO:
        _, env_id, conf = _zoo_setup(zoo_algo)
        (folder / f"{zoo_algo}.yml").write_text(yaml.safe_dump(conf))
        runs.append([zoo_algo, env_id])
    code = (
        "import sys\nimport rl_zoo3.train as zoo\n"
        f"for algo, env in {runs!r}:\n"
        "    print(f'@@zoo@@ {algo}', flush=True)\n"
        "    sys.argv = ['train.py', '--algo', algo, '--env', env, '--conf-file', f'{algo}.yml', '-f', 'logs', '--seed', '0',"
        " '--eval-freq', '-1', '--num-threads', '1']\n"
        "    zoo.train()\n"
    )
    # ~2.5 min for the ten on 2 idle cores; the bound leaves room for a loaded machine
    proc = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs = dict(zip(ZOO, proc.stdout.split("@@zoo@@ ")[1:]))  # a marker RL Zoo never prints
    return folder, {name: out.split("\n", 1)[1] for name, out in outputs.items()}


@pytest.mark.parametrize("zoo_algo", list(ZOO))
def test_rl_zoo_train_with_normalize_and_the_callback_in_its_yaml(zoo_runs, zoo_algo):
    """RL Zoo's train.py, normalize: true, rl_swa.SWACallback by dotted path: the callback's online score
    is what the saved model scores with the saved VecNormalize statistics on the same episodes."""
    import re

    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    folder, stdout = zoo_runs
    algo, env_id, conf = _zoo_setup(zoo_algo)
    steps = conf[env_id]["n_timesteps"]
    line = [x for x in stdout[zoo_algo].splitlines() if x.startswith(f"[rl_swa] step {steps}")][-1]
    online = float(re.search(r"online ([-\d.]+)", line).group(1))
    run = folder / f"logs/{zoo_algo}/{env_id}_1"
    model = algorithm(algo).load(run / f"{env_id}.zip", device="cpu")  # our own file (SB3 zips unpickle)
    env = VecNormalize.load(str(run / f"{env_id}/vecnormalize.pkl"), make_vec_env(env_id, n_envs=1))
    env.training, env.norm_reward = False, False
    env.seed(0)  # SWACallback's default eval_seed
    rewards, _ = evaluate_policy(model, env, n_eval_episodes=2, deterministic=True, return_episode_rewards=True, warn=False)
    assert round(float(np.mean(rewards)), 2) == online


@pytest.mark.parametrize(
    "algo, policy, env, kwargs, expected",
    [
        (
            "QRDQN",
            "MlpPolicy",
            "CartPole-v1",
            dict(learning_starts=50, train_freq=1, target_update_interval=50),
            ("quantile_net.",),
        ),
        ("TQC", "MlpPolicy", "Pendulum-v1", dict(learning_starts=50, batch_size=32), ("actor.", "critic.")),
        ("CrossQ", "MlpPolicy", "Pendulum-v1", dict(learning_starts=50, batch_size=32), ("actor.", "critic.")),
        ("RecurrentPPO", "MlpLstmPolicy", "CartPole-v1", dict(n_steps=32, batch_size=32, n_epochs=1), ("",)),
    ],
)
def test_sb3_contrib_algorithms_average_evaluate_save_and_load(tmp_path, algo, policy, env, kwargs, expected):
    sb3_contrib = pytest.importorskip("sb3_contrib")
    model = getattr(sb3_contrib, algo)(policy, env, seed=0, device="cpu", policy_kwargs=dict(net_arch=[16]), **kwargs)
    swa = SWACallback(start=0.5, eval_env=env, eval_freq=1000, n_eval_episodes=2)
    model.learn(300, callback=swa)
    averaged = set(swa.average.averages)
    assert averaged and all(name.startswith(expected) for name in averaged)
    assert not any("target" in name for name in averaged)  # the algorithm's own copies are never averaged
    assert "swa_mean_reward" in swa.evaluations[-1]
    loaded = SWAPolicy.load(swa.policy.save(tmp_path / algo))
    obs = np.stack([model.observation_space.sample() for _ in range(4)])
    if algo == "RecurrentPPO":  # LSTM states go through predict
        a, state = swa.policy.predict(obs, deterministic=True)
        b, state_b = loaded.predict(obs, deterministic=True)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(
            swa.policy.predict(obs, state, np.zeros(4), deterministic=True)[0],
            loaded.predict(obs, state_b, np.zeros(4), deterministic=True)[0],
        )
    else:
        np.testing.assert_array_equal(
            loaded.predict(obs, deterministic=True)[0], swa.policy.predict(obs, deterministic=True)[0]
        )
    if algo == "CrossQ":  # BatchNorm statistics: the live network's, copied
        live = dict(model.policy.named_buffers())
        for name, buf in loaded.policy.named_buffers():
            assert torch.equal(buf, live[name]), name


def test_any_sb3_callback_runs_on_the_averaged_weights(tmp_path):
    """OnAverage(EvalCallback): it evaluates and saves the average; training goes on with the online weights."""
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList, EvalCallback

    from rl_swa import OnAverage

    seen = {}

    class Witness(BaseCallback):  # the weights at the step where EvalCallback evaluates
        def _on_step(self):
            if self.n_calls == 1000:
                seen["average"] = {k: v.clone() for k, v in swa.average.averages.items()}
                seen["online"] = {k: v.clone() for k, v in self.model.policy.named_parameters()}
            return True

    model = A2C("MlpPolicy", "CartPole-v1", n_steps=5, seed=0, device="cpu", policy_kwargs=dict(net_arch=[8]))
    swa = SWACallback(start=0.5)
    best = OnAverage(
        EvalCallback(make_vec_env_1(), n_eval_episodes=2, eval_freq=1000, best_model_save_path=str(tmp_path), verbose=0), swa
    )
    model.learn(1000, callback=CallbackList([swa, best, Witness()]))
    saved = A2C.load(tmp_path / "best_model.zip", device="cpu")  # our own file
    for name, param in saved.policy.named_parameters():
        assert torch.equal(param, seen["average"][name]), name
    assert any(not torch.equal(seen["online"][n], seen["average"][n]) for n in seen["average"])
    assert best.callback.best_mean_reward == best.callback.last_mean_reward > 0  # it evaluated (once: eval_freq 1000)


def test_sb3_video_recorder_records_the_averaged_policy(tmp_path):
    """SB3's VecVideoRecorder takes the averaged policy as it takes a model: the video is written and
    the recorded episode is the one the average plays without a recorder."""
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv, VecVideoRecorder

    pytest.importorskip("moviepy")
    model = a2c()
    swa = SWACallback(start=0.5)
    model.learn(500, callback=swa)

    def play(env):
        env.seed(7)
        obs, actions = env.reset(), []
        for _ in range(30):
            action, _ = swa.policy.predict(obs, deterministic=True)
            actions.append(int(action[0]))
            obs, *_ = env.step(action)
        env.close()
        return actions

    make = lambda: gym.make("CartPole-v1", render_mode="rgb_array")  # noqa: E731
    recorded = play(
        VecVideoRecorder(
            DummyVecEnv([make]),
            str(tmp_path),
            record_video_trigger=lambda step: step == 0,
            video_length=20,
            name_prefix="average",
        )
    )
    assert recorded == play(DummyVecEnv([make]))
    videos = list(tmp_path.glob("average*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 1000


def make_vec_env_1():
    from stable_baselines3.common.env_util import make_vec_env

    return make_vec_env("CartPole-v1", n_envs=1, seed=5)


def test_library_users_get_the_tensorboard_overlay(tmp_path):
    model = A2C("MlpPolicy", "CartPole-v1", n_steps=5, seed=0, device="cpu", tensorboard_log=str(tmp_path))
    model.learn(200, callback=SWACallback(start=0.5, eval_env="CartPole-v1", eval_freq=100, n_eval_episodes=1))
    blobs = b"".join(p.read_bytes() for p in tmp_path.rglob("events.out.tfevents.*"))
    assert b"SWA: did averaging help?" in blobs and b"eval/swa_mean_reward" in blobs


def test_tensorboard_shows_each_averages_margin_over_the_online_policy(tmp_path):
    """One chart per quantity (TensorBoard colours by run): each average's margin over the online policy
    is its own scalar, equal to the two rewards' difference at every evaluation."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rl_swa.overlay import HELPED, REWARDS, layout

    model = A2C("MlpPolicy", "CartPole-v1", n_steps=5, seed=0, device="cpu", tensorboard_log=str(tmp_path))
    swa = SWACallback(start=0.25, eval_env="CartPole-v1", eval_freq=100, n_eval_episodes=2, averages=["swa@0.5"])
    model.learn(400, callback=swa)
    events = EventAccumulator(str(next(tmp_path.rglob("events.out.tfevents.*")).parent))
    events.Reload()
    scalars = {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    for name in ("swa", "swa_0.5"):
        margins = scalars[f"eval/margin_{name}"]
        rewards = [r for r in swa.evaluations if f"{name}_mean_reward" in r]
        assert margins == pytest.approx([r[f"{name}_mean_reward"] - r["online_mean_reward"] for r in rewards])
    charts = layout(["swa", "swa_0.5"])
    assert list(charts) == [HELPED, REWARDS] and list(charts[HELPED]) == ["swa - online", "swa_0.5 - online"]
    assert all(len(tags) == 1 for _, tags in charts[HELPED].values())  # one quantity a chart


@pytest.mark.parametrize("algo, env", [("a2c", "CartPole-v1"), ("ddpg", "Pendulum-v1")])
def test_agreement_and_churn_are_logged_at_each_evaluation(algo, env):
    """Discrete: agreement = share of probe states with the same greedy action; continuous: mean action
    distance; churn: how far the online actions moved since the last evaluation (both checked by hand)."""
    from stable_baselines3 import DDPG

    if algo == "a2c":
        model = A2C("MlpPolicy", env, n_steps=5, seed=0, device="cpu")
    else:
        model = DDPG(
            "MlpPolicy", env, learning_starts=50, batch_size=32, seed=0, device="cpu", policy_kwargs=dict(net_arch=[16])
        )
    swa = SWACallback(start=0.25, eval_env=env, eval_freq=200, n_eval_episodes=1)
    model.learn(600, callback=swa)
    rows = swa.evaluations  # at steps 200 (probe not complete: 200 states), 400 (first measure), 600
    key = "agreement" if algo == "a2c" else "action_distance"
    assert [("churn" in r, key in r) for r in rows] == [(False, False), (False, True), (True, True)]
    states = swa.component(SWAEvaluation).probe.states
    assert len(states) == 256
    online = model.policy.predict(states, deterministic=True)[0]
    with swa.average.swapped():
        averaged = model.policy.predict(states, deterministic=True)[0]
    if algo == "a2c":
        assert rows[-1]["agreement"] == np.mean(online == averaged)
    else:
        assert rows[-1]["action_distance"] == pytest.approx(np.mean(np.linalg.norm(online - averaged, axis=1)))
    np.testing.assert_array_equal(swa.component(SWAEvaluation).probe.previous, online)


def test_names_replaced_by_swaconfig_say_what_replaced_them():
    with pytest.raises(ImportError, match="rl_swa.Average"):
        from rl_swa.callback import parse_average_spec  # noqa: F401
    from rl_swa import Average

    assert Average.model_validate("ema@0.999@0").name == "ema_0.999_from_0"


@pytest.mark.parametrize("make", [a2c, ddpg], ids=["a2c", "ddpg"])
def test_training_with_averaging_is_bit_for_bit_training_without(make):
    """Averaging, its NaN check and its evaluations only read the weights: the trajectory is unchanged."""
    plain = make()  # each model seeds torch's global generator: build, then train, one after the other
    plain.learn(400)
    env = "CartPole-v1" if isinstance(plain, A2C) else "Pendulum-v1"
    averaged = make()
    averaged.learn(
        400, callback=SWACallback(start=0.25, averages=["ema@0.99@0"], posthoc_points=2, eval_env=env, eval_freq=200)
    )
    for (name, p), q in zip(plain.policy.named_parameters(), averaged.policy.parameters()):
        assert torch.equal(p, q), name


def test_evaluation_keeps_the_best_online_policy_by_evalcallbacks_rule():
    """The best evaluated online weights are kept as SB3's EvalCallback keeps them (the first
    evaluation with the highest mean), with the weights of that evaluation, and survive a resume."""
    from stable_baselines3.common.evaluation import evaluate_policy

    from rl_swa.evaluation import SWAEvaluation

    model = A2C("MlpPolicy", "CartPole-v1", n_steps=8, seed=1, device="cpu", policy_kwargs=dict(net_arch=[16]))
    swa = SWACallback(start=0.5, eval_env="CartPole-v1", eval_freq=500, n_eval_episodes=3, eval_seed=7)
    model.learn(4000, callback=swa)
    evaluation = swa.component(SWAEvaluation)
    scores = [row["online_mean_reward"] for row in swa.evaluations]
    assert len(set(scores)) > 1  # the rule has something to choose from
    first_best = next(row for row in swa.evaluations if row["online_mean_reward"] == max(scores))
    assert (evaluation.best["step"], evaluation.best["mean_reward"]) == (first_best["step"], max(scores))
    best = evaluation.best_policy()
    env = make_vec_env("CartPole-v1", n_envs=1, seed=7)
    env.seed(7)
    replay, _ = evaluate_policy(best, env, n_eval_episodes=3, deterministic=True, return_episode_rewards=True, warn=False)
    assert np.mean(replay) == max(scores)  # the weights of that evaluation, not the final ones
    other = SWACallback(start=0.5, eval_env="CartPole-v1", eval_freq=500, n_eval_episodes=3, eval_seed=7)
    other.init_callback(model)
    other.load_state_dict(swa.state_dict())
    assert other.component(SWAEvaluation).best["step"] == evaluation.best["step"]


def test_save_then_load_with_the_same_argument(tmp_path):
    """SB3 users write model.save("x") then A2C.load("x"): the policy file round-trips the same way."""
    model = A2C("MlpPolicy", "CartPole-v1", n_steps=8, seed=0, device="cpu", policy_kwargs=dict(net_arch=[8]))
    swa = SWACallback(start=0.5)
    model.learn(200, callback=swa)
    written = swa.policy.save(tmp_path / "cartpole_swa")
    assert written == tmp_path / "cartpole_swa.safetensors"
    loaded = SWAPolicy.load(tmp_path / "cartpole_swa")
    obs = np.zeros((3, 4), dtype=np.float32)
    assert np.array_equal(loaded.predict(obs, deterministic=True)[0], swa.policy.predict(obs, deterministic=True)[0])
    with pytest.raises(ValueError, match=r"not \.zip; name it x\.safetensors"):
        swa.policy.save(tmp_path / "x.zip")
    assert not list(tmp_path.glob("x.zip*"))


@pytest.mark.parametrize(
    "net_arch, refusal",
    [
        ({"pi": [60000, 60000], "vf": [64, 64]}, "the header's policy holds"),  # 14.4 GB described, 1 KB stored
        (
            {"pi": [64, 64, 60000, 60000, 64], "vf": [64, 64]},
            "the header describes a policy of",
        ),  # layers absent from the file
    ],
)
def test_a_header_describing_a_larger_policy_than_its_tensors_is_refused_before_allocation(tmp_path, net_arch, refusal):
    import json
    import resource

    from safetensors import safe_open
    from safetensors.torch import save_file

    from rl_swa import EnsemblePolicy, SWAGPolicy

    model = A2C("MlpPolicy", "CartPole-v1", n_steps=8, seed=0, device="cpu")
    swa = SWACallback(start=0.5, swag_rank=2)
    model.learn(400, callback=swa)
    files = {"policy": swa.policy.save(tmp_path / "ok")}
    from rl_swa.swag import SWAGRecorder

    files["swag"] = swa.component(SWAGRecorder).policy().save(tmp_path / "swag")
    for kind, path in files.items():
        with safe_open(path, "pt") as f:
            header, state = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
        kwargs = json.loads(header["policy_kwargs"])
        kwargs["__dict__"]["net_arch"] = {"__dict__": net_arch}
        bomb = tmp_path / f"bomb_{kind}.safetensors"
        save_file(state, bomb, metadata={**header, "policy_kwargs": json.dumps(kwargs)})
        limit = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (8 * 2**30, limit[1]))  # an allocation of the described net fails loudly
        try:
            with pytest.raises(ValueError, match=f"bomb_{kind}.safetensors: {refusal}"):
                (SWAGPolicy if kind == "swag" else SWAPolicy).load(bomb)
            if kind == "policy":
                with pytest.raises(ValueError, match="bomb_policy"):
                    EnsemblePolicy.load([files["policy"], bomb])
        finally:
            resource.setrlimit(resource.RLIMIT_AS, limit)


def test_training_in_a_test_leaves_nothing_in_the_system_temp_folder():
    import tempfile
    from pathlib import Path

    before = set(Path(tempfile.gettempdir()).glob("SB3-*"))
    A2C("MlpPolicy", "CartPole-v1", n_steps=8, seed=0, device="cpu").learn(16)
    assert set(Path(tempfile.gettempdir()).glob("SB3-*")) == before
