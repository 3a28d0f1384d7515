"""SWA-phase learning-rate schedules that Stable-Baselines3 will not overwrite.

SB3 sets every optimizer's learning rate from ``model.lr_schedule(progress_remaining)`` at each
``train()`` call, so a torch LR scheduler (``SWALR``) does not stick. These schedules are plain
picklable objects with SB3's signature: they map ``progress_remaining`` (1 -> 0) to a learning
rate. Internally they work in whole env steps (``step = round((1 - progress_remaining) * total)``),
so they are pure functions of the training position and resume exactly.

This module imports neither torch nor SB3.
"""

from __future__ import annotations

import math
from collections.abc import Callable

ANNEAL_STRATEGIES = ("cos", "linear")


def check_steps(name: str, value, minimum: int = 0) -> int:
    """The one check of a step count (the schedules' and :class:`rl_swa.SWAConfig`'s)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r} is not allowed; it must be an int >= {minimum}")
    return value


def check_lr(name: str, value) -> float:
    """The one check of a learning rate (the schedules' and :class:`rl_swa.SWAConfig`'s)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}={value!r} is not allowed; it must be a positive finite float")
    return float(value)


class _PhasedSchedule:
    """Base: the user's schedule until ``start_step``, then an SWA-phase rule."""

    def __init__(self, base: Callable[[float], float], total_timesteps: int, start_step: int):
        if not callable(base):
            raise ValueError(f"base={base!r} is not allowed; it must be a callable progress_remaining -> lr")
        self.base = base
        self.total_timesteps = check_steps("total_timesteps", total_timesteps, 1)
        self.start_step = check_steps("start_step", start_step)

    def step_of(self, progress_remaining: float) -> int:
        return round((1.0 - progress_remaining) * self.total_timesteps)

    def progress_of(self, step: int) -> float:
        return 1.0 - step / self.total_timesteps

    def __call__(self, progress_remaining: float) -> float:
        step = self.step_of(progress_remaining)
        if step <= self.start_step:
            return float(self.base(progress_remaining))
        return self._swa_lr(step)

    def _swa_lr(self, step: int) -> float:
        raise NotImplementedError


class AnnealSchedule(_PhasedSchedule):
    """From ``start_step``, anneal from the base LR to ``swa_lr`` over ``anneal_steps`` (cos or linear), then hold.

    ``anneal_steps=0`` switches to ``swa_lr`` at once (the constant-LR SWA recipe).

    :param base: the user's schedule (SB3 signature), followed until ``start_step``.
    :param total_timesteps: the run's total env steps (SB3's ``_total_timesteps``).
    :param start_step: env step where the SWA phase starts.
    :param swa_lr: the learning rate held in the SWA phase.
    :param anneal_steps: env steps over which to move from the base LR to ``swa_lr``.
    :param strategy: ``"cos"`` or ``"linear"``.
    """

    def __init__(
        self, base, total_timesteps: int, start_step: int, swa_lr: float, anneal_steps: int = 0, strategy: str = "cos"
    ):
        super().__init__(base, total_timesteps, start_step)
        self.swa_lr = check_lr("swa_lr", swa_lr)
        self.anneal_steps = check_steps("anneal_steps", anneal_steps)
        if strategy not in ANNEAL_STRATEGIES:
            raise ValueError(f"strategy={strategy!r} is not supported; allowed: {', '.join(ANNEAL_STRATEGIES)}")
        self.strategy = strategy

    def _swa_lr(self, step: int) -> float:
        if self.anneal_steps == 0:
            return self.swa_lr
        alpha = min(1.0, (step - self.start_step) / self.anneal_steps)
        if self.strategy == "cos":
            alpha = (1.0 - math.cos(math.pi * alpha)) / 2.0
        lr_start = float(self.base(self.progress_of(self.start_step)))
        return lr_start + (self.swa_lr - lr_start) * alpha

    def __repr__(self) -> str:
        return (
            f"AnnealSchedule(start_step={self.start_step}, swa_lr={self.swa_lr}, "
            f"anneal_steps={self.anneal_steps}, strategy={self.strategy!r}, base={self.base!r})"
        )


class CyclicSchedule(_PhasedSchedule):
    """From ``start_step``, cycles of ``cycle`` updates, linear from ``lr_max`` down to ``lr_min`` in each.

    As in the SWA paper: update ``i`` (1-based, counted from the start of the SWA phase) gets
    ``lr = (1 - t) * lr_max + t * lr_min`` with ``t = ((i - 1) mod cycle + 1) / cycle``, so the
    last update of each cycle runs at ``lr_min`` and is where a snapshot is taken.

    :param steps_per_update: env steps between two consecutive ``train()`` calls (A2C:
        ``n_steps * n_envs``; off-policy: ``train_freq * n_envs``).
    """

    def __init__(
        self, base, total_timesteps: int, start_step: int, lr_max: float, lr_min: float, cycle: int, steps_per_update: int = 1
    ):
        super().__init__(base, total_timesteps, start_step)
        self.lr_max = check_lr("lr_max", lr_max)
        self.lr_min = check_lr("lr_min", lr_min)
        self.cycle = check_steps("cycle", cycle, 1)
        self.steps_per_update = check_steps("steps_per_update", steps_per_update, 1)

    def update_index(self, step: int) -> int:
        """1-based index of the SWA-phase update made at env step ``step``."""
        return -(-(step - self.start_step) // self.steps_per_update)

    def _swa_lr(self, step: int) -> float:
        t = ((self.update_index(step) - 1) % self.cycle + 1) / self.cycle
        return (1.0 - t) * self.lr_max + t * self.lr_min

    def __repr__(self) -> str:
        return (
            f"CyclicSchedule(start_step={self.start_step}, lr_max={self.lr_max}, lr_min={self.lr_min}, "
            f"cycle={self.cycle}, steps_per_update={self.steps_per_update}, base={self.base!r})"
        )


def unwrap(schedule: Callable[[float], float]) -> Callable[[float], float]:
    """The user's own schedule under any SWA-phase wrappers (so re-wrapping after a resume does not nest)."""
    while isinstance(schedule, _PhasedSchedule):
        schedule = schedule.base
    return schedule
