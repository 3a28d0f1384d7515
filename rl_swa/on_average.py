"""Run any SB3 callback on the averaged weights, e.g. ``EvalCallback`` with its best-model saving.

    swa = SWACallback(start=0.75)
    best = OnAverage(EvalCallback(eval_env, best_model_save_path="best_swa/", eval_freq=10_000), swa)
    model.learn(1_000_000, callback=CallbackList([swa, best]))

Each hook of the wrapped callback runs with the averages swapped into the model (no copy; the
online weights are restored exactly afterwards), so what it evaluates or saves is the average.
Before the first snapshot its steps are counted but not run.
"""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from rl_swa.callback import SWACallback


class OnAverage(BaseCallback):
    """:param callback: the SB3 callback to run on the averaged weights.
    :param swa: the :class:`SWACallback` that keeps the average (list it before this one).
    """

    def __init__(self, callback: BaseCallback, swa: SWACallback):
        super().__init__()
        if not isinstance(callback, BaseCallback) or not isinstance(swa, SWACallback):
            raise ValueError(
                "OnAverage(callback, swa): a stable_baselines3 BaseCallback and the SWACallback keeping the average"
            )
        self.callback, self.swa = callback, swa

    def _init_callback(self) -> None:
        self.callback.init_callback(self.model)

    def _on_training_start(self) -> None:
        self.callback.on_training_start(self.locals, self.globals)

    def update_child_locals(self, locals_: dict[str, Any]) -> None:
        self.callback.update_locals(locals_)

    def _on_step(self) -> bool:
        if not self.swa.has_snapshot:  # counted, not run: frequencies in calls (EvalCallback's eval_freq) keep their meaning
            self.callback.n_calls += 1
            self.callback.num_timesteps = self.model.num_timesteps
            return True
        with self.swa.average.swapped():
            return self.callback.on_step()

    def _on_training_end(self) -> None:
        if self.swa.has_snapshot:
            with self.swa.average.swapped():
                self.callback.on_training_end()
