"""A folder of SB3 ``CheckpointCallback`` zips (``rl_model_<N>_steps.zip``, with
``rl_model_vecnormalize_<N>_steps.pkl`` under ``save_vecnormalize=True``), optionally with the
``best_model.zip`` and ``evaluations.npz`` of an ``EvalCallback`` writing into the same folder.

The zips do not record the env: ``--env`` names it. Atari ids get SB3's ``make_atari_env`` with
the frame stack the policy's observation space shows; others ``make_vec_env``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from stable_baselines3.common.env_util import make_atari_env, make_vec_env
from stable_baselines3.common.vec_env import VecFrameStack

from rl_swa.sources import Source, action_mode, atari
from rl_swa.sources.algos import algo_class, check_env
from rl_swa.sources.zips import Saved, SourceError, algo_of, checkpoint_stats, checkpoint_zips, load_model, zip_candidates


def matches(path: Path) -> bool:
    return bool(checkpoint_zips(path))


def best_step(folder: Path) -> int | None:
    """The step of ``EvalCallback``'s best model: the first evaluation with the highest mean (it saves
    on a strictly better mean)."""
    npz = folder / "evaluations.npz"
    if not npz.is_file():
        return None
    try:
        with np.load(npz, allow_pickle=False) as data:
            steps, results = data["timesteps"], data["results"]
    except (OSError, KeyError, ValueError) as exc:
        raise SourceError(f"{npz}: not EvalCallback's evaluations ({exc})".replace("\n", " ")) from None
    return int(steps[int(np.argmax(results.mean(axis=1)))]) if len(steps) else None


def nearest(step: int | None, own: dict[int, Path]) -> tuple[Path | None, str]:
    """The statistics saved nearest to ``step`` (ties: the earlier), and how the table says it."""
    if not own:
        return None, "none"
    if step is None:
        last = max(own)
        return own[last], f"of step {last} (last; the step of this model is unknown)"
    s = min(own, key=lambda k: (abs(k - step), k))
    return own[s], "its own" if s == step else f"of step {s} (nearest)"


def open(path: Path, env: str | None, algo: str | None, default: str, deterministic: bool | None) -> Source:  # noqa: A001
    zips = checkpoint_zips(path)
    if env is None:
        raise SourceError(f"{path}: a folder of SB3 checkpoints records no env; pass --env ENV_ID")
    said = {algo_of(p) for _, p in zips} - {None}
    if len(said) > 1:
        raise SourceError(f"{path}: its checkpoints were written by different algorithms ({', '.join(sorted(said))})")
    if algo is None and not said:
        raise SourceError(f"{path}: its zips do not say which algorithm wrote them; pass --algo (e.g. a2c, ppo, td3)")
    if algo is not None and said and algo.lower() not in said:
        raise SourceError(f"--algo: {algo!r} but the zips in {path} were written by {said.pop()}")
    name = (algo or said.pop()).lower()
    cls = algo_class(name)
    own = {step: p for step, _ in zips if (p := checkpoint_stats(path, step)) is not None}
    if own and len(own) < len(zips):
        missing = [f"rl_model_vecnormalize_{s}_steps.pkl" for s, _ in zips if s not in own][:3]
        raise SourceError(f"{path}: statistics missing for some checkpoints ({', '.join(missing)}); all or none are needed")
    checkpoints = []
    for step, p in zips:
        stats, note = nearest(step, own)
        checkpoints.append(Saved(f"checkpoint {step}", "checkpoint", p, step, stats, note))
    saved = [
        Saved("last checkpoint", "final", checkpoints[-1].path, zips[-1][0], checkpoints[-1].stats, checkpoints[-1].stats_note)
    ]
    if (path / "best_model.zip").is_file():
        step = best_step(path)
        stats, note = nearest(step, own)
        saved.append(Saved("best model", "best", path / "best_model.zip", step, stats, note))
    elif default == "best":
        raise SourceError(f"--default best: {path} has no best_model.zip")
    if default == "best":
        saved = [saved[1], saved[0]]
    model = load_model(cls, checkpoints[-1].path)
    make = _env_maker(env, model.observation_space)
    check_env(make, model, env, checkpoints[-1].path)
    candidates, notes = zip_candidates(model, [*saved, *checkpoints[:-1]], checkpoints)
    found = f"{len(zips)} checkpoints" + (", best_model.zip" if len(saved) > 1 else "")
    found += ", statistics with each" if own else ", no VecNormalize statistics"
    return Source(
        "SB3 checkpoints",
        path,
        env,
        name,
        make,
        candidates,
        action_mode(env, deterministic),
        model_zip=checkpoints[-1].path if default == "final" else saved[0].path,
        algo_class=cls,
        stats={s.name: s.stats for s in [*saved, *checkpoints]},
        notes=notes,
        found=found,
    )


def _env_maker(env_id: str, observation_space):
    if not atari(env_id):
        return lambda n, seed: make_vec_env(env_id, n_envs=n, seed=seed)
    shape = observation_space.shape
    n_stack = shape[0] if shape[0] < shape[-1] else shape[-1]  # (stack, 84, 84) or (84, 84, stack)
    kwargs = {"frameskip": 1} if env_id.startswith("ALE/") else None  # ALE v5 skips frames itself; AtariWrapper does

    def make(n: int, seed: int):
        return VecFrameStack(make_atari_env(env_id, n_envs=n, seed=seed, env_kwargs=kwargs), n_stack=n_stack)

    return make
