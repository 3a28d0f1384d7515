"""Candidates from SB3 zips: a final model, a best model, checkpoints, and averages of the checkpoints.

SB3 users' folders hold ``model.save`` zips (the final model, ``EvalCallback``'s ``best_model.zip``,
``CheckpointCallback``'s ``rl_model_<N>_steps.zip``) and, with ``VecNormalize``, pickled statistics.
They are read with SB3's own loaders (``load_from_zip_file``, ``VecNormalize``'s pickle), as SB3
users read their own runs: the folder must be one the user trusts. One template model (the final
one, or the last checkpoint) is built; every other zip gives only its policy weights, which must
match the template's names and shapes (another algorithm or env is refused in one line).
"""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from stable_baselines3.common.save_util import load_from_zip_file

from rl_swa.adapters import select_tensors
from rl_swa.deploy import policy_with
from rl_swa.normalization import ObsNormalizer
from rl_swa.policy import SWAPolicy, copy_policy
from rl_swa.selection import Candidate

CHECKPOINT = re.compile(r"^rl_model_(\d+)_steps\.zip$")
EMA_HALF_LIVES = (1, 2, 4)  # in checkpoints: weight 2^(-age / h), age 0 for the last one


class SourceError(ValueError):
    """A folder that cannot be used: the message names the file and what was expected, on one line."""


