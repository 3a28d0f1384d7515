"""An RL Zoo experiment folder (``logs/<algo>/<env>_<id>/``): ``<env>.zip`` (the final model),
``best_model.zip`` and ``evaluations.npz`` (``--eval-freq``), ``rl_model_<N>_steps.zip``
(``--save-freq``), ``<env>/config.yml``, ``<env>/args.yml`` and ``<env>/vecnormalize.pkl``.

The algorithm, env id, ``env_kwargs``, wrappers and frame stack come from ``args.yml`` and
``config.yml`` (read with a safe YAML loader: RL Zoo writes them as Python OrderedDicts, which
become plain mappings here; nothing is executed). RL Zoo keeps one set of normalization statistics,
the final one (its best-model save writes the same file and the final save wins), and none with
its checkpoints: every candidate plays with the final statistics, and the table says so.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack

from rl_swa.sources import Source, action_mode
from rl_swa.sources.algos import algo_class, check_env
from rl_swa.sources.checkpoints import best_step
from rl_swa.sources.zips import Saved, SourceError, checkpoint_zips, load_model, zip_candidates


class _ZooLoader(yaml.SafeLoader):
    """YAML's safe loader plus the one Python tag RL Zoo writes: an OrderedDict as a list of pairs."""


def _ordered_dict(loader: yaml.SafeLoader, node: yaml.Node) -> dict:
    (pairs,) = loader.construct_sequence(node, deep=True)
    return {k: v for k, v in pairs}


_ZooLoader.add_constructor("tag:yaml.org,2002:python/object/apply:collections.OrderedDict", _ordered_dict)


def _records(path: Path) -> Path | None:
    """The folder holding RL Zoo's ``config.yml`` and ``args.yml`` (``<env>/``, nested for ``ALE/...``)."""
    for config in sorted(path.glob("**/config.yml")):
        if config.relative_to(path).parts[0] == "deployed":  # select's own output, not the run's records
            continue
        if (config.parent / "args.yml").is_file():
            return config.parent
    return None


def matches(path: Path) -> bool:
    return _records(path) is not None


def read(path: Path) -> dict:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_ZooLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError, TypeError) as exc:
        raise SourceError(f"{path}: not RL Zoo's YAML ({exc})".replace("\n", " ")) from None
    if not isinstance(data, dict):
        raise SourceError(f"{path}: not RL Zoo's YAML (the top level is not a mapping)")
    return data


def open(path: Path, env: str | None, algo: str | None, default: str, deterministic: bool | None) -> Source:  # noqa: A001
    records = _records(path)
    config, args = read(records / "config.yml"), read(records / "args.yml")
    env_id, name = args.get("env"), args.get("algo")
    if not isinstance(env_id, str) or not isinstance(name, str):
        raise SourceError(f"{records / 'args.yml'}: names no env or algo (RL Zoo's args.yml has both)")
    if env is not None and env != env_id:
        raise SourceError(f"--env: {env!r} but {records / 'args.yml'} says the run trained on {env_id!r}")
    if algo is not None and algo.lower() != name.lower():
        raise SourceError(f"--algo: {algo!r} but {records / 'args.yml'} says the run used {name!r}")
    cls = algo_class(name)
    final = path / f"{records.relative_to(path)}.zip"
    if not final.is_file():
        raise SourceError(f"{path}: no final model {final.name} (an RL Zoo run that did not finish?)")
    stats = records / "vecnormalize.pkl"
    normalized = bool(config.get("normalize"))
    if normalized and not stats.is_file():
        raise SourceError(f"{records}: config.yml says normalize but there is no vecnormalize.pkl")
    stats_file = stats if normalized else None
    note = "final" if normalized else "none"
    saved = [Saved("final model", "final", final, None, stats_file, note)]
    if (path / "best_model.zip").is_file():
        best_note = "final (RL Zoo keeps no other; as enjoy.py --load-best)" if normalized else "none"
        saved.append(Saved("best model", "best", path / "best_model.zip", best_step(path), stats_file, best_note))
    elif default == "best":
        raise SourceError(f"--default best: {path} has no best_model.zip (train with --eval-freq)")
    if default == "best":
        saved = [saved[1], saved[0]]
    ckpt_note = "final (nearest: RL Zoo saves none with its checkpoints)" if normalized else "none"
    checkpoints = [Saved(f"checkpoint {s}", "checkpoint", p, s, stats_file, ckpt_note) for s, p in checkpoint_zips(path)]
    model = load_model(cls, final)
    make = _env_maker(env_id, config, args)
    check_env(make, model, env_id, final)
    candidates, notes = zip_candidates(model, [*saved, *checkpoints], checkpoints)
    found = "final model" + (", best_model.zip" if any(s.kind == "best" for s in saved) else "")
    found += f", {len(checkpoints)} checkpoints" + (", final VecNormalize statistics" if normalized else "")
    return Source(
        "RL Zoo experiment",
        path,
        env_id,
        name.lower(),
        make,
        candidates,
        action_mode(env_id, deterministic),
        model_zip=final,
        algo_class=cls,
        stats={s.name: s.stats for s in [*saved, *checkpoints]},
        notes=notes,
        found=found,
        zoo={"config": config, "args": args},
    )


def _env_maker(env_id: str, config: dict, args: dict):
    """RL Zoo's test env (``create_test_env``) without its VecNormalize: candidates normalize themselves."""
    wrapper = None
    if config.get("env_wrapper"):
        try:
            from rl_zoo3.utils import get_wrapper_class  # RL Zoo's own reading of env_wrapper
        except ImportError:
            raise SourceError("this RL Zoo run uses env_wrapper: install rl_zoo3 (pip install rl_zoo3)") from None
        wrapper = get_wrapper_class(dict(config))
    env_kwargs = args.get("env_kwargs") or {}
    n_stack = config.get("frame_stack")

    def make(n: int, seed: int):
        env = make_vec_env(env_id, n_envs=n, seed=seed, wrapper_class=wrapper, env_kwargs=env_kwargs, vec_env_cls=DummyVecEnv)
        return VecFrameStack(env, n_stack=int(n_stack)) if n_stack else env

    return make
