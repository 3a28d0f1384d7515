"""`rl-swa select` on folders users already have: an RL Zoo experiment made by RL Zoo itself, a
folder of SB3 CheckpointCallback zips; the deployed folder; bad input in one line, folder unchanged."""

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.callbacks import CheckpointCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from rl_swa.select_folder import select_folder
from rl_swa.sources import SourceError, open_source
from rl_swa.sources.zips import load_stats

RL_SWA = [sys.executable, "-c", "import sys; from agents.cli import main; sys.argv[0] = 'rl-swa'; main()"]


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def _select(*args, timeout=300):
    return subprocess.run([*RL_SWA, "select", *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def zoo_run(tmp_path_factory) -> Path:
    """A2C on CartPole-v1 trained by RL Zoo itself (its hyperparameters), with checkpoints and evaluations."""
    pytest.importorskip("rl_zoo3")
    logs = tmp_path_factory.mktemp("zoo")
    cmd = [sys.executable, "-m", "rl_zoo3.train", "--algo", "a2c", "--env", "CartPole-v1", "-n", "4000", "--save-freq", "1000",
           "--eval-freq", "1000", "--eval-episodes", "3", "-f", str(logs), "--seed", "1", "--log-interval", "-1"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return logs / "a2c" / "CartPole-v1_1"


@pytest.fixture(scope="module")
def checkpoint_folder(tmp_path_factory) -> Path:
    """A normalized PPO run saved by SB3's CheckpointCallback with save_vecnormalize=True."""
    folder = tmp_path_factory.mktemp("ckpt") / "checkpoints"
    env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=2, seed=0))
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=1, seed=0, policy_kwargs={"net_arch": [16]})
    model.learn(768, callback=CheckpointCallback(64, str(folder), save_vecnormalize=True))  # every 128 steps
    return folder


def test_zoo_folder_is_read_from_its_own_records(zoo_run):
    source = open_source(zoo_run)
    assert (source.kind, source.algo, source.env_id, source.deterministic) == ("RL Zoo experiment", "a2c", "CartPole-v1", True)
    names = [c.name for c in source.candidates]
    assert names[:2] == ["final model", "best model"]
    assert {"checkpoint 1000", "checkpoint 4000", "last 4 checkpoints", "checkpoint ema half-life 2"} <= set(names)
    assert open_source(zoo_run, default="best").candidates[0].name == "best model"


def test_the_deployed_folder_is_never_taken_for_the_runs_records(tmp_path):
    """select's own deployed/ holds RL Zoo's layout too; "deployed" sorts before "parking-v0"."""
    from rl_swa.sources import zoo

    for records in (tmp_path / "parking-v0", tmp_path / "deployed/a2c/parking-v0_1/parking-v0"):
        records.mkdir(parents=True)
        (records / "config.yml").write_text("policy: MlpPolicy\n")
        (records / "args.yml").write_text("algo: a2c\nenv: parking-v0\n")
    assert zoo._records(tmp_path) == tmp_path / "parking-v0"


