"""Experiment configs: plain YAML validated into typed objects (pydantic).

A config names one algorithm, a list of envs, SB3 hyperparameters, named budgets (``smoke``,
``short``, ``paper``), the SWA settings and the evaluation protocol. Any field can be overridden
with ``key.sub=value`` strings (values parsed as YAML).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rl_swa.config import SWAConfig

Variant = Literal["baseline", "swa", "act_avg", "reset_avg"]  # the arms a grid can run, each forked from one prefix
VARIANTS = get_args(Variant)


class ConfigError(ValueError):
    """A bad config: the message names the field and the problem, on one line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class A2CParams(_Strict):
    """The SB3 ``A2C`` arguments a config may set (the optimizer is set by ``optimizer``)."""

    learning_rate: float = Field(None, gt=0)
    n_steps: int = Field(None, ge=1)
    gamma: float = Field(None, gt=0, le=1)
    gae_lambda: float = Field(None, ge=0, le=1)
    ent_coef: float = Field(None, ge=0)
    vf_coef: float = Field(None, ge=0)
    max_grad_norm: float = Field(None, gt=0)
    normalize_advantage: bool = None
    stats_window_size: int = Field(None, ge=1)


class DDPGParams(_Strict):
    """The SB3 ``DDPG`` arguments a config may set (action noise is set by ``action_noise``)."""

    learning_rate: float = Field(None, gt=0)
    buffer_size: int = Field(None, ge=1, le=10**8)
    learning_starts: int = Field(None, ge=0)
    batch_size: int = Field(None, ge=1)
    tau: float = Field(None, gt=0, le=1)
    gamma: float = Field(None, gt=0, le=1)
    train_freq: int = Field(None, ge=1)
    gradient_steps: int = Field(None, ge=-1)
    stats_window_size: int = Field(None, ge=1)


class DDPGPolicyKwargs(_Strict):
    """The SB3 ``policy_kwargs`` a DDPG config may set (activations by name)."""

    net_arch: list[int] | dict[Literal["pi", "qf"], list[int]] = None
    activation_fn: Literal["tanh", "relu", "elu", "leaky_relu", "gelu"] = None
    share_features_extractor: bool = None
    normalize_images: bool = None


class A2CPolicyKwargs(DDPGPolicyKwargs):
    """The SB3 ``policy_kwargs`` an A2C config may set (activations by name)."""

    net_arch: list[int] | dict[Literal["pi", "vf"], list[int]] = None
    ortho_init: bool = None
    log_std_init: float = None


HYPERPARAMS = {"a2c": A2CParams, "ddpg": DDPGParams}
POLICY_KWARGS = {"a2c": A2CPolicyKwargs, "ddpg": DDPGPolicyKwargs}


class Budget(_Strict):
    timesteps: int = Field(gt=0, description="env steps of one run")
    eval_freq: int = Field(gt=0, description="evaluate every this many env steps")
    eval_episodes: int = Field(gt=0, description="episodes per evaluation")
    hyperparams: dict[str, Any] = Field(
        default_factory=dict, description="overrides of the config's hyperparams (checked as those)"
    )
    checkpoint_every: int | None = Field(
        None, gt=0, description="env steps between checkpoints (default max(eval_freq, timesteps/10))"
    )


class Resources(_Strict):
    cpus: float = Field(1, gt=0, description="CPUs per run (Ray backend)")
    gpus: float = Field(0, ge=0, description="GPUs per run (Ray backend), fractions allowed")


class SWASettings(SWAConfig):
    """The library's SWA settings (validated there), plus the arms that only the pipeline runs."""

    act_with: str = Field(
        "swa", description="act_avg variant: the average that collects experience ('swa' or a name from averages)"
    )
    reset_every: int = Field(
        1000, ge=1, description="reset_avg variant: set the online weights to the average every N updates"
    )
    reset_parts: Literal["both", "actor", "critic"] = "both"
    reset_optimizer: Literal["keep", "reset"] = Field("keep", description="reset_avg variant: Adam's state after a reset")

    @model_validator(mode="after")
    def _act_with(self):
        names = ["swa", *(a.name for a in self.averages)]
        if self.act_with not in names:
            raise ValueError(f"act_with: {self.act_with!r} is not an average of this config; allowed: {', '.join(names)}")
        return self

    def library(self) -> SWAConfig:
        """The settings :class:`rl_swa.SWACallback` takes."""
        return SWAConfig(**self.model_dump(include=set(SWAConfig.model_fields)))


class EvalSettings(_Strict):
    deterministic: bool = True
    seed: int = Field(10_000, ge=0, description="seed of the evaluation episodes (disjoint from training seeds)")


class SelectSettings(_Strict):
    """``rl-swa select`` at the end of every run (``rl_swa.selection``): the policy to deploy."""

    episodes: int = Field(200, ge=20, le=10**6, description="validation episodes over all candidates")
    level: float = Field(0.05, gt=0, lt=0.5, description="deploy a candidate only if better than online at this level")
    test_episodes: int = Field(0, ge=0, le=10**5, description="also score the alternatives on this many test episodes")
    rule: Literal["fixed", "sequential"] = Field(
        "fixed", description="fixed: one paired test; sequential: a staged confirmation (rl_swa.selection.RULES)"
    )


class SB3CheckpointSettings(_Strict):
    """SB3 checkpoint zips along the trajectory (``agents.sb3_checkpoints``): the folder a user's own
    ``CheckpointCallback`` leaves, for choosing among plain checkpoints."""

    every: int = Field(gt=0, description="env steps between checkpoint zips")
    variants: list[Variant] = Field(
        ["baseline"], description="arms that save them (a forked pair's prefix always does: it is every arm's start)"
    )


