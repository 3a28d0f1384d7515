"""Post-hoc scoring: a finished run's policy on N episodes one at a time vs all together (``play``).

    python benchmarks/bench_play.py <run dir> [<run dir> ...] [--episodes 10] [--json out.json]

The run's own evaluation settings (``eval.deterministic``); the validation seeds of
``scripts/posthoc.py``. ``together`` steps one VecEnv of all episodes with one batched forward
pass per step (``rl_swa.deploy.play_episodes``: an env whose episode has ended is no longer
stepped); ``stepped`` is the same with SB3's ``evaluate_policy`` as it is, which steps every env
until the longest episode ends (the same returns). The time of one policy's episodes is what
``posthoc.py`` and ``rl-swa select`` pay per candidate and round.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from _machine import write_json
from stable_baselines3.common.evaluation import evaluate_policy

from agents.cli.posthoc import _load_run, episode_seeds, play
from agents.envs import make_env


def stepped(policy, cfg, env_id: str, seeds: list[int], deterministic: bool) -> float:
    """``play(..., together=True)`` through ``evaluate_policy`` alone: ended episodes stepped on."""
    env = make_env(cfg, env_id, len(seeds), seeds[0], training=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seeds[0])
        rewards, _ = evaluate_policy(policy, env, len(seeds), deterministic, return_episode_rewards=True, warn=False)
    env.close()
    return float(np.mean(rewards))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--json")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = []
    for run in args.runs:
        cfg, env_id, _, online, _ = _load_run(Path(run))
        seeds = episode_seeds("validation", cfg.eval.seed, args.episodes)
        row = {"run": run, "env": env_id, "deterministic": cfg.eval.deterministic, "episodes": args.episodes}
        how_args = (online, cfg, env_id, seeds, cfg.eval.deterministic)
        for key, how, kw in (("alone", play, {}), ("stepped", stepped, {}), ("together", play, {"together": True})):
            start = time.perf_counter()
            score = how(*how_args, **kw)
            row |= {f"{key}_s": round(time.perf_counter() - start, 2), f"{key}_score": round(score, 2)}
        row["speedup"] = round(row["alone_s"] / row["together_s"], 2)
        row["speedup_over_stepped"] = round(row["stepped_s"] / row["together_s"], 2)
        print(row)
        rows.append(row)
    if args.json:
        write_json(args.json, {"rows": rows})


if __name__ == "__main__":
    main()
