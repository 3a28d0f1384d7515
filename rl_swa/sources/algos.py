"""Algorithm classes by RL Zoo's names, and the check that a model fits the env it will play."""

from __future__ import annotations

from stable_baselines3 import A2C, DDPG, DQN, PPO, SAC, TD3

from rl_swa.sources.zips import SourceError

SB3 = {"a2c": A2C, "ppo": PPO, "ddpg": DDPG, "td3": TD3, "sac": SAC, "dqn": DQN}


def algo_class(name: str) -> type:
    """The class of ``name`` (SB3's, or sb3-contrib's as RL Zoo names them when it is installed)."""
    known = dict(SB3)
    try:
        from rl_zoo3 import ALGOS  # RL Zoo's table: SB3 and sb3-contrib

        known.update(ALGOS)
    except ImportError:
        pass
    cls = known.get(name.lower())
    if cls is None:
        raise SourceError(f"--algo: {name!r} is not known; allowed: {', '.join(sorted(known))}")
    return cls


def same_spaces(obs, act, want_obs, want_act) -> bool:
    """The env's spaces are the policy's (an image may be channel-last where the policy's is channel-first)."""
    shapes = getattr(obs, "shape", None), getattr(want_obs, "shape", None)
    same_obs = obs == want_obs or (None not in shapes and sorted(shapes[0]) == sorted(shapes[1]))
    return same_obs and act == want_act


def check_env(make, model, env_id: str, source=None) -> None:
    """Refuse, in one line, an env whose observations or actions are not the model's."""
    try:
        env = make(1, 0)
    except Exception as exc:  # gymnasium raises several kinds for an unknown or unmakeable id
        raise SourceError(f"env {env_id!r}: cannot be made here ({type(exc).__name__}: {exc})".replace("\n", " ")) from None
    try:
        obs, act = env.observation_space, env.action_space
    finally:
        env.close()
    want_obs = model.observation_space
    if not same_spaces(obs, act, want_obs, model.action_space):
        raise SourceError(
            f"env {env_id!r}: its spaces (observations {obs}, actions {act}) are not those of "
            f"{source or 'the model'} ({want_obs}, {model.action_space}); is it the env the model was trained on?"
        )
