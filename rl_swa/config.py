"""``SWAConfig``: every SWA setting, typed and validated once (pydantic).

The callback, the experiment configs (``agents/config.py`` embeds it as the ``swa`` section) and
RL Zoo's YAML (plain keyword arguments) all go through this class; the parts that use the values
(schedules, the averaging engine) receive them already valid; where a value has a check of its own
there (a decay, a learning rate, a step count), the config calls that same check.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from rl_swa.posthoc import check_sigma_rels
from rl_swa.rules import check_decay
from rl_swa.schedules import check_lr, check_steps


def _no_bool(value):
    if isinstance(value, bool):
        raise ValueError("a number is needed, not a bool")
    return value


# A float (an int or "3e-4" converts) but never a bool; a position: an env step (int) or a fraction of the run (float).
Real = Annotated[float, BeforeValidator(_no_bool)]
Position = StrictInt | StrictFloat


def _position(value, allow_zero: bool):
    if isinstance(value, int):
        if value < 0:
            raise ValueError("an int must be an env step >= 0")
        return value
    if (value >= 0 if allow_zero else value > 0) and value < 1:
        return value
    interval = "[0, 1)" if allow_zero else "(0, 1)"
    raise ValueError(f"use a float in {interval} (fraction of the run) or an int >= 0 (env steps)")


def resolve_steps(value: int | float, total_timesteps: int) -> int:
    """A float in (0, 1) is a fraction of ``total_timesteps``; an int is an absolute env step."""
    return int(value) if isinstance(value, int) else int(round(float(value) * total_timesteps))


class Average(BaseModel):
    """One further average kept on the same trajectory: ``{mode, start, decay}``.

    ``mode="swa"``: the equal average from ``start`` (required); ``mode="ema"``: an EMA with
    ``decay``, from ``start`` (``None``: the callback's ``start``). ``start`` as for
    :class:`SWAConfig`. The name (``swa_0.5``, ``ema_0.999``, ``ema_0.999_from_0``) labels its
    evaluation columns and its policy. The strings ``"swa@START"`` and ``"ema@DECAY[@START]"`` are
    accepted as a short form.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["swa", "ema"]
    start: Position | None = None
    decay: Real = 0.999

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data):
        if not isinstance(data, str):
            return data
        allowed = "use 'swa@START' or 'ema@DECAY[@START]', e.g. 'swa@0.5', 'swa@20000', 'ema@0.999'"
        mode, *values = data.split("@")
        try:
            numbers = [int(v) if v.lstrip("-").isdigit() else float(v) for v in values]
        except ValueError:
            raise ValueError(f"{data!r}: {allowed}") from None
        if mode == "swa" and len(numbers) == 1:
            return {"mode": "swa", "start": numbers[0]}
        if mode == "ema" and len(numbers) in (1, 2):
            if not isinstance(numbers[0], float):
                raise ValueError(f"{data!r}: an EMA decay must be a float in (0, 1)")
            return {"mode": "ema", "decay": numbers[0], **({"start": numbers[1]} if len(numbers) == 2 else {})}
        raise ValueError(f"{data!r}: {allowed}")

    @field_validator("start")
    @classmethod
    def _start(cls, v, info: ValidationInfo):
        return v if v is None else _position(v, allow_zero=info.data.get("mode") == "ema")

    @field_validator("decay")
    @classmethod
    def _decay(cls, v):
        return check_decay(v)

    @model_validator(mode="after")
    def _needs_start(self):
        if self.mode == "swa" and self.start is None:
            raise ValueError("an equal average needs its start, e.g. {mode: swa, start: 0.5}")
        return self

    @property
    def name(self) -> str:
        if self.mode == "swa":
            return f"swa_{self.start}"
        return f"ema_{self.decay}" + ("" if self.start is None else f"_from_{self.start}")


