"""The deployed policy: the library call after plain SB3 training, and `rl-swa select` on a run directory."""

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import A2C

from rl_swa import SWACallback, SWAPolicy
from rl_swa.deploy import ReusedEnvs, most_candidates, play_episodes, run_selection, select_policy
from rl_swa.selection import Candidate

ROOT = Path(__file__).resolve().parent.parent


class Heuristic:
    """CartPole: push towards the side the pole leans to (about 40 steps); ``bad``: always push left (about 9)."""

    def __init__(self, bad=False):
        self.bad = bad

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        action = np.zeros(len(obs), dtype=int) if self.bad else (obs[:, 2] > 0).astype(int)
        return action, None


def make(n, seed):
    from stable_baselines3.common.env_util import make_vec_env

    return make_vec_env("CartPole-v1", n_envs=n, seed=seed)


def test_a_clearly_better_candidate_replaces_the_default_and_a_worse_one_never_does():
    better = [Candidate("online", "online", lambda: Heuristic(bad=True)), Candidate("good", "average", Heuristic)]
    policy, result = run_selection(better, make, episodes=40)
    assert result["deployed"] == "good" and result["confirmation"]["better"] and isinstance(policy, Heuristic)
    worse = [Candidate("online", "online", Heuristic), Candidate("bad", "average", lambda: Heuristic(bad=True))]
    _, result = run_selection(worse, make, episodes=40)
    assert result["deployed"] == "online" and result["confirmation"] is None  # the race already drops it


def test_episodes_are_played_from_their_own_seeds():
    together = play_episodes(Heuristic(), make, [5, 6, 7])
    alone = [play_episodes(Heuristic(), make, [s])[0] for s in (5, 6, 7)]
    assert together == alone and len(set(together)) > 1
    with pytest.raises(ValueError, match="consecutive"):
        play_episodes(Heuristic(), make, [1, 3])


def test_sampled_actions_replay_the_same_on_the_same_episodes():
    """Stochastic evaluation (the Atari configs'): the same seeds give the same returns again, and the
    global torch generator is left as it was."""
    model = A2C("MlpPolicy", "CartPole-v1", seed=0, device="cpu", policy_kwargs=dict(net_arch=[8]))
    state = torch.get_rng_state()
    first = play_episodes(model.policy, make, [3, 4, 5, 6], deterministic=False)
    assert torch.equal(torch.get_rng_state(), state)
    torch.rand(5)  # whatever the caller draws in between
    assert play_episodes(model.policy, make, [3, 4, 5, 6], deterministic=False) == first


class Counted(gym.Wrapper):
    steps = 0

    def step(self, action):
        Counted.steps += 1
        return super().step(action)


