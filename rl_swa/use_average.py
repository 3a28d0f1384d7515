"""Putting the average to work during training: acting with it, and resetting the online weights to it.

Both compose with :class:`rl_swa.SWACallback` (which keeps the averages) and go after it, and
after any checkpointing callback, in a ``CallbackList``::

    swa = SWACallback(start=0.1, averages=["ema@0.995@0"])
    model.learn(n, callback=CallbackList([swa, ActWithAverage(swa, "ema_0.995")]))
    model.learn(n, callback=CallbackList([swa, ResetToAverage(swa, every=1000)]))

**Acting with the average** (BBF, Schwarzer et al. 2023, collects with its EMA network): during
each rollout the policy holds the averaged weights (swapped in, no copy); ``train()`` runs on the
online weights. Off-policy (DDPG, TD3, SAC, DQN) this needs no correction: the replay buffer
holds any behaviour policy's data. On-policy A2C computes its policy gradient from data of the
averaged policy with the online policy's log-probabilities and no importance weight: a biased
estimate, ignored here as BBF ignores it for a value-based agent, and small while the two stay
close (``swa/agreement`` measures it). PPO corrects it by itself: the rollout's stored
log-probabilities are the averaged policy's, so its clipped ratio is the importance weight.

**Resetting to the average** (Hare & Tortoise, Lee et al. 2024; Switch EMA; Elastic Reset):
right after every ``every``-th gradient update the online weights of ``parts`` are set to the
average. The
optimizer state is kept by default: Adam's moments estimate the gradient's scale, which a jump
to a nearby point barely changes, while clearing them restarts Adam's bias correction with
large first steps. ``optimizer="reset"`` clears the state of the reset tensors instead.
"""

from __future__ import annotations

import contextlib

import torch
from stable_baselines3.common.callbacks import BaseCallback

from rl_swa.adapters import PARTS, clock_optimizer, select_tensors
from rl_swa.averaging import WeightAverage
from rl_swa.callback import SWACallback

OPTIMIZER_STATE = ("keep", "reset")


def _check_average(who: str, swa, average: str) -> None:
    if not isinstance(swa, SWACallback):
        raise ValueError(f"{who}(swa, ...): swa must be the SWACallback keeping the averages")
    names = list(swa.averages) if swa.average is not None else ["swa", *(a.name for a in swa.config.averages)]
    if average not in names:
        raise ValueError(f"average={average!r} is not kept by this SWACallback; allowed: {', '.join(names)}")


def _average_of(swa: SWACallback, name: str) -> WeightAverage | None:
    return swa.average if name == "swa" else swa.extra.get(name)


def _ready(average: WeightAverage | None) -> bool:
    return average is not None and average.n_updates > 0 and average.n_averaged > 0


class ActWithAverage(BaseCallback):
    """:param swa: the SWACallback keeping the averages.
    :param average: ``"swa"`` (the main average) or the name of one of its further averages
        (``"ema_0.995"``, ``"swa_0.5"``). Before its first snapshot the online weights act.
    """

    def __init__(self, swa: SWACallback, average: str = "swa"):
        super().__init__()
        _check_average("ActWithAverage", swa, average)
        self.swa, self.name = swa, average
        self._swap: contextlib.ExitStack | None = None

    def _on_rollout_start(self) -> None:
        average = _average_of(self.swa, self.name)
        if _ready(average):
            self._swap = contextlib.ExitStack()
            self._swap.enter_context(average.swapped())

    def _on_rollout_end(self) -> None:  # before train(): the online weights are back
        if self._swap is not None:
            self._swap.close()
            self._swap = None

    def _on_training_end(self) -> None:
        self._on_rollout_end()

    def _on_step(self) -> bool:
        return True


class ResetToAverage(BaseCallback):
    """:param swa: the SWACallback keeping the average.
    :param every: reset right after every ``every``-th gradient update (as ``swa`` counts them), once
        the average holds a snapshot. A function of the update count alone: a resumed run resets
        where its uninterrupted twin does.
    :param parts: ``"both"``, ``"actor"`` or ``"critic"`` (of the tensors the average holds).
    :param average: ``"swa"`` or the name of a further average of ``swa``.
    :param optimizer: ``"keep"`` the optimizer state (default) or ``"reset"`` it for the reset tensors.
    """

    def __init__(self, swa: SWACallback, every: int, parts: str = "both", average: str = "swa", optimizer: str = "keep"):
        super().__init__()
        _check_average("ResetToAverage", swa, average)
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every={every!r} is not allowed; use an int >= 1 (gradient updates)")
        if parts not in PARTS:
            raise ValueError(f"parts={parts!r} is not supported; allowed: {', '.join(PARTS)}")
        if optimizer not in OPTIMIZER_STATE:
            raise ValueError(f"optimizer={optimizer!r} is not supported; allowed: {', '.join(OPTIMIZER_STATE)}")
        self.swa, self.every, self.parts, self.name, self.optimizer = swa, every, parts, average, optimizer
        self.resets = 0
        self._hook = None

    def _on_training_start(self) -> None:
        # after the SWACallback's hook (registered at its own training start): the snapshot comes first
        self._hook = clock_optimizer(self.model).register_step_post_hook(self._after_update)

    def _on_training_end(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    @torch.no_grad()
    def _after_update(self, optimizer, args, kwargs) -> None:
        average = _average_of(self.swa, self.name)
        if self.swa.updates_seen % self.every or not _ready(average):
            return
        chosen = select_tensors(self.model, self.parts)
        averages = average.averages
        pairs = [(chosen[n], averages[n]) for n in average.names if n in chosen]
        torch._foreach_copy_([live for live, _ in pairs], [avg for _, avg in pairs])
        if self.optimizer == "reset":
            reset = {id(live) for live, _ in pairs}
            for opt in _optimizers(self.model):
                for param in [q for q in opt.state if id(q) in reset]:
                    del opt.state[param]
        self.resets += 1

    def _on_step(self) -> bool:
        return True


def _optimizers(model) -> list[torch.optim.Optimizer]:
    found = {
        id(m.optimizer): m.optimizer
        for m in model.policy.modules()
        if isinstance(getattr(m, "optimizer", None), torch.optim.Optimizer)
    }
    return list(found.values())