class ExperimentConfig(_Strict):
    experiment: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="folder name of the grid under --out")
    algo: Literal["a2c", "ddpg"]
    env_type: Literal["classic", "atari", "mujoco"]
    envs: list[str] = Field(min_length=1)
    n_envs: int = Field(1, ge=1, le=256)
    optimizer: Literal["adam", "rmsprop"] = "adam"
    policy: Literal["MlpPolicy", "CnnPolicy", "MultiInputPolicy"] = "MlpPolicy"
    hyperparams: dict[str, Any] = Field(
        default_factory=dict, description="SB3 arguments of the algorithm (A2CParams, DDPGParams)"
    )
    policy_kwargs: dict[str, Any] = Field(default_factory=dict, description="SB3 policy_kwargs (PolicyKwargs)")
    action_noise: float | None = Field(None, ge=0, description="DDPG: std of Gaussian action noise")
    sticky_actions: float = Field(0.0, ge=0, le=1, description="Atari: repeat_action_probability")
    frame_stack: int = Field(4, ge=1)
    normalize: bool = Field(
        False, description="VecNormalize the training env (observations and rewards), as RL Zoo's normalize: true"
    )
    budgets: dict[str, Budget]
    variants: list[Variant] = Field(
        ["baseline", "swa"], min_length=1, description="arms of a grid, each forked from the same prefix"
    )
    on_divergence: Literal["stop", "finish"] = Field(
        "stop",
        description="NaN/Inf weights: stop (exit 4, the last good checkpoint kept), or finish the run with its averages",
    )
    resources: Resources = Resources()
    swa: SWASettings = SWASettings()
    eval: EvalSettings = EvalSettings()
    select: SelectSettings | None = Field(None, description="choose the deployed policy at the end of each run")
    sb3_checkpoints: SB3CheckpointSettings | None = Field(
        None, description="also save SB3 checkpoint zips every N env steps (sb3_checkpoints/ of the run)"
    )

    @field_validator("experiment")
    @classmethod
    def _one_folder(cls, v):
        if set(v) == {"."}:
            raise ValueError("must name a folder: letters, digits, _ . - and not only dots")
        return v

    @model_validator(mode="before")
    @classmethod
    def _typed_sb3_arguments(cls, data):
        """hyperparams (the config's and each budget's) and policy_kwargs checked as the algorithm's
        typed arguments, and kept as the plain dict of the keys given (values converted)."""
        if not isinstance(data, dict) or not isinstance(data.get("algo"), str) or data["algo"] not in HYPERPARAMS:
            return data
        data = dict(data)
        sections = [("hyperparams", data, HYPERPARAMS[data["algo"]]), ("policy_kwargs", data, POLICY_KWARGS[data["algo"]])]
        if isinstance(data.get("budgets"), dict):
            data["budgets"] = {k: dict(v) if isinstance(v, dict) else v for k, v in data["budgets"].items()}
            sections += [
                (f"budgets.{k}.hyperparams", b, HYPERPARAMS[data["algo"]])
                for k, b in data["budgets"].items()
                if isinstance(b, dict)
            ]
        for where, node, model in sections:
            key = where.rsplit(".", 1)[-1]
            given = node.get(key)
            if given is None:
                continue
            if not isinstance(given, dict):
                raise ValueError(f"{where}: must be a mapping (got {given!r})")
            try:
                node[key] = model.model_validate(given).model_dump(exclude_unset=True)
            except ValidationError as exc:
                raise ValueError(f"{where}.{_first_error(exc)}") from None
        return data

    @model_validator(mode="after")
    def _checks(self):
        for key in ("smoke", "short", "paper"):
            if key not in self.budgets:
                raise ValueError(f"budgets.{key} is missing (every config defines smoke, short and paper)")
        if len(set(self.variants)) != len(self.variants):
            raise ValueError(f"variants: {self.variants} names an arm twice")
        if self.normalize and self.env_type == "atari":
            raise ValueError("normalize: not for Atari (the CNN policy scales image observations itself)")
        if self.algo == "ddpg" and self.optimizer != "adam":
            raise ValueError("optimizer: DDPG uses adam only")
        if self.select is not None:  # before training: a budget too small for the candidates fails here, not after
            from rl_swa.deploy import most_candidates
            from rl_swa.selection import check_budget

            n = most_candidates(len(self.swa.averages), self.swa.posthoc_points, bool(self.swa.posthoc_sigma_rels))
            try:
                check_budget(n, self.select.episodes)
            except ValueError as exc:
                raise ValueError(f"select.{exc} (the most these swa settings can give)") from None
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
            why = (
                getattr(exc, "problem", None) or str(exc).splitlines()[0]
            )  # a ReaderError (control character) has no .problem
            raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML ({why})") from None
        _set_path(data, key.strip(), value)
    return data


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    if not loc:  # a check of several fields: its message names them
        return msg
    leaf = str(err["loc"][-1])
    if msg.startswith(f"{leaf}="):  # a check that names its own field (rl_swa's): give the full path
        return loc + msg[len(leaf) :]
    named = re.match(r"([a-z_]+): ", msg)
    if err["type"] == "value_error" and named and named.group(1) not in loc:  # a section's check naming its field
        return f"{loc}.{msg}"
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


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: key {key!r} is given twice")
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})".replace("\n", " ")) from None
    return parse_config(apply_overrides(data or {}, overrides or []), str(path))
