"""Experiment configs: plain YAML validated into typed objects (pydantic).

A config names one algorithm, a list of envs, SB3 hyperparameters, named budgets (``smoke``,
``short``, ``paper``), the SWA settings and the evaluation protocol. Any field can be overridden
with ``key.sub=value`` strings (values parsed as YAML).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A bad config: the message names the field and the problem, on one line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Budget(_Strict):
    timesteps: int = Field(gt=0, description="env steps of one run")
    eval_freq: int = Field(gt=0, description="evaluate every this many env steps")
    eval_episodes: int = Field(gt=0, description="episodes per evaluation")
    hyperparams: dict[str, Any] = Field(default_factory=dict, description="overrides of the config's hyperparams")
    checkpoint_every: int | None = Field(None, gt=0, description="env steps between checkpoints (default max(eval_freq, timesteps/10))")


class Resources(_Strict):
    cpus: float = Field(1, gt=0, description="CPUs per run (Ray backend)")
    gpus: float = Field(0, ge=0, description="GPUs per run (Ray backend), fractions allowed")


class SWASettings(_Strict):
    start: float | int = Field(0.75, description="fraction of the run in (0, 1), or an env step")
    update_every: int = Field(1, ge=1)
    mode: Literal["swa", "ema"] = "swa"
    decay: float = Field(0.999, gt=0, lt=1)
    parts: Literal["both", "actor", "critic"] = "both"
    swa_lr: float | None = Field(None, gt=0, description="SWA-phase LR of the swa variant; null keeps the LR")
    anneal: float | int = 0.0
    anneal_strategy: Literal["cos", "linear"] = "cos"
    cycle: int | None = Field(None, ge=1)
    swa_lr_max: float | None = Field(None, gt=0)
    posthoc_points: int = Field(0, ge=0, description="saved states of a running equal average, for choosing the window after training")
    posthoc_sigma_rels: list[float] = Field(
        default_factory=lambda: [0.05, 0.10],
        description="with posthoc_points: relative widths of the power EMAs saved for post-hoc EMA synthesis",
    )
    averages: list[str] = Field(default_factory=list, description="further averages on the same trajectory, e.g. [swa@0.5, ema@0.999]")
    skip_nonfinite: bool = Field(True, description="skip snapshots holding NaN/Inf (one more read of the weights per snapshot)")
    flatten: bool = Field(True, description="lay the averaged parameters out in one buffer: one sum and one lerp per snapshot")

    @field_validator("posthoc_sigma_rels")
    @classmethod
    def _sigma_rels(cls, v):
        from rl_swa.posthoc import check_sigma_rels

        return check_sigma_rels("posthoc_sigma_rels", v)

    @field_validator("averages")
    @classmethod
    def _averages(cls, v):
        from rl_swa.callback import parse_average_spec

        for spec in v:
            parse_average_spec(spec)
        return v

    @field_validator("start")
    @classmethod
    def _start(cls, v):
        if isinstance(v, float) and not 0 < v < 1:
            raise ValueError("a float start must be in (0, 1); an int is an env step")
        if isinstance(v, int) and v < 0:
            raise ValueError("an int start must be >= 0")
        return v


class EvalSettings(_Strict):
    deterministic: bool = True
    seed: int = Field(10_000, ge=0, description="seed of the evaluation episodes (disjoint from training seeds)")


class ExperimentConfig(_Strict):
    experiment: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    algo: Literal["a2c", "ddpg"]
    env_type: Literal["classic", "atari", "mujoco"]
    envs: list[str] = Field(min_length=1)
    n_envs: int = Field(1, ge=1)
    optimizer: Literal["adam", "rmsprop"] = "adam"
    policy: str = "MlpPolicy"
    hyperparams: dict[str, Any] = Field(default_factory=dict)
    policy_kwargs: dict[str, Any] = Field(default_factory=dict)
    action_noise: float | None = Field(None, ge=0, description="DDPG: std of Gaussian action noise")
    sticky_actions: float = Field(0.0, ge=0, le=1, description="Atari: repeat_action_probability")
    frame_stack: int = Field(4, ge=1)
    budgets: dict[str, Budget]
    on_divergence: Literal["stop", "continue"] = Field("stop", description="NaN/Inf weights: stop keeping the last good checkpoint, or go on")
    resources: Resources = Resources()
    swa: SWASettings = SWASettings()
    eval: EvalSettings = EvalSettings()

    @model_validator(mode="after")
    def _checks(self):
        for key in ("smoke", "short", "paper"):
            if key not in self.budgets:
                raise ValueError(f"budgets.{key} is missing (every config defines smoke, short and paper)")
        if self.algo == "ddpg" and self.optimizer != "adam":
            raise ValueError("optimizer: DDPG uses adam only")
        for bad in ("policy_kwargs", "env", "seed", "tensorboard_log", "device", "verbose"):
            if bad in self.hyperparams:
                raise ValueError(f"hyperparams.{bad} is set by rl-swa; remove it")
        return self

    def hyperparams_for(self, budget: str) -> dict[str, Any]:
        return {**self.hyperparams, **self.budget(budget).hyperparams}

    def budget(self, name: str) -> Budget:
        if name not in self.budgets:
            raise ConfigError(f"--budget: {name!r} is not defined; allowed: {', '.join(self.budgets)}")
        return self.budgets[name]


def _set_path(data: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: {key!r} is not a section")
        node = child
    node[keys[-1]] = value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    for item in overrides:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise ConfigError(f"--set {item!r}: expected key.sub=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            why = getattr(exc, "problem", None) or str(exc).splitlines()[0]  # a ReaderError (control character) has no .problem
            raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML ({why})") from None
        _set_path(data, key.strip(), value)
    return data


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "config"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    value = err.get("input")
    shown = "" if err["type"] in ("missing", "extra_forbidden") or isinstance(value, dict) else f" (got {value!r})"
    return f"{loc}: {msg}{shown}"


def parse_config(data: Any, source: str = "config") -> ExperimentConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_first_error(exc)}") from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})".replace("\n", " ")) from None
    return parse_config(apply_overrides(data or {}, overrides or []), str(path))
