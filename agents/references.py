"""Reference scores the report sets runs beside: random and human play on Atari (for human-normalized
scores), random actions on MuJoCo, and the published A2C and TD3 scores."""

from __future__ import annotations

import numpy as np

# Atari: human-normalized scores, (random, human) per game (Mnih et al. 2015 / Badia et al. 2020).
ATARI_REFERENCE = {
    "Breakout": (1.7, 30.5),
    "Qbert": (163.9, 13455.0),
    "SpaceInvaders": (148.0, 1668.7),
    "Seaquest": (68.4, 42054.7),
    "BeamRider": (363.9, 16926.5),
    "CrazyClimber": (10780.5, 35829.4),
    "Pong": (-20.7, 14.6),
}
# Atari: uniform random actions under this project's evaluation (configs/atari/a2c.yaml's eval env: sticky
# actions, no-op reset, raw returns; env seed 10000, action seed 0, 20 episodes; command in
# docs/results/campaign.md). Whether a baseline left random play is judged against these: the
# literature's random scores above come from another protocol (no sticky actions, 30 no-op starts).
ATARI_RANDOM_HERE = {"Breakout": 0.9, "Qbert": 173.8, "SpaceInvaders": 136.5, "Pong": -20.3}
# MuJoCo: uniform random actions (measured: 10 episodes, reset seeds 10000-10009, the evaluation's seeds;
# command in docs/results/campaign.md) and RL Zoo's TD3 at 1M env steps (one run; no DDPG MuJoCo v5 scores are published).
MUJOCO_REFERENCE = {
    "HalfCheetah": {"random": -271.6, "rl_zoo_td3_1M": 9656},
    "Hopper": {"random": 28.9, "rl_zoo_td3_1M": 3606},
    "Walker2d": {"random": 5.3, "rl_zoo_td3_1M": 4718},
}
# Published A2C scores to set ours beside: RL Zoo (one run, 10M env steps = 40M frames) and the SWA
# paper (Nikishin et al. 2018; A2C vs A2C+SWA, mean ± spread, frames and seeds unpublished).
PUBLISHED = {
    "Breakout": {"rl_zoo_a2c_10M": 279.8, "paper_a2c": "522 ± 34", "paper_a2c_swa": "703 ± 60"},
    "Qbert": {"rl_zoo_a2c_10M": 3882.3, "paper_a2c": "18777 ± 778", "paper_a2c_swa": "21272 ± 655"},
    "SpaceInvaders": {"rl_zoo_a2c_10M": 627.2, "paper_a2c": "7727 ± 1121", "paper_a2c_swa": "21676 ± 8897"},
    "Seaquest": {"rl_zoo_a2c_10M": 1721.5, "paper_a2c": "1779 ± 4", "paper_a2c_swa": "1795 ± 4"},
    "BeamRider": {"rl_zoo_a2c_10M": 2890.3, "paper_a2c": "9999 ± 402", "paper_a2c_swa": "11321 ± 1065"},
    "CrazyClimber": {"paper_a2c": "147030 ± 10239", "paper_a2c_swa": "139752 ± 11618"},
    "Pong": {"rl_zoo_a2c_10M": 17.3},
}


def game_of(env_id: str) -> str:
    """``ALE/Pong-v5``, ``PongNoFrameskip-v4`` -> ``Pong``; ``Hopper-v5`` -> ``Hopper``."""
    return env_id.split("/")[-1].split("-")[0].replace("NoFrameskip", "")


def normalizer(env_id: str):
    game = game_of(env_id)
    if game in ATARI_REFERENCE:
        lo, hi = ATARI_REFERENCE[game]
        return (lambda x: (np.asarray(x) - lo) / (hi - lo)), "human-normalized"
    return None, None


def random_score(env_id: str) -> float | None:
    """The score of random play where the report knows it: measured under this project's evaluation
    (the campaign's Atari games, the MuJoCo envs), else the literature's (other Atari games)."""
    game = game_of(env_id)
    if game in ATARI_RANDOM_HERE:
        return ATARI_RANDOM_HERE[game]
    if game in ATARI_REFERENCE:
        return ATARI_REFERENCE[game][0]
    return MUJOCO_REFERENCE[game]["random"] if game in MUJOCO_REFERENCE else None