def test_select_on_a_zoo_folder_writes_a_deployed_folder_enjoy_runs(zoo_run):
    before = _snapshot(zoo_run)
    done = _select(zoo_run, "--episodes", "60", "--test-episodes", "5")
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert out[0].startswith("RL Zoo experiment (A2C on CartPole-v1, deterministic actions)") and "candidates" in out[0]
    deployed = zoo_run / "deployed"
    after = _snapshot(zoo_run)
    assert {k: v for k, v in after.items() if not k.startswith("deployed/")} == before  # nothing else changed
    results = json.loads((deployed / "results.json").read_text())
    assert set(results) == {"mean_reward", "std_reward", "is_deterministic", "n_eval_episodes", "eval_datetime"}
    assert results["n_eval_episodes"] == 5 and results["is_deterministic"] is True
    selection = json.loads((deployed / "selection.json").read_text())
    model = A2C.load(deployed / "model.zip")
    chosen = selection["deployed"]
    from rl_swa import SWAPolicy

    policy = SWAPolicy.load(deployed / "policy.safetensors")
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    assert np.array_equal(model.predict(obs, deterministic=True)[0], policy.predict(obs, deterministic=True)[0]), chosen
    enjoy = subprocess.run(
        [
            sys.executable,
            "-m",
            "rl_zoo3.enjoy",
            "--algo",
            "a2c",
            "--env",
            "CartPole-v1",
            "-f",
            str(deployed),
            "--exp-id",
            "1",
            "--no-render",
            "-n",
            "200",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert enjoy.returncode == 0 and "Episode Reward" in enjoy.stdout, enjoy.stderr[-2000:]


def test_checkpoint_folder_candidates_play_with_their_own_statistics(checkpoint_folder):
    source = open_source(checkpoint_folder, env="Pendulum-v1")
    assert (source.algo, source.kind) == ("ppo", "SB3 checkpoints")
    by_name = {c.name: c for c in source.candidates}
    assert source.candidates[0].name == "last checkpoint" and source.candidates[0].info["step"] == 768
    early = by_name["checkpoint 256"].make()
    own = load_stats(checkpoint_folder / "rl_model_vecnormalize_256_steps.pkl")
    assert np.array_equal(early.obs_normalizer.mean[None], own.mean[None])
    last = load_stats(checkpoint_folder / "rl_model_vecnormalize_768_steps.pkl")
    assert not np.array_equal(own.mean[None], last.mean[None])  # each checkpoint has its own
    # an equal average of the last 3 checkpoints: the mean of their actor and critic weights, the last one's statistics
    avg = by_name["last 3 checkpoints"].make()
    states = [PPO.load(checkpoint_folder / f"rl_model_{s}_steps.zip").policy.state_dict() for s in (512, 640, 768)]
    key = "mlp_extractor.policy_net.0.weight"
    assert torch.allclose(avg.policy.state_dict()[key], sum(s[key] for s in states) / 3, atol=1e-6)
    assert np.array_equal(avg.obs_normalizer.mean[None], last.mean[None])


def test_select_on_a_checkpoint_folder_deploys_with_the_statistics_of_its_weights(checkpoint_folder, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(checkpoint_folder, folder)
    policy, selection = select_folder(folder, episodes=60, env="Pendulum-v1")
    deployed = folder / "deployed"
    stats = VecNormalize.load(str(deployed / "vecnormalize.pkl"), make_vec_env("Pendulum-v1"))
    assert np.array_equal(stats.obs_rms.mean, policy.obs_normalizer.mean[None])
    assert selection["source"]["kind"] == "SB3 checkpoints" and (deployed / "ppo/Pendulum-v1_1/Pendulum-v1.zip").is_file()


def test_a_failed_write_leaves_the_old_deployed_folder_whole(checkpoint_folder, tmp_path, monkeypatch):
    from rl_swa.sources import deployed

    folder = tmp_path / "run"
    shutil.copytree(checkpoint_folder, folder)
    select_folder(folder, episodes=60, env="Pendulum-v1")
    before = _snapshot(folder)

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(deployed, "_zoo_records", broken)
    with pytest.raises(OSError):
        select_folder(folder, episodes=60, env="Pendulum-v1")
    assert _snapshot(folder) == before and [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


def _bad(folder: Path, *args) -> str:
    before = _snapshot(folder)
    done = _select(folder, "--episodes", "60", *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert _snapshot(folder) == before and not (folder / "deployed").exists()
    return lines[0]


def test_bad_folders_get_one_line_and_stay_unchanged(checkpoint_folder, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    assert "no known layout" in _bad(empty)
    folder = tmp_path / "run"
    shutil.copytree(checkpoint_folder, folder)
    assert "--env" in _bad(folder)  # a bare checkpoint folder records no env
    assert "CartPole-v1" in _bad(folder, "--env", "CartPole-v1")  # not the model's spaces
    # a checkpoint of another algorithm in the folder
    other = A2C("MlpPolicy", "Pendulum-v1", n_steps=8, policy_kwargs={"net_arch": [16]})
    other.save(folder / "rl_model_896_steps.zip")
    assert "different algorithms" in _bad(folder, "--env", "Pendulum-v1")
    (folder / "rl_model_896_steps.zip").unlink()
    # a checkpoint of the same algorithm on another env (other spaces, so another network)
    PPO("MlpPolicy", "CartPole-v1", n_steps=64, policy_kwargs={"net_arch": [16]}).save(folder / "rl_model_200_steps.zip")
    shutil.copy(folder / "rl_model_vecnormalize_256_steps.pkl", folder / "rl_model_vecnormalize_200_steps.pkl")
    assert "rl_model_200_steps.zip: its policy does not match" in _bad(folder, "--env", "Pendulum-v1")
    (folder / "rl_model_200_steps.zip").unlink()
    (folder / "rl_model_vecnormalize_200_steps.pkl").unlink()
    # a damaged checkpoint: named, with the problem
    (folder / "rl_model_384_steps.zip").write_bytes(b"PK\x03\x04 not a zip")
    assert "rl_model_384_steps.zip" in _bad(folder, "--env", "Pendulum-v1")
    shutil.copy(checkpoint_folder / "rl_model_384_steps.zip", folder / "rl_model_384_steps.zip")
    # statistics missing for one checkpoint
    (folder / "rl_model_vecnormalize_512_steps.pkl").unlink()
    assert "rl_model_vecnormalize_512_steps.pkl" in _bad(folder, "--env", "Pendulum-v1")


def test_zoo_folder_bad_records(zoo_run, tmp_path):
    folder = tmp_path / "CartPole-v1_1"
    shutil.copytree(zoo_run, folder, ignore=shutil.ignore_patterns("deployed"))
    assert "CartPole-v1" in _bad(folder, "--env", "Pendulum-v1")  # the folder says which env
    config = (folder / "CartPole-v1/config.yml").read_text()
    (folder / "CartPole-v1/config.yml").write_text("normalize: true\nn_envs: 8\npolicy: MlpPolicy\n")
    assert "no vecnormalize.pkl" in _bad(folder)  # statistics the records promise are missing
    (folder / "CartPole-v1/config.yml").write_text(config)
    (folder / "CartPole-v1/args.yml").write_text("!!python/object/apply:os.system ['touch pwned']\n")
    assert "args.yml" in _bad(folder)  # read safely: no code runs
    assert not Path("pwned").exists()


def test_nan_checkpoint_is_left_out_with_a_note(checkpoint_folder, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(checkpoint_folder, folder)
    model = PPO.load(folder / "rl_model_256_steps.zip")
    with torch.no_grad():
        next(model.policy.parameters()).fill_(float("nan"))
    model.save(folder / "rl_model_256_steps.zip")
    source = open_source(folder, env="Pendulum-v1")
    assert "checkpoint 256" not in [c.name for c in source.candidates]
    assert any("checkpoint 256" in n and "NaN" in n for n in source.notes)
    with zipfile.ZipFile(folder / "rl_model_256_steps.zip") as z:
        assert "policy.pth" in z.namelist()
    with pytest.raises(SourceError, match="--default best"):
        open_source(folder, env="Pendulum-v1", default="best")


def test_select_refuses_a_folder_in_use_and_releases_its_lock(zoo_run, tmp_path):
    from agents.runner import locked

    folder = tmp_path / "CartPole-v1_1"
    shutil.copytree(zoo_run, folder, ignore=shutil.ignore_patterns("deployed"))
    with locked(folder.resolve()):  # as a training run (train --overwrite) or another select holds it
        assert "in use by process" in _bad(folder)
    done = _select(folder, "--episodes", "60")
    assert done.returncode == 0, done.stderr
    assert not list(tmp_path.glob(".*.lock"))  # released and removed


def test_deployed_folder_is_replaced_whole_and_never_follows_links(checkpoint_folder, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(checkpoint_folder, folder)
    outside = tmp_path / "outside"
    outside.mkdir()
    (folder / "deployed").symlink_to(outside, target_is_directory=True)
    with pytest.raises(SourceError, match="not a folder"):
        select_folder(folder, episodes=60, env="Pendulum-v1")
    assert list(outside.iterdir()) == []  # nothing written through the link
    (folder / "deployed").unlink()
    select_folder(folder, episodes=60, env="Pendulum-v1")
    (folder / "deployed" / "stale.txt").write_text("from an older select")
    select_folder(folder, episodes=60, env="Pendulum-v1", seed=1)
    assert not (folder / "deployed" / "stale.txt").exists()  # the new folder replaced the old one whole
