"""``SWAEvaluation``: the online policy and every average of an ``SWACallback``, on the same episodes."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from rl_swa.averaging import all_finite
from rl_swa.diagnostics import ActionProbe
from rl_swa.normalization import normalized_eval_env, sync_obs_statistics
from rl_swa.overlay import add_overlay
from rl_swa.posthoc import normalizer_of, normalizer_state

DIAGNOSTICS = ("distance", "n_averaged", "skipped", "agreement", "action_distance", "churn")  # logged under swa/


def _bad(name: str, value, allowed: str) -> ValueError:
    return ValueError(f"SWAEvaluation: {name}={value!r} is not allowed; {allowed}")


def _count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise _bad(name, value, f"it must be an int >= {minimum}")
    return int(value)


def check_arguments(eval_freq: int = 10_000, n_eval_episodes: int = 5, eval_seed: int = 0, deterministic: bool = True) -> dict:
    """The evaluation's counts, validated (here only)."""
    return dict(
        eval_freq=_count("eval_freq", eval_freq, 1),
        n_eval_episodes=_count("n_eval_episodes", n_eval_episodes, 1),
        eval_seed=_count("eval_seed", eval_seed, 0),
        deterministic=bool(deterministic),
    )


class SWAEvaluation(BaseCallback):
    """Evaluate the online weights and each average of ``swa`` every ``eval_freq`` env steps and
    once more when training ends (after the last update), all on the same episodes.

    Rows go to :attr:`evaluations` and to the logger (``eval/<name>_mean_reward``, diagnostics
    under ``swa/``). A VecNormalize training env lends its observation statistics (synced at each
    evaluation, as SB3's ``EvalCallback`` does). List it after ``swa`` in a ``CallbackList``, or
    let ``SWACallback(eval_env=...)`` build it.

    :param eval_env: an env id, a gymnasium env or a VecEnv.
    :param eval_freq: env steps between evaluations (unlike SB3's EvalCallback: not callback calls).
    :param n_eval_episodes: episodes per policy; the env is reseeded with ``eval_seed`` before each policy.

    It also keeps what SB3's ``EvalCallback(best_model_save_path=...)`` would deploy: a host copy
    of the online policy at its best evaluation so far (:attr:`best`; ``EvalCallback``'s rule: a
    mean strictly above every earlier one), with the observation statistics of that time.
    """

    def __init__(
        self,
        swa,
        eval_env: str | gym.Env | VecEnv,
        eval_freq: int = 10_000,
        n_eval_episodes: int = 5,
        eval_seed: int = 0,
        deterministic: bool = True,
        verbose: int = 0,
    ):
        super().__init__(verbose)
        if not isinstance(eval_env, (str, gym.Env, VecEnv)):
            raise _bad("eval_env", eval_env, "use an env id, a gymnasium.Env or a VecEnv")
        self.swa, self.eval_env = swa, eval_env
        args = check_arguments(eval_freq, n_eval_episodes, eval_seed, deterministic)
        self.eval_freq, self.n_eval_episodes, self.eval_seed, self.deterministic = args.values()
        self.evaluations: list[dict[str, float]] = []
        # {"step", "mean_reward", "state": policy state_dict on the host, "obs_normalizer"} or None
        self.best: dict[str, Any] | None = None
        self.probe = ActionProbe()  # agreement and churn on visited states
        self._next_eval = self.eval_freq
        self._env: VecEnv | None = None

    def _init_callback(self) -> None:
        if self._env is None:
            env = self.eval_env
            if isinstance(env, str):
                env = make_vec_env(env, n_envs=1, seed=self.eval_seed)
            elif not isinstance(env, VecEnv):
                env = DummyVecEnv([lambda: Monitor(self.eval_env)])
            self._env = normalized_eval_env(self.model.get_env(), env)

    def _on_training_start(self) -> None:
        add_overlay(self.logger, list(self.swa.averages))  # the TensorBoard charts: margins first

    def due(self) -> bool:
        """A periodic evaluation now (the last one comes at training end, after the last update)."""
        return self.num_timesteps >= self._next_eval and self.num_timesteps < self.model._total_timesteps

    def _on_step(self) -> bool:
        if not self.probe.full:
            self.probe.add(self.locals.get("new_obs"))
        if self.num_timesteps >= self._next_eval:
            due = self.due()
            self._next_eval = (self.num_timesteps // self.eval_freq + 1) * self.eval_freq
            if due:
                self.evaluate()
        return True

    def _on_training_end(self) -> None:
        if self.evaluations and self.evaluations[-1]["step"] == self.num_timesteps:
            self.evaluations.pop()
        self.evaluate()

    def _play(self, prefix: str, row: dict) -> None:
        self._env.seed(self.eval_seed)
        rewards, lengths = evaluate_policy(
            self.model,
            self._env,
            n_eval_episodes=self.n_eval_episodes,
            deterministic=self.deterministic,
            return_episode_rewards=True,
            warn=False,
        )
        row.update(
            {
                f"{prefix}_mean_reward": float(np.mean(rewards)),
                f"{prefix}_std_reward": float(np.std(rewards)),
                f"{prefix}_mean_ep_length": float(np.mean(lengths)),
            }
        )

    def evaluate(self) -> dict[str, float]:
        """Evaluate the online and (once they exist) the averaged policies; log and return the row."""
        swa = self.swa
        row: dict[str, float] = {"step": int(self.num_timesteps)}
        sync_obs_statistics(self.model.get_env(), self._env)  # once: every policy sees the same statistics
        online = all_finite(self.model.policy.parameters())  # broken online weights cannot act (the averages skip them)
        if online:
            self._play("online", row)
            if self.best is None or row["online_mean_reward"] > self.best["mean_reward"]:
                self._keep_best(row)
        for name, average in swa.averages.items():
            if average.n_updates and average.n_averaged:
                with average.swapped():
                    self._play(name, row)
        if swa.has_snapshot:
            row.update(distance=swa.average.distance(), n_averaged=swa.average.n_averaged, skipped=swa.average.n_skipped)
        if online:
            row.update(self.probe.measure(self.model.policy, swa.average if swa.has_snapshot else None))
        for key, value in row.items():
            if key != "step":
                self.logger.record(f"{'swa' if key in DIAGNOSTICS else 'eval'}/{key}", value)
        if online:  # what a reader of TensorBoard wants to see: each average's margin over the online policy
            for name in swa.averages:
                if f"{name}_mean_reward" in row:
                    self.logger.record(f"eval/margin_{name}", row[f"{name}_mean_reward"] - row["online_mean_reward"])
        self.evaluations.append(row)
        # as SB3's EvalCallback: written now, with its step (SB3 writes only every log_interval
        # rollouts, and a later record of the same key would replace this one)
        self.logger.dump(self.num_timesteps)
        if self.verbose:
            shown = f", swa {row['swa_mean_reward']:.2f}" if "swa_mean_reward" in row else ""
            print(f"[rl_swa] step {row['step']}: online {row.get('online_mean_reward', float('nan')):.2f}{shown}")
        return row

    def _keep_best(self, row: dict) -> None:
        state = {name: t.detach().to("cpu", copy=True) for name, t in self.model.policy.state_dict().items()}
        normalizer = normalizer_state(self.model.get_env())
        self.best = {
            "step": row["step"],
            "mean_reward": row["online_mean_reward"],
            "state": state,
            "obs_normalizer": normalizer,
        }

    def best_policy(self):
        """The online policy of the best evaluation so far as an :class:`~rl_swa.SWAPolicy` (None before any)."""
        if self.best is None:
            return None
        from rl_swa.policy import SWAPolicy, copy_policy

        policy = copy_policy(self.model.policy)
        policy.load_state_dict(self.best["state"])
        meta = {"algorithm": type(self.model).__name__, "num_timesteps": self.best["step"], "weights": "best evaluated online"}
        meta["eval_mean_reward"] = self.best["mean_reward"]
        return SWAPolicy(policy, meta, normalizer_of(self.best["obs_normalizer"]))

    def state_dict(self) -> dict[str, Any]:
        return {
            "next_eval": self._next_eval,
            "evaluations": list(self.evaluations),
            "probe": self.probe.state_dict(),
            "best": self.best,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state.get("best")  # absent from checkpoints written before it was kept
        self._next_eval = int(state["next_eval"])
        self.evaluations = list(state["evaluations"])
        self.probe.load_state_dict(state["probe"])
