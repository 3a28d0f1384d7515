"""The deployed folder: one unit that SB3, RL Zoo and rl-swa each load their own way.

``deployed/`` holds ``model.zip`` (plain ``ALGO.load``), ``vecnormalize.pkl`` (the statistics the
deployed weights played with, when the run was normalized), ``policy.safetensors`` (loads without
running code: ``rl_swa.SWAPolicy.load``), ``results.json`` (the shape ``huggingface_sb3``'s
``package_to_hub`` writes), ``selection.json`` (what was tried and why this was chosen) and RL Zoo's
layout, so that its ``enjoy.py`` runs it::

    python -m rl_zoo3.enjoy --algo ALGO --env ENV -f RUN/deployed --exp-id 1

The folder is written in a temporary folder beside it and moved into place: a reader sees the old
folder or the new one, never a mix.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import yaml
from stable_baselines3.common.vec_env import VecNormalize

from rl_swa.policy import SWAPolicy
from rl_swa.sources import Source, atari
from rl_swa.sources.zips import SourceError

FOLDER = "deployed"


def zoo_command(source: Source, folder: Path) -> str:
    return f"python -m rl_zoo3.enjoy --algo {source.algo} --env {source.env_id} -f {folder} --exp-id 1"


def results(returns: list[float], deterministic: bool) -> dict:
    """``results.json`` as ``huggingface_sb3.package_to_hub`` writes it."""
    return {
        "mean_reward": float(np.mean(returns)),
        "std_reward": float(np.std(returns)),
        "is_deterministic": deterministic,
        "n_eval_episodes": len(returns),
        "eval_datetime": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def write(source: Source, policy: SWAPolicy, selection: dict, returns: list[float], out: Path | None = None) -> Path:
    """Write ``deployed/`` for ``policy`` (chosen from ``source``) as one unit; its path.

    :param returns: the episode returns ``results.json`` reports (the test episodes when played,
        else the deployed policy's confirmation or race episodes).
    """
    out = Path(out) if out is not None else source.path / FOLDER
    if source.model_zip is None or source.algo_class is None:
        raise SourceError(f"{source.path}: no SB3 model zip to write the deployed weights into")
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        _fill(tmp, source, policy, selection, returns)
        _swap(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _fill(tmp: Path, source: Source, policy: SWAPolicy, selection: dict, returns: list[float]) -> None:
    model = source.algo_class.load(source.model_zip, device="cpu")  # the user's own file, read as SB3 reads it
    model.policy.load_state_dict(policy.policy.state_dict())
    model.save(tmp / "model.zip")
    stats = _write_stats(source, policy, selection["deployed"], tmp / "vecnormalize.pkl")
    policy.save(tmp / "policy.safetensors")
    # plain writes: the folder is moved into place whole
    (tmp / "results.json").write_text(json.dumps(results(returns, source.deterministic), indent=1))
    (tmp / "selection.json").write_text(json.dumps(selection, indent=1, allow_nan=False))
    # RL Zoo's layout: <algo>/<env>_1/<env>.zip and <env>/{config.yml, args.yml, vecnormalize.pkl}
    run = tmp / source.algo / f"{source.env_id}_1"
    records = run / source.env_id
    records.mkdir(parents=True)
    os.link(tmp / "model.zip", run / f"{source.env_id}.zip")
    if stats is not None:
        os.link(tmp / "vecnormalize.pkl", records / "vecnormalize.pkl")
    config, args = _zoo_records(source, model, stats is not None)
    (records / "config.yml").write_text(yaml.safe_dump(config, sort_keys=True))
    (records / "args.yml").write_text(yaml.safe_dump(args, sort_keys=True))


def _write_stats(source: Source, policy: SWAPolicy, name: str, path: Path) -> Path | None:
    """``vecnormalize.pkl`` of the deployed weights: the folder's own file, else one made from the
    statistics the policy carries (an rl-swa policy); None when the run was not normalized."""
    own = source.stats.get(name)
    if own is not None:
        shutil.copyfile(own, path)
        return path
    norm = policy.obs_normalizer
    if norm is None:
        return None
    env = VecNormalize(source.make_env(1, 0), training=False, norm_reward=False, clip_obs=norm.clip_obs, epsilon=norm.epsilon)
    try:
        rms = env.obs_rms if isinstance(env.obs_rms, dict) else {None: env.obs_rms}
        for key, r in rms.items():
            r.mean, r.var = norm.mean[key].astype(np.float64), norm.var[key].astype(np.float64)
        env.save(str(path))  # SB3's own format, as VecNormalize.load reads it
    finally:
        env.close()
    return path


def _zoo_records(source: Source, model, normalized: bool) -> tuple[dict, dict]:
    """RL Zoo's config.yml and args.yml: the run's own (an RL Zoo source), else what enjoy.py needs."""
    if source.zoo is not None:
        config = dict(source.zoo["config"])
        args = {**source.zoo["args"], "algo": source.algo, "env": source.env_id}
        return config, args
    config = {"policy": type(model.policy).__name__, "normalize": normalized, "n_envs": 1}
    if atari(source.env_id):
        shape = model.observation_space.shape
        config |= {
            "env_wrapper": ["stable_baselines3.common.atari_wrappers.AtariWrapper"],
            "frame_stack": int(min(shape[0], shape[-1])),
        }
    env_kwargs = {"frameskip": 1} if atari(source.env_id) and source.env_id.startswith("ALE/") else None
    return config, {"algo": source.algo, "env": source.env_id, "env_kwargs": env_kwargs, "seed": 0}


def check_writable(out: Path) -> None:
    """Refuse, before any episode is played, a deployed folder that cannot be written as one unit."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise SourceError(f"{out}: exists and is not a folder (a link or a file); move it away")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise SourceError(f"{out.parent}: not writable; the deployed folder is written there")


def _swap(new: Path, out: Path) -> None:
    """Move ``new`` to ``out``; an old ``out`` is moved aside first and removed after."""
    old = None
    check_writable(out)
    if out.exists():
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-old-"))
        os.replace(out, old / out.name)
    os.replace(new, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
