"""Acting with the average and resetting to it (rl_swa.use_average)."""

import pytest
import torch
from stable_baselines3 import A2C, DDPG
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from rl_swa import ActWithAverage, ResetToAverage, SWACallback


class Witness(BaseCallback):
    """At every env step: are the policy's weights the average's?"""

    def __init__(self, swa, name="swa"):
        super().__init__()
        self.swa, self.name, self.seen = swa, name, []

    def _on_step(self):
        average = self.swa.average if self.name == "swa" else self.swa.extra[self.name]
        if average.n_updates and average.n_averaged:
            named = dict(self.model.policy.named_parameters())
            self.seen.append(all(torch.equal(named[n], t) for n, t in average.averages.items()))
        return True


@pytest.mark.parametrize("algo", ["a2c", "ddpg"])
def test_rollouts_act_with_the_average_and_train_the_online_weights(algo):
    def model():
        if algo == "a2c":
            return A2C("MlpPolicy", "CartPole-v1", n_steps=5, seed=0, device="cpu", policy_kwargs=dict(net_arch=[8]))
        return DDPG(
            "MlpPolicy",
            "Pendulum-v1",
            learning_starts=50,
            batch_size=16,
            seed=0,
            device="cpu",
            policy_kwargs=dict(net_arch=[8]),
        )

    acting = model()
    swa = SWACallback(start=0.3, averages=["ema@0.9@0"])
    witness = Witness(swa, "ema_0.9_from_0")
    acting.learn(300, callback=CallbackList([swa, ActWithAverage(swa, "ema_0.9_from_0"), witness]))
    assert witness.seen and all(witness.seen)  # every step of every rollout acted with the EMA
    live = dict(acting.policy.named_parameters())
    assert any(not torch.equal(live[n], t) for n, t in swa.extra["ema_0.9_from_0"].averages.items())  # online weights trained
    plain = model()
    plain.learn(300, callback=SWACallback(start=0.3, averages=["ema@0.9@0"]))
    assert any(not torch.equal(p, q) for p, q in zip(plain.policy.parameters(), acting.policy.parameters()))


@pytest.mark.parametrize("parts, optimizer", [("both", "keep"), ("actor", "reset")])
def test_reset_to_the_average_every_n_updates(parts, optimizer):
    model = A2C("MlpPolicy", "CartPole-v1", n_steps=5, seed=0, device="cpu", policy_kwargs=dict(net_arch=[8]))
    swa = SWACallback(start=0.5)
    reset = ResetToAverage(swa, every=10, parts=parts, optimizer=optimizer)
    model.learn(500, callback=CallbackList([swa, reset]))  # 100 updates; averaging from update 50: resets at 60, 70, ..., 100
    assert swa.updates_seen == 100 and reset.resets == 5
    live = dict(model.policy.named_parameters())
    averages = swa.average.averages
    actor = [n for n in averages if n.startswith(("mlp_extractor.policy_net", "action_net"))]
    critic = [n for n in averages if n.startswith(("mlp_extractor.value_net", "value_net"))]
    assert all(torch.equal(live[n], averages[n]) for n in actor)  # the last update was a reset
    assert all(torch.equal(live[n], averages[n]) for n in critic) == (parts == "both")
    state = model.policy.optimizer.state
    assert all((live[n] in state) == (optimizer == "keep") for n in actor)
    assert all(live[n] in state for n in critic)


def test_bad_arguments_name_the_field():
    swa = SWACallback()
    for kwargs, field in [
        ({"every": 0}, "every"),
        ({"every": 5, "parts": "trunk"}, "parts"),
        ({"every": 5, "optimizer": "zero"}, "optimizer"),
        ({"every": 5, "average": "ema_0.9_from_0"}, "average"),
    ]:
        with pytest.raises(ValueError, match=field):
            ResetToAverage(swa, **kwargs)
    with pytest.raises(ValueError, match="average"):
        ActWithAverage(swa, "nope")
    with pytest.raises(ValueError, match="SWACallback"):
        ActWithAverage(object())