class SWAConfig(BaseModel):
    """Every setting of :class:`rl_swa.SWACallback` but the evaluation's (see its docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: Position = Field(0.75, description="fraction of the run in (0, 1), or an env step")
    update_every: StrictInt = Field(1, ge=1, description="snapshot every N gradient updates")
    mode: Literal["swa", "ema"] = "swa"
    decay: Real = Field(0.999, description="EMA decay in (0, 1) (mode: ema)")
    ema_warmup: StrictBool = Field(False, description="ramp the EMA decay up as timm's ModelEmaV3")
    parts: Literal["both", "actor", "critic"] = "both"
    swa_lr: Real | None = Field(None, description="LR of the SWA phase (> 0); null leaves the LR alone")
    anneal: Position = Field(0.0, description="span from the LR at start to swa_lr: fraction of the run or env steps")
    anneal_strategy: Literal["cos", "linear"] = "cos"
    cycle: StrictInt | None = Field(None, description="cyclic SWA: updates per cycle, >= 1 (needs swa_lr)")
    swa_lr_max: Real | None = Field(None, description="top of each cycle, > 0 (default: the LR at start)")
    averages: list[Average] = Field(default_factory=list, description="further averages on the same trajectory")
    posthoc_points: StrictInt = Field(0, ge=0, description="saved states of a running equal average, for post-hoc windows")
    posthoc_sigma_rels: list[float] = Field(
        default_factory=lambda: [0.05, 0.10], description="power EMAs saved for post-hoc synthesis"
    )
    swag_rank: StrictInt = Field(0, ge=0, description="SWAG deviation columns kept (0: no SWAG; else >= 2, mode swa)")
    skip_nonfinite: StrictBool = Field(True, description="skip snapshots holding NaN/Inf")
    flatten: StrictBool = Field(False, description="opt-in: lay the averaged parameters out in one buffer")

    @field_validator("start")
    @classmethod
    def _start(cls, v):
        return _position(v, allow_zero=False)

    @field_validator("anneal")
    @classmethod
    def _anneal(cls, v):
        return _position(v, allow_zero=True)

    # the engine's and the schedules' own checks: one validator per value
    @field_validator("decay")
    @classmethod
    def _decay(cls, v):
        return check_decay(v)

    @field_validator("swa_lr", "swa_lr_max")
    @classmethod
    def _lr(cls, v, info: ValidationInfo):
        return None if v is None else check_lr(info.field_name, v)

    @field_validator("cycle")
    @classmethod
    def _cycle(cls, v):
        return None if v is None else check_steps("cycle", v, 1)

    @field_validator("posthoc_sigma_rels")
    @classmethod
    def _sigma_rels(cls, v):
        return check_sigma_rels("posthoc_sigma_rels", v)

    @model_validator(mode="after")
    def _together(self):
        if self.cycle is not None:
            if self.swa_lr is None:
                raise ValueError(
                    "swa_lr=None is not allowed with cycle set: a cyclic schedule needs swa_lr, the LR at each cycle's end"
                )
            if self.update_every not in (1, self.cycle):
                raise ValueError(
                    f"update_every={self.update_every} is not allowed with cycle={self.cycle}: "
                    "snapshots come at each cycle's end; leave it at 1"
                )
        elif self.swa_lr_max is not None:
            raise ValueError(f"swa_lr_max={self.swa_lr_max!r} is not allowed without cycle: it is the top of each cycle")
        if self.swag_rank == 1 or (self.swag_rank and self.mode != "swa"):
            why = "SWAG needs at least 2 columns" if self.swag_rank == 1 else f"SWAG is built on mode=swa, not {self.mode!r}"
            raise ValueError(f"swag_rank={self.swag_rank} is not allowed; {why} (0 turns it off)")
        names = [a.name for a in self.averages]
        if len(set(names)) != len(names) or {"swa", "online"} & set(names):
            raise ValueError(f"averages={names} is not allowed; the names must be distinct")
        return self

    @property
    def snapshot_every(self) -> int:
        """Updates between two snapshots (a cyclic schedule snapshots at each cycle's end)."""
        return self.cycle or self.update_every

    @classmethod
    def of(cls, owner: str = "SWACallback", **kwargs) -> SWAConfig:
        """Validate keyword arguments; a bad one raises one ``ValueError`` line naming it."""
        try:
            return cls(**kwargs)
        except ValidationError as exc:
            raise ValueError(f"{owner}: {first_error(exc)}") from None


def first_error(exc: ValidationError) -> str:
    """``field=value is not allowed; why`` for the first error of a pydantic validation."""
    err = exc.errors()[0]
    fields = {*SWAConfig.model_fields, *Average.model_fields}
    loc = [p for p in err["loc"] if isinstance(p, int) or p in fields]  # without pydantic's union-member tags
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"{field}=... is not allowed; unknown setting (allowed: {', '.join(SWAConfig.model_fields)})"
    leaf = str(loc[-1]) if loc else ""
    if field and msg.startswith(f"{leaf}="):  # a check that names its own field: give the full path
        return field + msg[len(leaf) :]
    if not field or "is not allowed" in msg:  # a check of several fields, or one that names its field
        return msg
    return f"{field}={err.get('input')!r} is not allowed; {msg}"
