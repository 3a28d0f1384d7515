"""Plain-data encoding of an SB3 policy's constructor arguments, so a policy file loads without
unpickling anything: spaces as their parameters, classes as import paths from an allow-list.

Written by hand because neither gymnasium nor SB3 serializes spaces or constructor arguments
without pickle (SB3's zip stores them cloudpickled).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

# Classes a policy file may name: the policy, its layers, activations and optimizer; nothing else.
ALLOWED_MODULES = ("stable_baselines3.", "sb3_contrib.", "rl_swa.", "torch.nn.", "torch.optim.")
ALLOWED_KINDS = (torch.nn.Module, torch.optim.Optimizer)
MAX_SPACE_SIZE = 10**7  # elements of one Box: a frame stack of 84x84 images has 28,224; a header asking more is refused


def class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def import_class(path: str, allow: Iterable[str] = ()) -> type:
    """The class named ``module:qualname``, if its module is in ``ALLOWED_MODULES`` or ``allow`` and it
    is a torch module or optimizer (a policy, a layer, an activation, an optimizer)."""
    if not isinstance(path, str) or path.count(":") != 1:
        raise ValueError(f"class {path!r}: expected 'module:QualName'")
    module, qualname = path.split(":")
    allowed = (*ALLOWED_MODULES, *allow)
    if not any(module == a.rstrip(".") or module.startswith(a if a.endswith(".") else a + ".") for a in allowed):
        raise ValueError(
            f"class {path!r}: its module is not allowed (allowed: {', '.join(allowed)}; pass allow=[...] to add one)"
        )
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"class {path!r} cannot be imported ({exc})") from None
    if not (isinstance(obj, type) and issubclass(obj, ALLOWED_KINDS)):
        raise ValueError(f"{path!r} is not allowed: not a torch module or optimizer class")
    return obj


def _array(a: np.ndarray) -> Any:
    flat = np.unique(a)
    return flat[0].item() if flat.size == 1 else a.tolist()  # a constant bound (images: 0, 255) as one number


def encode(value: Any, where: str = "value") -> Any:
    """JSON-ready form of ``value``; a value with no plain form raises ``ValueError`` naming ``where``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, (list, tuple)):
        items = [encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else {"__tuple__": items}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ValueError(f"{where}: dict keys must be strings")
        return {"__dict__": {k: encode(v, f"{where}.{k}") for k, v in value.items()}}
    if isinstance(value, type):
        return {"__class__": class_path(value)}
    if isinstance(value, spaces.Space):
        return {"__space__": _encode_space(value, where)}
    raise ValueError(f"{where}: a {type(value).__name__} has no plain-data form")


def decode(obj: Any, allow: Iterable[str] = ()) -> Any:
    if isinstance(obj, list):
        return [decode(v, allow) for v in obj]
    if not isinstance(obj, dict):
        return obj
    ((tag, inner),) = obj.items() if len(obj) == 1 else (("", None),)
    if tag == "__tuple__":
        return tuple(decode(v, allow) for v in inner)
    if tag == "__dict__":
        return {k: decode(v, allow) for k, v in inner.items()}
    if tag == "__class__":
        return import_class(inner, allow)
    if tag == "__space__":
        return _decode_space(inner)
    raise ValueError(f"unknown encoded value {obj!r}")


def _encode_space(space: spaces.Space, where: str) -> dict:
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "low": _array(space.low),
            "high": _array(space.high),
            "shape": list(space.shape),
            "dtype": str(space.dtype),
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist(), "dtype": str(space.dtype)}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {k: _encode_space(s, f"{where}.{k}") for k, s in space.spaces.items()}}
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "spaces": [_encode_space(s, f"{where}[{i}]") for i, s in enumerate(space.spaces)]}
    raise ValueError(
        f"{where}: space {type(space).__name__} is not supported (Box, Discrete, MultiDiscrete, MultiBinary, Dict, Tuple)"
    )


def _decode_space(d: dict) -> spaces.Space:
    kind = d.get("type")
    if kind == "Box":
        shape = tuple(d["shape"])
        if not all(isinstance(n, int) and n >= 0 for n in shape) or math.prod(shape) > MAX_SPACE_SIZE:
            raise ValueError(f"Box shape {list(shape)} is not allowed: at most {MAX_SPACE_SIZE} elements")
        dtype = np.dtype(d["dtype"])
        return spaces.Box(
            np.broadcast_to(np.asarray(d["low"], dtype), shape),
            np.broadcast_to(np.asarray(d["high"], dtype), shape),
            shape,
            dtype,
        )
    if kind == "Discrete":
        return spaces.Discrete(d["n"], start=d["start"])
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(d["nvec"], dtype=d["dtype"])
    if kind == "MultiBinary":
        return spaces.MultiBinary(d["n"])
    if kind == "Dict":
        return spaces.Dict({k: _decode_space(v) for k, v in d["spaces"].items()})
    if kind == "Tuple":
        return spaces.Tuple([_decode_space(v) for v in d["spaces"]])
    raise ValueError(f"space type {kind!r} is not supported")
