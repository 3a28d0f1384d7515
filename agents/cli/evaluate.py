"""Evaluate a saved SWAPolicy or SB3 model for N episodes.

    python scripts/evaluate.py runs/<exp>/<env>/swa/seed0/swa_policy.safetensors --episodes 10
    python scripts/evaluate.py runs/<exp>/<env>/swa/seed0/model.zip --trusted --algo a2c --env CartPole-v1
    python scripts/evaluate.py swa_policy.safetensors --config configs/atari/a2c.yaml --env ALE/Pong-v5 --video videos/

With ``--config`` the env is built with the config's wrappers (needed for Atari). Policy files
(``.safetensors``) load without running stored code; an SB3 model zip unpickles, so it needs
``--trusted``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agents.cli._cli import SEED_MAX, Parser, guarded, int_in  # first: signals during start-up

# isort: split
import numpy as np  # noqa: E402  (after the handlers)

from agents.config import ConfigError, load_config


def load_agent(path: Path, algo: str | None, trusted: bool):
    """An SWAPolicy (``.safetensors``: nothing unpickled), or with ``trusted`` an SB3 model zip of ``algo``."""
    from agents.builders import ALGORITHMS
    from rl_swa import SWAPolicy

    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        try:
            return SWAPolicy.load(path)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if not trusted:
        raise ConfigError(
            f"{path}: an SB3 model file unpickles Python objects when loaded (it can run code); "
            "pass --trusted for a file you made, or evaluate policy.safetensors / swa_policy.safetensors"
        )
    if algo not in ALGORITHMS:
        raise ConfigError(f"--algo: {algo!r} is not supported for an SB3 model file; allowed: {', '.join(ALGORITHMS)}")
    try:
        return ALGORITHMS[algo].load(path, device="auto")
    except Exception as exc:  # SB3 raises many types for a damaged zip or another algorithm's file
        raise ConfigError(f"{path}: cannot be loaded as {algo} ({type(exc).__name__}: {exc})".replace("\n", " ")) from None


def _env_for(agent, env_id: str, args: argparse.Namespace):
    """The evaluation env (the config's wrappers, or gymnasium's env), checked against the policy's spaces."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecVideoRecorder

    if args.config:
        from agents.envs import make_env

        env = make_env(load_config(args.config), env_id, 1, args.seed, training=False)
    else:
        import gymnasium as gym

        if env_id not in gym.registry:
            raise ConfigError(f"--env: {env_id!r} is not a registered gymnasium env id (for Atari pass --config)")
        env = make_vec_env(env_id, n_envs=1, seed=args.seed, env_kwargs={"render_mode": "rgb_array"} if args.video else None)
    for what in ("observation_space", "action_space"):
        if getattr(agent, what) != getattr(env, what):
            env.close()
            raise ConfigError(f"--env: {env_id}'s {what} is {getattr(env, what)}, the policy's is {getattr(agent, what)}")
    if args.video:
        try:
            import moviepy  # noqa: F401  (VecVideoRecorder writes mp4 through it)
        except ImportError:
            raise ConfigError("--video: needs moviepy; pip install moviepy") from None
        env = VecVideoRecorder(env, args.video, record_video_trigger=lambda step: step == 0, video_length=100_000)
    return env


@guarded
def main() -> int:
    p = Parser(description=__doc__)
    p.add_argument("path", help="swa_policy.safetensors / policy.safetensors, or an SB3 model.zip with --trusted")
    p.add_argument("--trusted", action="store_true", help="allow an SB3 model zip (loading it unpickles: files you made only)")
    p.add_argument("--algo", default=None, help="for SB3 model files: a2c or ddpg")
    p.add_argument("--env", default=None, help="env id (default: the one recorded in the SWAPolicy)")
    p.add_argument("--config", default=None, help="build the env with this config's wrappers")
    p.add_argument("--episodes", type=int_in(1, 10**5), default=10)
    p.add_argument("--seed", type=int_in(0, SEED_MAX), default=10_000)
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of the deterministic ones")
    p.add_argument("--video", default=None, metavar="DIR", help="record videos of the episodes here")
    args = p.parse_args()
    agent = load_agent(Path(args.path), args.algo, args.trusted)
    env_id = args.env or getattr(agent, "metadata", {}).get("env_id")
    if not env_id:
        raise ConfigError("--env: no env id recorded in the file; pass --env")

    from stable_baselines3.common.evaluation import evaluate_policy

    env = _env_for(agent, env_id, args)
    rewards, lengths = evaluate_policy(
        agent, env, n_eval_episodes=args.episodes, deterministic=not args.stochastic, return_episode_rewards=True, warn=False
    )
    env.close()
    print(
        json.dumps(
            {
                "path": args.path,
                "env": env_id,
                "episodes": args.episodes,
                "deterministic": not args.stochastic,
                "mean_reward": float(np.mean(rewards)),
                "std_reward": float(np.std(rewards)),
                "mean_length": float(np.mean(lengths)),
                "rewards": [float(r) for r in rewards],
            }
        )
    )
    return 0


if __name__ == "__main__":
    main()
