"""SWAPolicy: an averaged SB3 policy that anyone can load and ``predict`` with."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.utils import get_device

from rl_swa.averaging import WeightAverage
from rl_swa.files import atomic_write
from rl_swa.normalization import PREFIX as NORM_PREFIX
from rl_swa.normalization import ObsNormalizer
from rl_swa.serialization import class_path, decode, encode, import_class

FORMAT = "rl-swa-policy"
FORMAT_VERSION = 2
SUFFIX = ".safetensors"
NOT_SAVED = ("lr_schedule",)  # training only: the loaded policy gets SB3's dummy schedule


class SWAPolicy:
    """An SB3 policy holding averaged weights, with SB3's ``predict`` and a one-file ``save``/``load``.

    The file is a ``.safetensors`` file: the weights, and in its header the policy class (an
    import path), its constructor arguments (spaces included) and metadata as JSON. Loading runs
    no stored code and needs ``rl_swa`` and SB3 only, not the environment or the training code.

    :param policy: the SB3 policy whose weights are the averages.
    :param metadata: plain data recorded with it (algorithm, env id, n_averaged, steps, ...).
    :param obs_normalizer: the observation normalization of a ``VecNormalize`` training env, applied
        by ``predict`` so that it takes raw observations (saved and loaded with the policy).
    """

    def __init__(
        self, policy: BasePolicy, metadata: dict[str, Any] | None = None, obs_normalizer: ObsNormalizer | None = None
    ):
        if not isinstance(policy, BasePolicy):
            raise ValueError(f"policy is a {type(policy).__name__}, not a stable_baselines3 BasePolicy")
        self.policy = policy
        self.policy.set_training_mode(False)
        self.metadata = dict(metadata or {})
        self.obs_normalizer = obs_normalizer

    @classmethod
    def from_model(cls, model: BaseAlgorithm, average: WeightAverage, metadata: dict[str, Any] | None = None) -> SWAPolicy:
        """A fresh copy of ``model.policy`` with ``average`` written into it (the model is left untouched).

        The copy is rebuilt from the policy's constructor arguments: ``deepcopy`` of a trained
        policy fails (it holds the last action distribution) and would copy the optimizer.
        """
        policy = copy_policy(model.policy)
        average.copy_to(policy)
        meta = {
            "algorithm": type(model).__name__,
            "num_timesteps": int(model.num_timesteps),
            "n_averaged": average.n_averaged,
            "mode": average.mode,
        }
        meta.update(metadata or {})
        return cls(policy, meta, ObsNormalizer.from_env(model.get_env()))

    # ------------------------------------------------------------------ acting
    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """SB3's ``predict`` on raw observations (single or vectorized; images scaled and, with an
        ``obs_normalizer``, observations normalized as in training)."""
        if self.obs_normalizer is not None:
            observation = self.obs_normalizer(observation)
        return self.policy.predict(observation, state, episode_start, deterministic)

    @property
    def device(self) -> torch.device:
        return self.policy.device

    @property
    def observation_space(self):
        return self.policy.observation_space

    @property
    def action_space(self):
        return self.policy.action_space

    def __repr__(self) -> str:
        return f"SWAPolicy({type(self.policy).__name__}, metadata={self.metadata})"

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write one ``.safetensors`` file, atomically: the weights, and in its header the policy class
        (import path), its constructor arguments (plain data) and the metadata, as JSON. Returns the path:
        ``path`` with ``.safetensors`` appended when it lacks it (``load`` takes the same argument back);
        another model format's suffix (``.zip``, ``.pt``, ...) is refused."""
        return write_policy_file(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str = "auto", allow: Iterable[str] = ()) -> SWAPolicy:
        """Load a file written by :meth:`save` (from the path given to ``save`` or the one it returned).
        Nothing is unpickled: the policy class must come from
        SB3, sb3-contrib, rl_swa (or a module named in ``allow``). A damaged or foreign file raises
        ``ValueError`` naming it."""
        policy, _, _ = read_policy_file(path, device, allow=allow)
        return policy


def copy_policy(live: BasePolicy) -> BasePolicy:
    """A fresh policy of ``live``'s class and weights, on its device. Rebuilt from its constructor
    arguments: ``deepcopy`` of a trained policy fails (it holds the last action distribution)."""
    policy = type(live)(**live._get_constructor_parameters()).to(live.device)
    policy.load_state_dict(live.state_dict())
    return policy


FOREIGN_SUFFIXES = (".zip", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".npz", ".json")


def policy_path(path: str | os.PathLike) -> Path:
    """Where :meth:`SWAPolicy.save` writes for ``path``: ``.safetensors`` appended when it lacks it
    (as SB3's ``save("x")`` writes ``x.zip``); another model format's suffix is refused."""
    path = Path(path)
    if path.suffix == SUFFIX:
        return path
    if path.suffix.lower() in FOREIGN_SUFFIXES:
        raise ValueError(f"{path}: an SWAPolicy file is a {SUFFIX} file, not {path.suffix}; name it {path.stem}{SUFFIX}")
    return path.with_name(path.name + SUFFIX)


