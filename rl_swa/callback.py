"""SWACallback: adds stochastic weight averaging to any supported SB3 algorithm in one line."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from rl_swa.adapters import PARTS, adapter_for, clock_optimizer, select_tensors, steps_per_update
from rl_swa.averaging import WeightAverage, all_finite, flatten_parameters
from rl_swa.diagnostics import ActionProbe
from rl_swa.normalization import normalized_eval_env, sync_obs_statistics
from rl_swa.overlay import add_overlay
from rl_swa.policy import SWAPolicy
from rl_swa.posthoc import check_sigma_rels, gamma_of
from rl_swa.schedules import ANNEAL_STRATEGIES, AnnealSchedule, CyclicSchedule, unwrap

CALLBACK_STATE_VERSION = 1
MODES = ("swa", "ema")  # of the main average; "power" EMAs serve post-hoc synthesis only


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _is_real(x) -> bool:
    return isinstance(x, (int, float, np.floating, np.integer)) and not isinstance(x, bool) and math.isfinite(x)


def _bad(name: str, value, allowed: str) -> ValueError:
    return ValueError(f"SWACallback: {name}={value!r} is not allowed; {allowed}")


def resolve_steps(name: str, value, total_timesteps: int) -> int:
    """A float in (0, 1) is a fraction of ``total_timesteps``; an int is an absolute env step."""
    if _is_int(value):
        return int(value)
    return int(round(float(value) * total_timesteps))


def _check_position(name: str, value, allow_zero: bool) -> None:
    if _is_int(value):
        if value < 0:
            raise _bad(name, value, "an int must be an env step >= 0")
        return
    if isinstance(value, (float, np.floating)) and math.isfinite(value):
        low_ok = value >= 0 if allow_zero else value > 0
        if low_ok and value < 1:
            return
    interval = "[0, 1)" if allow_zero else "(0, 1)"
    raise _bad(name, value, f"use a float in {interval} (fraction of the run) or an int >= 0 (env steps)")


def parse_average_spec(spec) -> tuple[str, str, float, float | int | None]:
    """``"swa@START"`` or ``"ema@DECAY[@START]"`` -> (name, mode, decay, start); START as for ``start``."""
    allowed = "use 'swa@START' or 'ema@DECAY[@START]', e.g. 'swa@0.5', 'swa@20000', 'ema@0.999'"
    if not isinstance(spec, str) or spec.count("@") not in (1, 2):
        raise _bad("averages", spec, allowed)
    mode, *values = spec.split("@")
    try:
        numbers = [int(v) if v.lstrip("-").isdigit() else float(v) for v in values]
    except ValueError:
        raise _bad("averages", spec, allowed) from None
    if mode == "swa" and len(numbers) == 1:
        _check_position("averages", numbers[0], allow_zero=False)
        return f"swa_{values[0]}", "swa", 0.999, numbers[0]
    if mode == "ema":
        decay = numbers[0]
        if not (isinstance(decay, float) and 0 < decay < 1):
            raise _bad("averages", spec, "an EMA decay must be a float in (0, 1)")
        start = numbers[1] if len(numbers) == 2 else None
        if start is not None:
            _check_position("averages", start, allow_zero=True)
        return f"ema_{values[0]}" + (f"_from_{values[1]}" if start is not None else ""), "ema", decay, start
    raise _bad("averages", spec, allowed)


class SWACallback(BaseCallback):
    """Stochastic weight averaging of an SB3 agent's actor and critic.

    Snapshots are taken after real gradient updates (a post-step hook on the optimizer that
    ends each update), every ``update_every`` updates once ``num_timesteps`` passes ``start``.
    The averages live on the policy's device; an update never synchronizes host and device.

    All arguments are plain values, so RL Zoo can build it from YAML::

        callback:
          - rl_swa.SWACallback: {start: 0.75, swa_lr: 0.0003}

    :param start: when averaging starts: a float in (0, 1) is a fraction of the run's total
        timesteps, an int an absolute env step.
    :param update_every: take a snapshot every N gradient updates (A2C: one update per rollout;
        DDPG: one per env step). With ``cycle`` set, snapshots come at each cycle's end instead.
    :param mode: ``"swa"`` (equal average) or ``"ema"``.
    :param decay: EMA decay (``mode="ema"`` only).
    :param ema_warmup: ramp the EMA decay up as in timm's ModelEmaV3.
    :param parts: ``"both"``, ``"actor"`` or ``"critic"``. For A2C/PPO with a shared feature
        extractor (CnnPolicy) the trunk serves both and is averaged with either part.
    :param swa_lr: learning rate of the SWA phase; ``None`` leaves the user's LR untouched
        (averaging only). Applied to every optimizer of the algorithm through ``model.lr_schedule``.
    :param anneal: span over which the LR moves from its value at ``start`` to ``swa_lr``: a
        float in [0, 1) is a fraction of the run, an int env steps.
    :param anneal_strategy: ``"cos"`` or ``"linear"``.
    :param cycle: cyclical SWA: cycles of this many updates, LR linear from ``swa_lr_max`` down
        to ``swa_lr`` within each, one snapshot at each cycle's end.
    :param swa_lr_max: top of each cycle (default: the user's LR at ``start``).
    :param eval_env: an env id, a gymnasium env or a VecEnv to evaluate on; ``None`` disables evaluation.
    :param eval_freq: evaluate every this many env steps, and once more when training ends.

        .. note:: unlike SB3's EvalCallback, ``eval_freq`` counts env steps, not callback calls.
    :param n_eval_episodes: episodes per evaluation; the online and averaged policies play the
        same episodes (the eval env is reseeded with ``eval_seed`` before each).
    :param eval_seed: seed of the evaluation episodes.
    :param deterministic: deterministic actions in evaluation.
    :param apply_at_end: write the averages into the model's networks when training ends, so
        ``model.save()`` stores the SWA weights.
    :param skip_nonfinite: skip snapshots whose weights hold NaN/Inf.
    :param averages: further averages kept on the same trajectory, each a full copy of the
        averaged tensors, snapshotted with the same cadence and evaluated on the same episodes
        (``eval/<name>_mean_reward``): ``"swa@0.5"`` (equal average from 50% of the run),
        ``"swa@20000"`` (from env step 20000), ``"ema@0.999"`` (EMA from ``start``),
        ``"ema@0.999@0"`` (EMA from the first update). Names: ``swa_0.5``, ``ema_0.999``, ...
    :param posthoc_points: keep an equal running average from the first update and save it (with
        its count) at this many evenly spaced times (host copies, one per point), so that the
        equal average over any window between two saved times can be rebuilt exactly after
        training (:func:`rl_swa.posthoc.window_average`, ``scripts/posthoc.py``). 0 disables.
    :param posthoc_sigma_rels: with ``posthoc_points``, also keep one power-function EMA per
        relative width (Karras et al. 2024; 0.05 and 0.10 as in the paper) from the first update
        and save them at the same times, so that EMA profiles of any width can be synthesized
        after training (:func:`rl_swa.posthoc.synthesize_ema`). Each is one more on-device copy.
    :param flatten: lay the averaged parameters out back to back in one buffer
        (:func:`rl_swa.averaging.flatten_parameters`: same Parameter objects and values, the
        optimizers do not notice) so that each snapshot is one sum and one lerp, not one per
        tensor. ``False`` leaves the model's memory as SB3 made it.
    :param verbose: 0 silent, 1 a line per evaluation.
    """

    def __init__(
        self,
        start: float | int = 0.75,
        update_every: int = 1,
        mode: str = "swa",
        decay: float = 0.999,
        ema_warmup: bool = False,
        parts: str = "both",
        swa_lr: float | None = None,
        anneal: float | int = 0.0,
        anneal_strategy: str = "cos",
        cycle: int | None = None,
        swa_lr_max: float | None = None,
        eval_env: str | gym.Env | VecEnv | None = None,
        eval_freq: int = 10_000,
        n_eval_episodes: int = 5,
        eval_seed: int = 0,
        deterministic: bool = True,
        apply_at_end: bool = False,
        skip_nonfinite: bool = True,
        averages: list[str] | tuple[str, ...] | None = None,
        posthoc_points: int = 0,
        posthoc_sigma_rels: list[float] | tuple[float, ...] = (0.05, 0.10),
        flatten: bool = True,
        verbose: int = 0,
    ):
        super().__init__(verbose)
        _check_position("start", start, allow_zero=False)
        _check_position("anneal", anneal, allow_zero=True)
        if not _is_int(update_every) or update_every < 1:
            raise _bad("update_every", update_every, "it must be an int >= 1")
        if mode not in MODES:
            raise _bad("mode", mode, f"allowed: {', '.join(MODES)}")
        if not (_is_real(decay) and 0 < decay < 1):
            raise _bad("decay", decay, "it must be a float in (0, 1)")
        if parts not in PARTS:
            raise _bad("parts", parts, f"allowed: {', '.join(PARTS)}")
        for name, lr in (("swa_lr", swa_lr), ("swa_lr_max", swa_lr_max)):
            if lr is not None and not (_is_real(lr) and lr > 0):
                raise _bad(name, lr, "it must be a positive float or None")
        if anneal_strategy not in ANNEAL_STRATEGIES:
            raise _bad("anneal_strategy", anneal_strategy, f"allowed: {', '.join(ANNEAL_STRATEGIES)}")
        if cycle is not None:
            if not _is_int(cycle) or cycle < 1:
                raise _bad("cycle", cycle, "it must be an int >= 1 (updates per cycle) or None")
            if swa_lr is None:
                raise _bad("swa_lr", swa_lr, "a cyclic schedule (cycle set) needs swa_lr, the LR at each cycle's end")
            if update_every not in (1, cycle):
                raise _bad("update_every", update_every, f"with cycle={cycle} snapshots come at each cycle's end; leave update_every at 1")
        elif swa_lr_max is not None:
            raise _bad("swa_lr_max", swa_lr_max, "it only applies with cycle set")
        if eval_env is not None and not isinstance(eval_env, (str, gym.Env, VecEnv)):
            raise _bad("eval_env", eval_env, "use an env id, a gymnasium.Env, a VecEnv or None")
        for name, value in (("eval_freq", eval_freq), ("n_eval_episodes", n_eval_episodes)):
            if not _is_int(value) or value < 1:
                raise _bad(name, value, "it must be an int >= 1")
        if not isinstance(flatten, bool):
            raise _bad("flatten", flatten, "it must be True or False")
        if not _is_int(eval_seed) or eval_seed < 0:
            raise _bad("eval_seed", eval_seed, "it must be an int >= 0")

        if averages is not None and not isinstance(averages, (list, tuple)):
            raise _bad("averages", averages, "use a list of specs such as ['swa@0.5', 'ema@0.999'] or None")
        self.extra_specs = [parse_average_spec(a) for a in (averages or [])]
        names = [spec[0] for spec in self.extra_specs]
        if len(set(names)) != len(names) or "swa" in names or "online" in names:
            raise _bad("averages", averages, "the names must be distinct")

        if not _is_int(posthoc_points) or posthoc_points < 0:
            raise _bad("posthoc_points", posthoc_points, "it must be an int >= 0")
        self.posthoc_points = int(posthoc_points)
        self.posthoc_sigma_rels = check_sigma_rels("posthoc_sigma_rels", posthoc_sigma_rels)
        self.posthoc_power: list[WeightAverage] = []
        self.posthoc: list[dict[str, Any]] = []  # saved states of the running average
        self.posthoc_average: WeightAverage | None = None
        self._posthoc_next: int | None = None

        self.start = start
        self.update_every = int(cycle if cycle is not None else update_every)
        self.mode = mode
        self.decay = float(decay)
        self.ema_warmup = bool(ema_warmup)
        self.parts = parts
        self.swa_lr = swa_lr
        self.anneal = anneal
        self.anneal_strategy = anneal_strategy
        self.cycle = cycle
        self.swa_lr_max = swa_lr_max
        self.eval_env = eval_env
        self.eval_freq = int(eval_freq)
        self.n_eval_episodes = int(n_eval_episodes)
        self.eval_seed = int(eval_seed)
        self.deterministic = bool(deterministic)
        self.apply_at_end = bool(apply_at_end)
        self.skip_nonfinite = bool(skip_nonfinite)
        self.flatten = bool(flatten)

        self.average: WeightAverage | None = None
        self.start_step: int | None = None
        self.phase_updates = 0  # gradient updates since start
        self.updates_seen = 0  # gradient updates seen by this callback
        self.extra: dict[str, WeightAverage] = {}
        self._extra_start: dict[str, int] = {}
        self.evaluations: list[dict[str, float]] = []
        self._next_eval = self.eval_freq
        self._hook = None
        self._clock = None  # the optimizer whose steps are counted (set at each learn())
        self._vec_eval_env: VecEnv | None = None
        self.probe = ActionProbe()  # agreement and churn on visited states, at each evaluation
        self._user_schedule = None
        self._policy_cache: tuple[tuple, SWAPolicy] | None = None
        # The env step where another callback will stop this learn() early (a forked pair's
        # prefix): no evaluation there in _on_step, since _on_training_end evaluates the final weights.
        self.ends_at: int | None = None

    # ------------------------------------------------------------------ SB3 hooks
    def _init_callback(self) -> None:
        adapter_for(self.model)  # unsupported algorithm -> clear error now
        if self.flatten:
            flatten_parameters(select_tensors(self.model, self.parts).values())
        if self.average is None:
            self.average = WeightAverage(
                select_tensors(self.model, self.parts),
                mode=self.mode,
                decay=self.decay,
                warmup=self.ema_warmup,
                skip_nonfinite=self.skip_nonfinite,
            )
        tensors = None
        if self.posthoc_points and self.posthoc_average is None:
            tensors = select_tensors(self.model, self.parts)
            self.posthoc_average = WeightAverage(tensors, skip_nonfinite=self.skip_nonfinite)
            self.posthoc_power = [
                WeightAverage(tensors, mode="power", gamma=gamma_of(sigma), skip_nonfinite=self.skip_nonfinite)
                for sigma in self.posthoc_sigma_rels
            ]
        for name, mode, decay, _ in self.extra_specs:
            if name not in self.extra:
                tensors = tensors or select_tensors(self.model, self.parts)
                self.extra[name] = WeightAverage(tensors, mode=mode, decay=decay, skip_nonfinite=self.skip_nonfinite)
        if self.eval_env is not None and self._vec_eval_env is None:
            # a VecNormalize training env: evaluate with its observation statistics (synced at each evaluation)
            self._vec_eval_env = normalized_eval_env(self.model.get_env(), self._make_eval_env(self.eval_env))

    def _make_eval_env(self, env) -> VecEnv:
        if isinstance(env, VecEnv):
            return env
        if isinstance(env, str):
            return make_vec_env(env, n_envs=1, seed=self.eval_seed)
        return DummyVecEnv([lambda: Monitor(env)])

    def _on_training_start(self) -> None:
        if self._vec_eval_env is not None:
            add_overlay(self.logger)  # online vs averaged reward in one TensorBoard chart
        total = int(self.model._total_timesteps)
        self.start_step = resolve_steps("start", self.start, total)
        for name, _, _, start in self.extra_specs:
            self._extra_start[name] = self.start_step if start is None else resolve_steps("averages", start, total)
        if self.posthoc_points:
            self._posthoc_total = total
            self._posthoc_next = self._next_posthoc_step(self.num_timesteps)
        self._user_schedule = unwrap(self.model.lr_schedule)
        if self.swa_lr is not None:
            if self.cycle is not None:
                lr_max = self.swa_lr_max
                if lr_max is None:
                    lr_max = float(self._user_schedule(1.0 - self.start_step / total))
                schedule = CyclicSchedule(self._user_schedule, total, self.start_step, lr_max, float(self.swa_lr), self.cycle, steps_per_update(self.model))
            else:
                anneal_steps = resolve_steps("anneal", self.anneal, total)
                schedule = AnnealSchedule(self._user_schedule, total, self.start_step, float(self.swa_lr), anneal_steps, self.anneal_strategy)
            self.model.lr_schedule = schedule
        # The optimizer object changes when a model is loaded: (re-)register on each learn().
        self._clock = clock_optimizer(self.model)
        self._hook = self._clock.register_step_post_hook(self._after_update)

    def _next_posthoc_step(self, step: int) -> int:
        points = [round(self._posthoc_total * k / self.posthoc_points) for k in range(1, self.posthoc_points + 1)]
        return next((p for p in points if p > step), self._posthoc_total + 1)

    def _save_posthoc_point(self) -> None:
        average = self.posthoc_average
        if not (average.n_updates and average.n_averaged) or (self.posthoc and self.posthoc[-1]["n"] == average.n_averaged):
            return

        def host_copy(avg: WeightAverage) -> dict:
            return {name: avg.averages[name].to("cpu", copy=True) for name in avg.names}

        self.posthoc.append({
            "step": int(self.model.num_timesteps),
            "n": average.n_averaged,
            "averages": host_copy(average),
            "power": [{"gamma": gamma_of(sigma), "sigma_rel": sigma, "n": p.n_averaged, "averages": host_copy(p)}
                      for sigma, p in zip(self.posthoc_sigma_rels, self.posthoc_power)],
        })

    def _after_update(self, optimizer, args, kwargs) -> None:
        self.updates_seen += 1
        step = self.model.num_timesteps
        due = []  # the averages taking this snapshot; they track the same tensors
        if self.updates_seen % self.update_every == 0:
            due += [average for name, average in self.extra.items() if step > self._extra_start[name]]
            if self.posthoc_average is not None:
                due += [self.posthoc_average, *self.posthoc_power]
        if step > self.start_step:
            self.phase_updates += 1
            if self.phase_updates % self.update_every == 0:
                due.append(self.average)
        if due:
            # One NaN/Inf check (a read of the weights) for all of them, not one per average.
            finite = due[0].snapshot_finite() if self.skip_nonfinite and len(due) > 1 else None
            for average in due:
                average.update(finite)
        if self._posthoc_next is not None and step >= self._posthoc_next:
            self._save_posthoc_point()
            self._posthoc_next = self._next_posthoc_step(step)

    def _on_step(self) -> bool:
        if self._vec_eval_env is not None and not self.probe.full:
            self.probe.add(self.locals.get("new_obs"))
        if self._vec_eval_env is not None and self.num_timesteps >= self._next_eval:
            self._next_eval = (self.num_timesteps // self.eval_freq + 1) * self.eval_freq
            if self.num_timesteps < (self.ends_at or self.model._total_timesteps):  # the last: at training end, after the last update
                self.evaluate()
        return True

    def _on_rollout_end(self) -> None:
        if self.average.on_host:  # on an accelerator n_averaged would sync: logged at evaluation
            self.logger.record("swa/n_averaged", self.average.n_averaged)
        self.logger.record("swa/lr", self._clock.param_groups[0]["lr"])

    def _on_training_end(self) -> None:
        if self.posthoc_average is not None and self.num_timesteps >= self._posthoc_total:
            self._save_posthoc_point()  # the end of the run is always a saved time
        if self._hook is not None:
            self._hook.remove()
            self._hook = self._clock = None
        if self._user_schedule is not None:
            self.model.lr_schedule = self._user_schedule
        if self._vec_eval_env is not None:
            # The last update comes after the last _on_step: evaluate the final weights too.
            if self.evaluations and self.evaluations[-1]["step"] == self.num_timesteps:
                self.evaluations.pop()
            self.evaluate()
            self.logger.dump(self.num_timesteps)
        if self.apply_at_end and self.has_snapshot:
            self.apply()

    # ------------------------------------------------------------------ evaluation
    def _play(self) -> tuple[list[float], list[int]]:
        self._vec_eval_env.seed(self.eval_seed)
        rewards, lengths = evaluate_policy(
            self.model,
            self._vec_eval_env,
            n_eval_episodes=self.n_eval_episodes,
            deterministic=self.deterministic,
            return_episode_rewards=True,
            warn=False,
        )
        return rewards, lengths

    def evaluate(self) -> dict[str, float]:
        """Evaluate the online and (once it exists) the averaged policy on the same episodes; log and return the row."""
        row: dict[str, float] = {"step": int(self.num_timesteps)}
        sync_obs_statistics(self.model.get_env(), self._vec_eval_env)  # once: every policy sees the same statistics
        if all_finite(self.model.policy.parameters()):  # broken online weights cannot act (the averages skip them)
            rewards, lengths = self._play()
            row.update(online_mean_reward=float(np.mean(rewards)), online_std_reward=float(np.std(rewards)),
                       online_mean_ep_length=float(np.mean(lengths)))
        if self.has_snapshot:
            with self.average.swapped():
                rewards, lengths = self._play()
            row.update(swa_mean_reward=float(np.mean(rewards)), swa_std_reward=float(np.std(rewards)), swa_mean_ep_length=float(np.mean(lengths)))
            row.update(distance=self.average.distance(), n_averaged=self.average.n_averaged, skipped=self.average.n_skipped)
        for name, average in self.extra.items():
            if average.n_updates and average.n_averaged:
                with average.swapped():
                    rewards, lengths = self._play()
                row.update({f"{name}_mean_reward": float(np.mean(rewards)), f"{name}_std_reward": float(np.std(rewards)), f"{name}_mean_ep_length": float(np.mean(lengths))})
        if "online_mean_reward" in row:  # finite online weights
            row.update(self.probe.measure(self.model.policy, self.average if self.has_snapshot else None))
        for key, value in row.items():
            if key == "step":
                continue
            namespace = "swa" if key in ("distance", "n_averaged", "skipped", "agreement", "action_distance", "churn") else "eval"
            self.logger.record(f"{namespace}/{key}", value)
        self.evaluations.append(row)
        if self.verbose:
            swa = f", swa {row['swa_mean_reward']:.2f}" if "swa_mean_reward" in row else ""
            print(f"[rl_swa] step {row['step']}: online {row.get('online_mean_reward', float('nan')):.2f}{swa}")
        return row

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
            meta = {"parts": self.parts, "start_step": self.start_step, "update_every": self.update_every}
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
        return SWAPolicy.from_model(self.model, average, {"parts": self.parts, "average": name})

    def apply(self) -> None:
        """Write the averages into the model's live networks (``model.save()`` then stores them)."""
        if not self.has_snapshot:
            raise RuntimeError("SWACallback.apply: no snapshot yet, nothing to apply")
        self.average.copy_to(self.model.policy)

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {
            "version": CALLBACK_STATE_VERSION,
            "average": None if self.average is None else self.average.state_dict(),
            "phase_updates": self.phase_updates,
            "updates_seen": self.updates_seen,
            "extra": {name: average.state_dict() for name, average in self.extra.items()},
            "posthoc_average": None if self.posthoc_average is None else self.posthoc_average.state_dict(),
            "posthoc_power": [average.state_dict() for average in self.posthoc_power],
            "posthoc": list(self.posthoc),
            "next_eval": self._next_eval,
            "evaluations": list(self.evaluations),
            "probe": self.probe.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore after :meth:`init_callback` (the model must be set: the average's layout comes from it)."""
        if state.get("version") != CALLBACK_STATE_VERSION:
            raise ValueError(f"SWACallback state version {state.get('version')!r} is not supported (expected {CALLBACK_STATE_VERSION})")
        if state["average"] is not None:
            self.average.load_state_dict(state["average"])
        self.phase_updates = int(state["phase_updates"])
        self.updates_seen = int(state.get("updates_seen", 0))
        saved = state.get("extra", {})
        if sorted(saved) != sorted(self.extra):
            raise ValueError(f"SWACallback state holds averages {sorted(saved)}, this callback {sorted(self.extra)}")
        for name, average in self.extra.items():
            average.load_state_dict(saved[name])
        if self.posthoc_average is not None:
            if state.get("posthoc_average") is None:
                raise ValueError("SWACallback state holds no post-hoc average, this callback keeps one (posthoc_points > 0)")
            self.posthoc_average.load_state_dict(state["posthoc_average"])
            power = state.get("posthoc_power", [])
            if len(power) != len(self.posthoc_power):
                raise ValueError(f"SWACallback state holds {len(power)} post-hoc power EMAs, this callback {len(self.posthoc_power)} (posthoc_sigma_rels)")
            for average, saved in zip(self.posthoc_power, power):
                average.load_state_dict(saved)
            self.posthoc = list(state["posthoc"])
        self._next_eval = int(state["next_eval"])
        self.evaluations = list(state["evaluations"])
        self.probe.load_state_dict(state["probe"])


def _env_id(model) -> str | None:
    try:
        spec = model.get_env().envs[0].unwrapped.spec
        return spec.id if spec else None
    except (AttributeError, IndexError):
        return None
