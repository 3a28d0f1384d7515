"""SWACallback: adds stochastic weight averaging to any supported SB3 algorithm in one line."""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from rl_swa.adapters import adapter_for, clock_optimizer, select_tensors, steps_per_update
from rl_swa.averaging import WeightAverage, flatten_parameters
from rl_swa.config import SWAConfig, resolve_steps
from rl_swa.evaluation import SWAEvaluation, check_arguments
from rl_swa.policy import SWAPolicy
from rl_swa.posthoc import PosthocRecorder
from rl_swa.schedules import AnnealSchedule, CyclicSchedule, unwrap
from rl_swa.swag import SWAGRecorder

CALLBACK_STATE_VERSION = 2
EVAL_ARGUMENTS = ("eval_freq", "n_eval_episodes", "eval_seed", "deterministic")


class SWACallback(BaseCallback):
    """Stochastic weight averaging of an SB3 agent's actor and critic.

    Snapshots are taken after real gradient updates (a post-step hook on the optimizer that ends
    each update), every ``update_every`` updates once ``num_timesteps`` passes ``start``. The
    averages live on the policy's device; an update never synchronizes host and device.

    The settings are an :class:`rl_swa.config.SWAConfig` (``config=``) or its fields as plain
    keyword arguments, so RL Zoo can build the callback from YAML::

        callback:
          - rl_swa.SWACallback: {start: 0.75, swa_lr: 0.0003, eval_env: CartPole-v1}

    Settings (validated once, in :class:`~rl_swa.config.SWAConfig`): ``start`` (a float in (0, 1)
    is a fraction of the run, an int an env step), ``update_every``, ``mode`` (``"swa"`` equal
    average or ``"ema"`` with ``decay``, ``ema_warmup``), ``parts`` (``"both"``, ``"actor"``,
    ``"critic"``; a shared CNN trunk goes with either), the SWA-phase LR (``swa_lr``; ``None``
    leaves the LR alone; ``anneal``, ``anneal_strategy``; cyclic: ``cycle``, ``swa_lr_max``),
    further ``averages`` kept on the same trajectory (``{mode, start, decay}`` or ``"swa@0.5"``,
    ``"ema@0.999@0"``; evaluated and saved by name: ``swa_0.5``, ``ema_0.999_from_0``),
    ``posthoc_points`` / ``posthoc_sigma_rels`` (a :class:`~rl_swa.posthoc.PosthocRecorder`),
    ``skip_nonfinite`` and the opt-in ``flatten`` layout.

    :param eval_env: with it, an :class:`~rl_swa.evaluation.SWAEvaluation` (``eval_freq``,
        ``n_eval_episodes``, ``eval_seed``, ``deterministic``) scores the online policy and every
        average on the same episodes; ``None``: no evaluation.
    :param callbacks: further components that use this callback's averages (``SWAEvaluation``,
        ``PosthocRecorder``, ...), run after it at each hook.
    :param apply_at_end: write the averages into the model when training ends (after the last
        evaluation), so ``model.save()`` stores the SWA weights.
    """

    def __init__(
        self,
        config: SWAConfig | None = None,
        *,
        eval_env=None,
        callbacks: list[BaseCallback] = (),
        apply_at_end: bool = False,
        verbose: int = 0,
        **settings,
    ):
        super().__init__(verbose)
        evaluation = {k: settings.pop(k) for k in EVAL_ARGUMENTS if k in settings}
        if config is not None and not isinstance(config, SWAConfig):
            raise ValueError(
                f"SWACallback: config={config!r} is not allowed; use an rl_swa.SWAConfig, or settings by name (start=...)"
            )
        if eval_env is None and evaluation:
            check_arguments(**evaluation)  # nothing to evaluate on, but a bad value is still named
        if config is not None and settings:
            raise ValueError(f"SWACallback: give either config or settings, not both (got {sorted(settings)})")
        self.config = config if config is not None else SWAConfig.of(**settings)
        self.apply_at_end = bool(apply_at_end)
        self.average: WeightAverage | None = None
        self.extra: dict[str, WeightAverage] = {}  # the further averages, by name
        self.tensors: dict[str, Any] = {}  # the averaged parameters, by name inside model.policy
        self.followers: list[tuple[WeightAverage, int]] = []  # (average, env step after which it takes snapshots)
        self.after_update: list = []  # functions of the env step, called after each update's snapshots
        self.start_step: int | None = None
        self.phase_updates = 0  # gradient updates since start
        self.updates_seen = 0  # gradient updates seen by this callback
        self._hook = self._clock = self._user_schedule = None
        self._policy_cache: tuple[tuple, SWAPolicy] | None = None
        components = list(callbacks)
        if eval_env is not None:
            components.insert(0, SWAEvaluation(self, eval_env, verbose=verbose, **evaluation))
        if self.config.posthoc_points:
            components.append(PosthocRecorder(self, self.config.posthoc_points, self.config.posthoc_sigma_rels))
        if self.config.swag_rank:
            components.append(SWAGRecorder(self, self.config.swag_rank))
        self.components = CallbackList(components)

    def __getattr__(self, name: str):  # the settings read as attributes: swa.start, swa.mode, ...
        config = self.__dict__.get("config")
        if config is not None and name in SWAConfig.model_fields:
            return getattr(config, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def add(self, component: BaseCallback) -> None:
        """Run ``component`` (a part that uses these averages) after this callback at each hook;
        its ``state_dict`` is saved with this callback's."""
        self.components.callbacks.append(component)

    def component(self, kind: type) -> Any:
        """The part of this kind (e.g. ``SWAEvaluation``), or None."""
        return next((c for c in self.components.callbacks if isinstance(c, kind)), None)

    @property
    def averages(self) -> dict[str, WeightAverage]:
        """Every average by name: ``"swa"`` (the main one), then the further ones."""
        return {"swa": self.average, **self.extra} if self.average is not None else dict(self.extra)

    @property
    def update_every(self) -> int:
        return self.config.snapshot_every

    @property
    def evaluations(self) -> list[dict[str, float]]:
        evaluation = self.component(SWAEvaluation)
        return evaluation.evaluations if evaluation is not None else []

    @property
    def posthoc(self) -> list[dict]:
        recorder = self.component(PosthocRecorder)
        return recorder.points if recorder is not None else []

    def new_average(self, **kwargs) -> WeightAverage:
        """A :class:`WeightAverage` of the averaged tensors, with this callback's guard and layout."""
        return WeightAverage(self.tensors, skip_nonfinite=self.config.skip_nonfinite, flat=self.config.flatten, **kwargs)

    def follow(self, average: WeightAverage, start_step: int) -> None:
        """Snapshot ``average`` with this callback's cadence once the env step passes ``start_step``
        (one NaN/Inf check of the weights for all the averages due)."""
        self.followers.append((average, start_step))

    # ------------------------------------------------------------------ SB3 hooks
    def _init_callback(self) -> None:
        adapter_for(self.model)  # unsupported algorithm -> clear error now
        c = self.config
        if self.average is None:
            self.tensors = select_tensors(self.model, c.parts)
            if c.flatten:
                flatten_parameters(self.tensors.values())
            self.average = self.new_average(mode=c.mode, decay=c.decay, warmup=c.ema_warmup)
            for spec in c.averages:
                self.extra[spec.name] = self.new_average(mode=spec.mode, decay=spec.decay)
        self.components.init_callback(self.model)

    def _on_training_start(self) -> None:
        c, total = self.config, int(self.model._total_timesteps)
        self.start_step = resolve_steps(c.start, total)
        self.followers = [(avg, s) for avg, s in self.followers if avg not in self.extra.values()]
        for spec in c.averages:
            self.follow(self.extra[spec.name], self.start_step if spec.start is None else resolve_steps(spec.start, total))
        self._user_schedule = unwrap(self.model.lr_schedule)
        if c.swa_lr is not None:
            if c.cycle is not None:
                lr_max = c.swa_lr_max or float(self._user_schedule(1.0 - self.start_step / total))
                schedule = CyclicSchedule(
                    self._user_schedule, total, self.start_step, lr_max, c.swa_lr, c.cycle, steps_per_update(self.model)
                )
            else:
                schedule = AnnealSchedule(
                    self._user_schedule, total, self.start_step, c.swa_lr, resolve_steps(c.anneal, total), c.anneal_strategy
                )
            self.model.lr_schedule = schedule
        # The optimizer object changes when a model is loaded: (re-)register on each learn().
        self._clock = clock_optimizer(self.model)
        self._hook = self._clock.register_step_post_hook(self._after_update)
        self.components.on_training_start(self.locals, self.globals)

    def _after_update(self, optimizer, args, kwargs) -> None:
        self.updates_seen += 1
        step = self.model.num_timesteps
        due = []  # the averages taking this snapshot; they track the same tensors
        if self.updates_seen % self.update_every == 0:
            due += [average for average, start in self.followers if step > start]
        if step > self.start_step:
            self.phase_updates += 1
            if self.phase_updates % self.update_every == 0:
                due.append(self.average)
        if due:
            # One NaN/Inf check (a read of the weights) for all of them, not one per average.
            finite = due[0].snapshot_finite() if self.config.skip_nonfinite and len(due) > 1 else None
            for average in due:
                average.update(finite)
        for listener in self.after_update:
            listener(step)

    def update_child_locals(self, locals_: dict[str, Any]) -> None:
        self.components.update_locals(locals_)

    def _on_step(self) -> bool:
        return self.components.on_step()

    def _on_rollout_end(self) -> None:
        if self.average.on_host:  # on an accelerator n_averaged would sync: logged at evaluation
            self.logger.record("swa/n_averaged", self.average.n_averaged)
        self.logger.record("swa/lr", self._clock.param_groups[0]["lr"])
        self.components.on_rollout_end()

    def _on_training_end(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = self._clock = None
        if self._user_schedule is not None:
            self.model.lr_schedule = self._user_schedule
        self.components.on_training_end()  # the last evaluation: after the last update, before apply_at_end
        if self.apply_at_end and self.has_snapshot:
            self.apply()

    # ------------------------------------------------------------------ results
    @property
    def has_snapshot(self) -> bool:
        return self.average is not None and self.average.n_updates > 0 and self.average.n_averaged > 0

    @property
    def policy(self) -> SWAPolicy:
        """The averaged policy, a fresh :class:`SWAPolicy` (the model keeps its live weights)."""
        if not self.has_snapshot:
            raise RuntimeError("SWACallback.policy: no snapshot yet (averaging starts at `start`; train past it first)")
        key = (self.average.n_updates, self.num_timesteps)  # normalization statistics move between snapshots
        if self._policy_cache is None or self._policy_cache[0] != key:
            meta = {"parts": self.config.parts, "start_step": self.start_step, "update_every": self.update_every}
            env_id = _env_id(self.model)
            if env_id:
                meta["env_id"] = env_id
            self._policy_cache = (key, SWAPolicy.from_model(self.model, self.average, meta))
        return self._policy_cache[1]

    def policy_of(self, name: str) -> SWAPolicy:
        """The :class:`SWAPolicy` of one of the further ``averages`` (by name, e.g. ``"swa_0.5"``)."""
        if name not in self.extra:
            raise ValueError(f"no average named {name!r}; this callback keeps {sorted(self.extra)}")
        average = self.extra[name]
        if not (average.n_updates and average.n_averaged):
            raise RuntimeError(f"SWACallback.policy_of({name!r}): no snapshot yet")
        return SWAPolicy.from_model(self.model, average, {"parts": self.config.parts, "average": name})

    def apply(self) -> None:
        """Write the averages into the model's live networks (``model.save()`` then stores them)."""
        if not self.has_snapshot:
            raise RuntimeError("SWACallback.apply: no snapshot yet, nothing to apply")
        self.average.copy_to(self.model.policy)

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {
            "version": CALLBACK_STATE_VERSION,
            "averages": {name: average.state_dict() for name, average in self.averages.items()},
            "phase_updates": self.phase_updates,
            "updates_seen": self.updates_seen,
            "components": [type(p).__name__ for p in self.components.callbacks],
            "part_states": [p.state_dict() if hasattr(p, "state_dict") else None for p in self.components.callbacks],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore after :meth:`init_callback` (the model must be set: the average's layout comes from it)."""
        if state.get("version") != CALLBACK_STATE_VERSION:
            raise ValueError(
                f"SWACallback state version {state.get('version')!r} is not supported (expected {CALLBACK_STATE_VERSION})"
            )
        if sorted(state["averages"]) != sorted(self.averages):
            raise ValueError(
                f"SWACallback state holds averages {sorted(state['averages'])}, this callback {sorted(self.averages)}"
            )
        names = [type(p).__name__ for p in self.components.callbacks]
        if state["components"] != names:
            raise ValueError(f"SWACallback state holds parts {state['components']}, this callback {names}")
        for name, average in self.averages.items():
            average.load_state_dict(state["averages"][name])
        self.phase_updates = int(state["phase_updates"])
        self.updates_seen = int(state["updates_seen"])
        for part, saved in zip(self.components.callbacks, state["part_states"]):
            if saved is not None:
                part.load_state_dict(saved)


def _env_id(model) -> str | None:
    try:
        spec = model.get_env().envs[0].unwrapped.spec
        return spec.id if spec else None
    except (AttributeError, IndexError):
        return None


_MOVED = {  # names this module held before SWAConfig: what replaced them
    "parse_average_spec": "rl_swa.Average (Average.model_validate('swa@0.5').name, .mode, .start, .decay)",
    "MODES": "rl_swa.SWAConfig.model_fields['mode']",
}


def __getattr__(name: str):
    if name in _MOVED:
        raise ImportError(f"rl_swa.callback.{name} was replaced by {_MOVED[name]}")
    raise AttributeError(f"module 'rl_swa.callback' has no attribute {name!r}")