def test_an_ended_episode_is_no_longer_stepped_and_the_returns_are_evaluate_policys():
    """Sampled actions (every row still draws) and greedy ones (every row still in the batched
    forward pass): the returns of SB3's evaluate_policy, which steps every env until the longest
    episode ends; here only the live ones are stepped."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    policy = A2C("MlpPolicy", "CartPole-v1", seed=0, device="cpu", policy_kwargs=dict(net_arch=[8])).policy
    seeds = list(range(20, 28))

    def counted(n, seed):
        return make_vec_env("CartPole-v1", n_envs=n, seed=seed, wrapper_class=Counted)

    for deterministic in (False, True):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seeds[0])
            Counted.steps = 0
            env = counted(len(seeds), seeds[0])
            expected, lengths = evaluate_policy(policy, env, len(seeds), deterministic, return_episode_rewards=True)
        assert Counted.steps > sum(lengths)  # the lengths differ: evaluate_policy steps ended episodes on
        Counted.steps = 0
        got = play_episodes(policy, counted, seeds, deterministic)
        assert sorted(got) == sorted(map(float, expected)) and Counted.steps == sum(lengths)


def _atari(n, seed):
    from agents.config import load_config
    from agents.envs import make_env

    return make_env(load_config(ROOT / "configs/atari/a2c.yaml"), "ALE/Breakout-v5", n, seed, training=False)


@pytest.mark.parametrize("env", ["cartpole", "atari"])
def test_reused_envs_play_the_episodes_of_new_ones(env):
    """A race reuses one VecEnv per batch size, reseeded: the same returns, with sampled actions,
    whatever was played on it before; one env made per batch size (one per play before)."""
    maker = make if env == "cartpole" else _atari
    kind = "MlpPolicy" if env == "cartpole" else "CnnPolicy"
    model = A2C(kind, maker(1, 0), seed=0, device="cpu", policy_kwargs=dict(net_arch=[8]) if env == "cartpole" else None)
    plays = [[3, 4, 5], [9], [3, 4, 5], [40], [60, 61, 62]]
    fresh = [play_episodes(model.policy, maker, seeds, deterministic=False) for seeds in plays]
    made = []

    def counted(n, seed):
        made.append(n)
        return maker(n, seed)

    with ReusedEnvs(counted) as envs:
        reused = [play_episodes(model.policy, envs, seeds, deterministic=False) for seeds in plays]
    assert reused == fresh and len({x for r in fresh for x in r}) > 1 and sorted(made) == [1, 3]


def test_select_policy_after_plain_sb3_training(tmp_path):
    model = A2C("MlpPolicy", "CartPole-v1", n_steps=8, seed=0, device="cpu", policy_kwargs=dict(net_arch=[16]))
    swa = SWACallback(
        start=0.5, eval_env="CartPole-v1", eval_freq=1000, n_eval_episodes=2, posthoc_points=3, averages=["swa@0.9"]
    )
    with pytest.raises(RuntimeError, match="train first"):
        select_policy(swa, "CartPole-v1", episodes=40)
    model.learn(3000, callback=swa)
    policy, table = select_policy(swa, "CartPole-v1", episodes=80)
    kinds = {row["kind"] for row in table}
    assert kinds == {"online", "best", "average", "online_point", "window", "ema"}
    assert len(table) == most_candidates(averages=1, posthoc_points=3, power=True)  # what a config is checked against
    assert table[0]["name"] == "online" and sum(row["decision"] == "deployed" for row in table) == 1
    assert policy.metadata["selection"]["episodes"] == sum(
        row["race_episodes"] + row.get("confirmation_episodes", 0) for row in table
    )
    SWAPolicy.load(policy.save(tmp_path / "deployed")).predict(np.zeros(4, dtype=np.float32))
    with pytest.raises(ValueError, match="episodes="):
        select_policy(swa, "CartPole-v1", episodes=3)


def test_select_command_writes_the_deployed_files_that_plain_sb3_loads(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=600)

    train = run(
        ROOT / "scripts/train.py",
        ROOT / "configs/classic/cartpole_a2c.yaml",
        "--budget",
        "smoke",
        "--out",
        tmp_path,
        "--no-progress",
        "--variant",
        "baseline",
        "--set",
        "swa.posthoc_points=3",
        "--set",
        "swa.averages=[swa@0.9]",
    )
    assert train.returncode == 0, train.stderr
    rundir = tmp_path / "classic_cartpole_a2c/CartPole-v1/baseline/seed0"
    too_few = run(ROOT / "scripts/select_policy.py", rundir, "--episodes", "40")
    assert too_few.returncode == 2 and "use episodes >= " in too_few.stderr and too_few.stderr.count("\n") == 1
    proc = run(ROOT / "scripts/select_policy.py", rundir, "--episodes", "80", "--test-episodes", "3")
    assert proc.returncode == 0, proc.stderr
    assert "\ndeployed: " in proc.stdout and "wrote " in proc.stdout
    selection = json.loads((rundir / "selection.json").read_text())
    assert {"online", "best evaluated", "swa", "swa_0.9"} <= {row["name"] for row in selection["candidates"]}
    assert {"deployed", "online", "best evaluated", "fixed-start average"} <= set(selection["test"]["means"])
    deployed = SWAPolicy.load(rundir / "deployed_policy.safetensors", device="cpu")
    assert deployed.metadata["deployed"] == selection["deployed"]
    model = A2C.load(rundir / "deployed_model.zip", device="cpu")
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    assert np.array_equal(model.predict(obs, deterministic=True)[0], deployed.predict(obs, deterministic=True)[0])
    for k, v in deployed.policy.state_dict().items():
        torch.testing.assert_close(model.policy.state_dict()[k], v, rtol=0, atol=0)
    for bad, field in ((["--episodes", "3"], "--episodes"), (["--level", "0.9"], "--level"), (["--rule", "bold"], "--rule")):
        proc = run(ROOT / "scripts/select_policy.py", rundir, *bad)
        assert proc.returncode == 2 and field in proc.stderr and "Traceback" not in proc.stderr
    staged = run(ROOT / "scripts/select_policy.py", rundir, "--episodes", "80", "--rule", "sequential")
    assert staged.returncode == 0, staged.stderr
    again = json.loads((rundir / "selection.json").read_text())
    assert again["rule"] == "sequential" and again["episodes"] <= 80
    c = again["confirmation"]
    assert c is None or (c["stages"] and c["stopped"] in ("better", "futility", "last stage") and c["pairs"] <= c["max_pairs"])
    # RL Zoo's enjoy.py plays it from its own folder layout (<folder>/<algo>/<env>_<id>/<env>.zip)
    zoo = tmp_path / "zoo" / "a2c" / "CartPole-v1_1"
    zoo.mkdir(parents=True)
    (zoo / "CartPole-v1.zip").write_bytes((rundir / "deployed_model.zip").read_bytes())
    enjoy = run(
        "-m",
        "rl_zoo3.enjoy",
        "--algo",
        "a2c",
        "--env",
        "CartPole-v1",
        "-f",
        tmp_path / "zoo",
        "--exp-id",
        "1",
        "--no-render",
        "-n",
        "300",
    )
    assert enjoy.returncode == 0 and "Episode Reward" in enjoy.stdout, enjoy.stderr[-2000:]
    # a stop at any moment: exit 3 in one line, the previous selection's files untouched
    import signal
    import time

    before = {p.name: p.read_bytes() for p in rundir.iterdir() if p.is_file()}
    slow = [
        sys.executable,
        str(ROOT / "scripts/select_policy.py"),
        str(rundir),
        "--episodes",
        "2000",
        "--test-episodes",
        "2000",
    ]
    proc = subprocess.Popen(slow, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(6)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3 and err.count("\n") == 1 and "Traceback" not in err, err
    assert {p.name: p.read_bytes() for p in rundir.iterdir() if p.is_file()} == before
    missing = run(ROOT / "scripts/select_policy.py", tmp_path)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def test_a_select_budget_too_small_for_the_candidates_is_refused_before_training(tmp_path):
    """Checked when the config is read (one line naming select.episodes, exit 2), not after a run has trained."""
    from agents.config import ConfigError, load_config

    config = str(ROOT / "configs/classic/cartpole_a2c.yaml")
    sets = ["swa.posthoc_points=4", "swa.averages=[swa@0.5]"]  # up to 20 candidates: the race needs 40 episodes
    assert load_config(config, [*sets, "select.episodes=78"]).select.episodes == 78  # the confirmation 38
    with pytest.raises(ConfigError, match=r"select\.episodes=77 is not allowed for 20 candidates.*use episodes >= 78"):
        load_config(config, [*sets, "select.episodes=77"])
    command = [sys.executable, str(ROOT / "scripts/compare.py"), config, "--budget", "smoke", "--out", str(tmp_path / "runs")]
    out = subprocess.run(
        [*command, *(a for s in [*sets, "select.episodes=77"] for a in ("--set", s))], capture_output=True, text=True
    )
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "select.episodes=77" in out.stderr
    assert not (tmp_path / "runs").exists()
    assert load_config(config, [*sets, "select.rule=sequential"]).select.rule == "sequential"
    with pytest.raises(ConfigError, match=r"select\.rule.*'fixed' or 'sequential'"):
        load_config(config, [*sets, "select.rule=bold"])
