"""Training envs pickled whole, Atari and MuJoCo included, so that a resumed run continues its episodes.

Three objects do not pickle as they are. ``ale_py``'s ``AtariEnv`` and gymnasium's MuJoCo envs are
EzPickle objects: pickling keeps only their constructor arguments, so the copy is a fresh env, its
game or physics back at the start and its RNG seeded anew (a resumed or forked run would not equal
its twin). SB3's ``VecEnvWrapper`` caches its class's attributes, ABC internals included. A pickler
of our own reduces them to plain state: the constructor arguments plus the emulator's full state
(``cloneState(include_rng=True)``) or the whole ``MjData`` (copied back with ``mj_copyData``), and
the env's RNG; the wrapper's ``__dict__`` without the cache.
"""

from __future__ import annotations

import inspect
import io

import cloudpickle
from stable_baselines3.common.vec_env.base_vec_env import VecEnvWrapper


def _rebuild_atari(cls, args, kwargs, ale_state, np_random, np_random_seed):
    env = cls(*args, **kwargs)
    env.ale.restoreState(ale_state)
    env._np_random, env._np_random_seed = np_random, np_random_seed
    return env


def _rebuild_mujoco(cls, args, kwargs, data, np_random, np_random_seed):
    import mujoco

    env = cls(*args, **kwargs)
    mujoco.mj_copyData(env.data, env.model, data)
    env._np_random, env._np_random_seed = np_random, np_random_seed
    return env


def _rebuild_vec_wrapper(cls, state):
    wrapper = cls.__new__(cls)
    wrapper.__dict__.update(state)
    wrapper.class_attributes = dict(inspect.getmembers(cls))
    return wrapper


class _Pickler(cloudpickle.Pickler):
    def reducer_override(self, obj):
        if isinstance(obj, VecEnvWrapper):
            return _rebuild_vec_wrapper, (type(obj), {k: v for k, v in obj.__dict__.items() if k != "class_attributes"})
        if type(obj).__module__ == "ale_py.env" and hasattr(obj, "ale"):
            return _rebuild_atari, (
                type(obj),
                obj._ezpickle_args,
                obj._ezpickle_kwargs,
                obj.ale.cloneState(include_rng=True),
                obj._np_random,
                getattr(obj, "_np_random_seed", None),
            )
        if type(getattr(obj, "data", None)).__name__ == "MjData" and hasattr(obj, "_ezpickle_args"):
            return _rebuild_mujoco, (
                type(obj),
                obj._ezpickle_args,
                obj._ezpickle_kwargs,
                obj.data,
                obj._np_random,
                getattr(obj, "_np_random_seed", None),
            )
        return super().reducer_override(obj)


def dumps(env) -> bytes:
    buf = io.BytesIO()
    _Pickler(buf).dump(env)
    return buf.getvalue()