def checkpoint_zips(folder: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every ``rl_model_<step>_steps.zip`` in ``folder``, by step."""
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT.match(p.name)) and p.is_file()]
    return sorted(found)


def checkpoint_stats(folder: Path, step: int) -> Path | None:
    """The ``VecNormalize`` statistics ``CheckpointCallback(save_vecnormalize=True)`` saved beside a checkpoint."""
    path = folder / f"rl_model_vecnormalize_{step}_steps.pkl"
    return path if path.is_file() else None


# Keys of an SB3 zip's ``data`` that tell the algorithm (read as JSON: nothing is unpickled for this).
def algo_of(path: Path) -> str | None:
    """The algorithm that wrote the zip ``path`` (a2c, ppo, ddpg, td3, sac, dqn), or None when its data do not say."""
    data = _data(path)
    keys = set(data)
    if {"n_epochs", "clip_range"} <= keys:
        return "ppo"
    if {"n_steps", "gae_lambda"} <= keys:
        return "a2c"
    if "exploration_fraction" in keys:
        return "dqn"
    if "target_entropy" in keys:
        return "sac"
    if "policy_delay" in keys:
        return "ddpg" if data.get("policy_delay") == 1 and data.get("target_noise_clip") == 0.0 else "td3"
    return None


def _data(path: Path) -> dict:
    try:
        with zipfile.ZipFile(path) as z:
            data = json.loads(z.read("data"))
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise SourceError(f"{path}: not an SB3 model zip ({_reason(exc)})") from None
    if not isinstance(data, dict):
        raise SourceError(f"{path}: not an SB3 model zip (its data is not a mapping)")
    return data


def _reason(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).replace("\n", " ")


def load_model(algo_class, path: Path):
    """The template model: SB3's ``load`` (a replay buffer of one transition: only the policy is used here)."""
    try:
        return algo_class.load(path, device="cpu", custom_objects={"buffer_size": 1})
    except Exception as exc:  # SB3 raises many kinds for a damaged or foreign zip
        raise SourceError(
            f"{path}: SB3 cannot load it as {algo_class.__name__} ({type(exc).__name__}: {_reason(exc)})"
        ) from None


def load_weights(path: Path, template: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The policy weights of the zip ``path``, checked against the template's names and shapes."""
    try:
        _, params, _ = load_from_zip_file(path, load_data=False, device="cpu")
    except Exception as exc:
        raise SourceError(f"{path}: SB3 cannot read it ({type(exc).__name__}: {_reason(exc)})") from None
    weights = (params or {}).get("policy")
    if not isinstance(weights, dict):
        raise SourceError(f"{path}: holds no policy weights")
    if weights.keys() != template.keys() or any(weights[k].shape != template[k].shape for k in template):
        raise SourceError(f"{path}: its policy does not match the folder's model (another algorithm, env or network?)")
    return weights


def finite(weights: dict[str, torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in weights.values() if t.is_floating_point())


def load_stats(path: Path | None) -> ObsNormalizer | None:
    """The observation normalization of a ``VecNormalize`` pickle (SB3's format), or None."""
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            norm = pickle.load(f)  # SB3's own format (VecNormalize.load reads it the same way)
    except Exception as exc:
        raise SourceError(f"{path}: not a VecNormalize statistics file ({type(exc).__name__}: {_reason(exc)})") from None
    normalizer = ObsNormalizer.from_env(norm) if hasattr(norm, "obs_rms") else None
    if normalizer is None and not hasattr(norm, "obs_rms"):
        raise SourceError(f"{path}: not a VecNormalize statistics file (a {type(norm).__name__})")
    return normalizer


@dataclass
class Saved:
    """One zip of the folder: its name in the table, step, file and the statistics it plays with."""

    name: str
    kind: str  # final | best | checkpoint
    path: Path
    step: int | None
    stats: Path | None
    stats_note: str  # "its own" | "final (nearest)" | "none" | ...
    info: dict = field(default_factory=dict)


def zip_candidates(
    model, saved: Sequence[Saved], checkpoints: Sequence[Saved], half_lives: Sequence[int] = EMA_HALF_LIVES
) -> tuple[list[Candidate], list[str]]:
    """Candidates, in the order of ``saved`` (the default first), then equal averages of the last k
    checkpoints (k = 2 .. all) and EMA-weighted averages of the checkpoints; and the notes of zips
    left out (NaN/Inf weights). Every zip is read here, before any episode is played, so that a
    damaged one fails at once. An average plays with the statistics of its last checkpoint; which
    tensors are averaged comes from the adapter table (targets and buffers are the last checkpoint's)."""
    template = model.policy.state_dict()
    averaged = set(select_tensors(model, "both"))
    base = SWAPolicy(copy_policy(model.policy), {"algorithm": type(model).__name__})
    weights = {s.path: load_weights(s.path, template) for s in {s.path: s for s in [*saved, *checkpoints]}.values()}
    for s in [*saved, *checkpoints]:
        load_stats(s.stats)  # a damaged statistics file fails now too
    left_out = [s for s in saved if not finite(weights[s.path])]
    notes = [f"{s.name} ({s.path.name}) left out: its weights hold NaN/Inf" for s in left_out]
    saved = [s for s in saved if s not in left_out]
    checkpoints = [s for s in checkpoints if finite(weights[s.path])]

    def built(s: Saved, state: dict, name: str) -> SWAPolicy:
        meta = {"weights": name, "num_timesteps": s.step, "statistics": s.stats_note}
        return policy_with(base, state, load_stats(s.stats), {k: v for k, v in meta.items() if v is not None})

    def mix(window: Sequence[Saved], w: Sequence[float]) -> dict:
        total = sum(w)
        out = dict(weights[window[-1].path])
        for name in averaged:
            out[name] = sum(wi / total * weights[s.path][name].double() for s, wi in zip(window, w)).to(template[name].dtype)
        return out

    out = [
        Candidate(
            s.name,
            s.kind,
            lambda s=s: built(s, weights[s.path], s.name),
            {**s.info, "step": s.step, "statistics": s.stats_note},
        )
        for s in saved
    ]
    for k in range(2, len(checkpoints) + 1):
        window, name = checkpoints[-k:], f"last {k} checkpoints"
        info = {"from_step": window[0].step, "to_step": window[-1].step, "statistics": window[-1].stats_note}
        out.append(
            Candidate(name, "checkpoint_average", lambda w=window, n=name: built(w[-1], mix(w, [1.0] * len(w)), n), info)
        )
    if len(checkpoints) >= 3:
        ages = range(len(checkpoints) - 1, -1, -1)
        for h in half_lives:
            name = f"checkpoint ema half-life {h}"
            info = {"half_life": h, "to_step": checkpoints[-1].step, "statistics": checkpoints[-1].stats_note}
            w = [2.0 ** (-a / h) for a in ages]
            out.append(
                Candidate(name, "checkpoint_ema", lambda w=w, n=name: built(checkpoints[-1], mix(checkpoints, w), n), info)
            )
    return out, notes