def write_policy_file(
    swa_policy: SWAPolicy, path: str | os.PathLike, extra: dict[str, torch.Tensor] | None = None, header: dict | None = None
) -> Path:
    """The file of :meth:`SWAPolicy.save`, with ``extra`` tensors and ``header`` entries (e.g. SWAG's statistics)."""
    path = policy_path(path)
    policy = swa_policy.policy
    kwargs = {k: v for k, v in policy._get_constructor_parameters().items() if k not in NOT_SAVED}
    head = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "policy_class": class_path(type(policy)),
        "policy_kwargs": json.dumps(encode(kwargs, "policy_kwargs")),
        "metadata": json.dumps(encode(swa_policy.metadata, "metadata")),
        **(header or {}),
    }
    tensors = _unique_tensors(policy.state_dict())
    if swa_policy.obs_normalizer is not None:
        head["obs_normalizer"] = swa_policy.obs_normalizer.header()
        tensors.update(swa_policy.obs_normalizer.tensors())
    tensors.update({k: t.detach().to("cpu").contiguous() for k, t in (extra or {}).items()})
    atomic_write(path, save(tensors, metadata=head))
    return path


def read_policy_file(
    path: str | os.PathLike, device: torch.device | str = "auto", allow: Iterable[str] = (), prefix: str | None = None
) -> tuple[SWAPolicy, dict[str, str], dict[str, torch.Tensor]]:
    """(the policy, the file's header, the tensors whose names start with ``prefix``) of a policy file."""
    path = Path(path)
    if not path.is_file() and path.suffix != SUFFIX and path.with_name(path.name + SUFFIX).is_file():
        path = path.with_name(path.name + SUFFIX)  # what save(path) wrote
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such SWAPolicy file")
    try:
        with safe_open(path, "pt", device="cpu") as f:
            header = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for a damaged header or body
        why = f"{type(exc).__name__}: {exc}"
        raise ValueError(f"{path}: not an SWAPolicy file (rl-swa policies are {SUFFIX} files; {why})") from None
    if header.get("format") != FORMAT:
        raise ValueError(f"{path}: not an SWAPolicy file (format {header.get('format')!r}, expected {FORMAT!r})")
    if header.get("format_version") != str(FORMAT_VERSION):
        version = header.get("format_version")
        raise ValueError(f"{path}: SWAPolicy format version {version!r} is not supported (expected {FORMAT_VERSION})")
    if prefix is None and "swag" in header:
        raise ValueError(f"{path}: an SWAGPolicy file; load it with rl_swa.SWAGPolicy.load")
    extra = {k: v for k, v in state.items() if prefix and k.startswith(prefix)}
    state = {k: v for k, v in state.items() if k not in extra}
    try:
        policy_class = import_class(header["policy_class"], allow)
        if not issubclass(policy_class, BasePolicy):
            raise ValueError(f"{header['policy_class']} is not allowed: not an SB3 policy class")
        kwargs = decode(json.loads(header["policy_kwargs"]), allow)
        metadata = decode(json.loads(header["metadata"]))
        _check_fits(policy_class, kwargs, state, path)  # before any real allocation
        policy = policy_class(**kwargs, lr_schedule=BasePolicy._dummy_schedule)
        normalizer = None
        if "obs_normalizer" in header:
            normalizer = ObsNormalizer.from_file(header["obs_normalizer"], state)
            state = {k: v for k, v in state.items() if not k.startswith(NORM_PREFIX)}
        _load_unique_tensors(policy, state)
    except (ValueError, TypeError, RuntimeError, KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: {exc}".replace("\n", " ")) from None
    return SWAPolicy(policy.to(get_device(device)), metadata, normalizer), header, extra


def _check_fits(policy_class: type, kwargs: dict, state: dict[str, torch.Tensor], path: Path) -> None:
    """Build the policy the header describes on the ``meta`` device (no memory) and refuse the file
    unless its tensors hold that policy's weights: same shapes and dtypes, and no more parameters
    than the file could fill (a shared trunk may appear under a few names). A 1 KB file whose
    header asks for a 14 GB network is refused here, before anything is allocated."""
    # SB3 moves its sub-networks with Module.to(device) while it builds them: kept a no-op here, so
    # that every tensor stays on meta (a build takes milliseconds).
    with torch.device("meta"), mock.patch.object(torch.nn.Module, "to", lambda self, *a, **k: self):
        shape = policy_class(**kwargs, lr_schedule=BasePolicy._dummy_schedule).state_dict()
    weights = {k: v for k, v in state.items() if not k.startswith(NORM_PREFIX)}
    for name, t in weights.items():
        want = shape.get(name)
        if want is not None and (tuple(want.shape) != tuple(t.shape) or want.dtype != t.dtype):
            raise ValueError(
                f"the header's policy holds {name} as {tuple(want.shape)} {want.dtype}, the file {tuple(t.shape)} {t.dtype}"
            )
    described, stored = sum(t.numel() for t in shape.values()), sum(t.numel() for t in weights.values())
    if described > 4 * stored + 1024:
        raise ValueError(f"the header describes a policy of {described} weights, the file holds {stored}")


def _storage_key(t: torch.Tensor) -> tuple:
    return t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride())


def _unique_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each tensor once, under its first name: a policy may hold one module under several names
    (A2C's CnnPolicy shares its NatureCNN trunk), and safetensors stores no aliases."""
    seen: set[tuple] = set()
    unique = {}
    for name, t in state.items():
        if _storage_key(t) not in seen:
            seen.add(_storage_key(t))
            unique[name] = t.detach().to("cpu").contiguous()
    return unique


def _load_unique_tensors(policy: BasePolicy, state: dict[str, torch.Tensor]) -> None:
    """Load what :func:`_unique_tensors` kept; every name left out must be an alias of a loaded one."""
    missing, unexpected = policy.load_state_dict(state, strict=False)
    own = policy.state_dict()
    loaded = {_storage_key(own[k]) for k in state if k in own}
    stray = [k for k in missing if _storage_key(own[k]) not in loaded]
    if unexpected or stray:
        raise ValueError(f"policy weights do not fit the stored policy (missing {stray[:3]}, unexpected {unexpected[:3]})")
