import math
import pickle

import pytest
from stable_baselines3.common.utils import LinearSchedule

from rl_swa import AnnealSchedule, CyclicSchedule
from rl_swa.schedules import unwrap

TOTAL = 1000


def at(schedule, step):
    return schedule(1.0 - step / TOTAL)


def test_anneal_follows_base_then_anneals_then_holds():
    base = LinearSchedule(1e-3, 0.0, 1.0)
    s = AnnealSchedule(base, TOTAL, start_step=600, swa_lr=1e-4, anneal_steps=100, strategy="linear")
    assert at(s, 300) == pytest.approx(base(0.7))
    lr0 = base(0.4)
    assert at(s, 650) == pytest.approx(lr0 + (1e-4 - lr0) * 0.5)
    assert at(s, 700) == pytest.approx(1e-4)
    assert at(s, 999) == pytest.approx(1e-4)


def test_cos_anneal_midpoint_and_constant_switch():
    s = AnnealSchedule(lambda _: 1e-3, TOTAL, 500, 2e-4, anneal_steps=200, strategy="cos")
    assert at(s, 550) == pytest.approx(1e-3 + (2e-4 - 1e-3) * (1 - math.cos(math.pi / 4)) / 2)
    assert at(s, 600) == pytest.approx(6e-4)
    sharp = AnnealSchedule(lambda _: 1e-3, TOTAL, 500, 2e-4, anneal_steps=0)
    assert at(sharp, 500) == 1e-3 and at(sharp, 501) == 2e-4


def test_cyclic_matches_paper_formula():
    s = CyclicSchedule(lambda _: 1.0, TOTAL, start_step=100, lr_max=1e-3, lr_min=1e-4, cycle=4, steps_per_update=10)
    # update i at env step 100 + 10 i: t = ((i - 1) mod 4 + 1) / 4
    for i in range(1, 13):
        t = ((i - 1) % 4 + 1) / 4
        assert at(s, 100 + 10 * i) == pytest.approx((1 - t) * 1e-3 + t * 1e-4)
    assert at(s, 140) == pytest.approx(1e-4)  # cycle end = lr_min: snapshot point
    assert at(s, 100) == 1.0


def test_schedules_pickle_and_unwrap():
    base = LinearSchedule(1e-3, 0.0, 1.0)
    s = pickle.loads(pickle.dumps(CyclicSchedule(AnnealSchedule(base, TOTAL, 10, 1e-4), TOTAL, 10, 1e-3, 1e-4, 3)))
    assert at(s, 40) == pytest.approx(1e-4)
    assert isinstance(unwrap(s), LinearSchedule)
    assert "CyclicSchedule" in repr(s)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"swa_lr": -1.0}, "swa_lr"),
        ({"swa_lr": 1e-4, "strategy": "step"}, "strategy"),
        ({"swa_lr": 1e-4, "anneal_steps": -5}, "anneal_steps"),
    ],
)
def test_bad_schedule_arguments(kwargs, field):
    with pytest.raises(ValueError, match=field):
        AnnealSchedule(lambda _: 1e-3, TOTAL, 10, **kwargs)
