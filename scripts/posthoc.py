"""Choose the averaging window after training, on validation episodes, and report it on test episodes.

    python scripts/posthoc.py runs/<experiment>/<env>/baseline/seed0 [--val-episodes 10] [--test-episodes 10]

Needs a run trained with ``swa.posthoc_points > 0`` (its ``posthoc.pt`` holds the running equal
average at evenly spaced times). Every window [t_a, t_b] between two saved times is rebuilt
exactly (``rl_swa.averaging.window_average``) and scored on validation episodes; the best window
is then scored on test episodes next to the online policy and the run's fixed-start average.

Validation and test episodes are seeded from disjoint ranges (``episode_seeds``): the selection
code only ever receives validation seeds, so selecting on test episodes is impossible.
Writes ``posthoc.json`` in the run directory and prints it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch
import yaml

from agents.config import ConfigError, parse_config
from scripts._cli import guarded

VALIDATION_OFFSET = 1_000_000  # validation seeds: eval seed + 1e6 + i; test seeds: eval seed + i


def episode_seeds(split: str, base: int, n: int) -> list[int]:
    if split == "test":
        return [base + i for i in range(n)]
    if split == "validation":
        return [base + VALIDATION_OFFSET + i for i in range(n)]
    raise ValueError(f"split={split!r} is not supported; allowed: test, validation")


def play(policy, cfg, env_id: str, seeds: list[int], deterministic: bool) -> float:
    """Mean return of one episode per seed (each episode's env reset with its own seed)."""
    from stable_baselines3.common.evaluation import evaluate_policy

    from agents.envs import make_env

    returns = []
    for seed in seeds:
        env = make_env(cfg, env_id, 1, seed, training=False)
        rewards, _ = evaluate_policy(policy, env, n_eval_episodes=1, deterministic=deterministic, return_episode_rewards=True, warn=False)
        env.close()
        returns.append(rewards[0])
    return float(np.mean(returns))


def windows(points: list[dict]) -> list[tuple[dict | None, dict]]:
    starts = [None, *points]
    return [(a, b) for i, a in enumerate(starts) for b in points[i:] if a is None or b["n"] > a["n"]]


def select_window(candidates, score_on_validation) -> tuple[int, list[float]]:
    """Index of the best candidate by validation score (the only scores this function sees)."""
    scores = [score_on_validation(c) for c in candidates]
    return int(np.argmax(scores)), scores


@guarded
def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir")
    p.add_argument("--val-episodes", type=int, default=10)
    p.add_argument("--test-episodes", type=int, default=10)
    args = p.parse_args()
    from agents.builders import ALGORITHMS
    from rl_swa import SWAPolicy
    from rl_swa.averaging import window_average

    torch.set_num_threads(1)
    run = Path(args.run_dir)
    for need in ("config.yaml", "model.zip", "posthoc.pt"):
        if not (run / need).is_file():
            raise ConfigError(f"{run}: no {need} (train with --set swa.posthoc_points=10 and let the run finish)")
    meta = yaml.safe_load((run / "config.yaml").read_text())
    cfg = parse_config(meta["config"], str(run / "config.yaml"))
    env_id, det, base = meta["env"], cfg.eval.deterministic, cfg.eval.seed
    saved = torch.load(run / "posthoc.pt", weights_only=False)
    points = saved["points"]
    model = ALGORITHMS[cfg.algo].load(run / "model.zip", device="cpu")
    template = model.policy
    val_seeds = episode_seeds("validation", base, args.val_episodes)
    test_seeds = episode_seeds("test", base, args.test_episodes)
    assert not set(val_seeds) & set(test_seeds)

    def policy_with(weights: dict) -> SWAPolicy:
        policy = type(template)(**template._get_constructor_parameters())
        policy.load_state_dict(template.state_dict())
        state = policy.state_dict()
        state.update(weights)
        policy.load_state_dict(state)
        return SWAPolicy(policy)

    candidates = windows(points)
    best, val_scores = select_window(candidates, lambda c: play(policy_with(window_average(c[1], c[0])), cfg, env_id, val_seeds, det))
    a, b = candidates[best]
    chosen = {"from_step": 0 if a is None else a["step"], "to_step": b["step"], "snapshots": b["n"] - (0 if a is None else a["n"])}
    result = {
        "run": str(run), "env": env_id, "val_seeds": [val_seeds[0], val_seeds[-1]], "test_seeds": [test_seeds[0], test_seeds[-1]],
        "saved_points": [(p["step"], p["n"]) for p in points], "windows_tried": len(candidates),
        "chosen_window": chosen, "chosen_validation": val_scores[best],
        "test_online": play(model, cfg, env_id, test_seeds, det),
        "test_posthoc": play(policy_with(window_average(b, a)), cfg, env_id, test_seeds, det),
    }
    if (run / "swa_policy.zip").exists():
        result["test_fixed_start"] = play(SWAPolicy.load(run / "swa_policy.zip", device="cpu"), cfg, env_id, test_seeds, det)
    (run / "posthoc.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    main()
