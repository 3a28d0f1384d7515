"""How one snapshot enters an average: equal (SWA), exponential (EMA) and power-function EMA."""

from __future__ import annotations

import math

import torch
from torch import Tensor

MODES = ("swa", "ema", "power")


class _Rule:
    """How one snapshot enters the average; subclass to add a mode (e.g. SWAG moments)."""

    name = ""

    def host_weight(self, n_averaged: int) -> float:
        """Interpolation weight of the new snapshot given ``n_averaged`` earlier snapshots."""
        raise NotImplementedError

    def device_weight(self, n_averaged: Tensor) -> Tensor:
        """Same as :meth:`host_weight`, computed on the device from a device counter."""
        raise NotImplementedError

    def config(self) -> dict:
        return {}


class _EqualRule(_Rule):
    name = "swa"

    def host_weight(self, n_averaged: int) -> float:
        return 1.0 / (n_averaged + 1)

    def device_weight(self, n_averaged: Tensor) -> Tensor:
        return 1.0 / (n_averaged + 1)


class _EMARule(_Rule):
    name = "ema"

    def __init__(self, decay: float, warmup: bool, warmup_gamma: float = 1.0, warmup_power: float = 2 / 3):
        self.decay = decay
        self.warmup = warmup
        self.warmup_gamma = warmup_gamma
        self.warmup_power = warmup_power

    def _decay(self, n):
        if not self.warmup:
            return self.decay
        # timm's ModelEmaV3 warmup: a short memory at first, growing towards ``decay``.
        warm = 1.0 - (1.0 + n / self.warmup_gamma) ** (-self.warmup_power)
        return torch.clamp(warm, max=self.decay) if isinstance(warm, Tensor) else min(warm, self.decay)

    def host_weight(self, n_averaged: int) -> float:
        return 1.0 if n_averaged == 0 else 1.0 - self._decay(n_averaged)

    def device_weight(self, n_averaged: Tensor) -> Tensor:
        return torch.where(n_averaged == 0, torch.ones_like(n_averaged), 1.0 - self._decay(n_averaged))

    def config(self) -> dict:
        return {"decay": self.decay, "warmup": self.warmup}


class _PowerRule(_Rule):
    """Power-function EMA of Karras et al. (2024): ``beta_t = (1 - 1/t) ** (gamma + 1)`` at snapshot ``t``.

    The average weighs snapshot ``tau`` of ``t`` in proportion to ``tau ** gamma``: its profile
    keeps the same shape relative to the run's length, which is what lets post-hoc EMA
    synthesize other profiles from a few saved ones. ``gamma = 0`` is the equal average.
    """

    name = "power"

    def __init__(self, gamma: float):
        self.gamma = gamma

    def host_weight(self, n_averaged):  # the same arithmetic serves a host int and a device tensor
        return 1.0 - (1.0 - 1.0 / (n_averaged + 1)) ** (self.gamma + 1.0)

    device_weight = host_weight

    def config(self) -> dict:
        return {"gamma": self.gamma}


def check_decay(decay) -> float:
    """The one check of an EMA decay (the engine's and :class:`rl_swa.SWAConfig`'s)."""
    if isinstance(decay, bool) or not (isinstance(decay, (int, float)) and 0.0 < decay < 1.0):
        raise ValueError(f"decay={decay!r} is not allowed; it must be a float in (0, 1)")
    return float(decay)


def make_rule(mode: str, decay: float, warmup: bool, gamma: float | None = None) -> _Rule:
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not supported; allowed: {', '.join(MODES)}")
    if mode == "swa":
        return _EqualRule()
    if mode == "power":
        if isinstance(gamma, bool) or not (isinstance(gamma, (int, float)) and gamma >= 0 and math.isfinite(gamma)):
            raise ValueError(f"gamma={gamma!r} is not allowed; mode='power' needs a finite float >= 0")
        return _PowerRule(float(gamma))
    return _EMARule(check_decay(decay), bool(warmup))
