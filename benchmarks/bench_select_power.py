"""The decision rule of ``rl-swa select`` on known return distributions: false deploys, power, episodes.

    python benchmarks/bench_select_power.py [--reps 600] [--episodes 200] [--rules fixed sequential] [--json out.json]
        [--try NAME=ALLOCATION:STAGES:FUTILITY ...]   # further rules, e.g. flat4=flat:4:none halving3=halving:3:-0.5
        [--start 0] [--scenarios "all equal" ...]       # further draws of some scenarios

Every rule of ``rl_swa.selection.RULES`` on the same draws (paired).
16 candidates, the default first; a candidate's return on episode seed s is mean + shared(s) +
noise, the shared part N(0, 2) (the episode's difficulty, common to all: paired episodes), the
noise N(0, 1), or with falls (15% of episodes lose 3: a Hopper falling over). Scenarios: every
other candidate worse by 0.05 (a deploy is false), and one candidate better by 0.5 or 1.0 noise
standard deviations among 15 no better (10 equal, 5 worse by 0.2), and every candidate equal to the
default (a deploy is no gain: at most the level). Printed per scenario and rule: the rate at which
``choose`` deploys a non-default candidate (false) or the better one (power), the mean episodes
spent, and the naive rule's (the best validation mean, the budget spread evenly) rates.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from rl_swa.selection import RULES, choose, episode_seeds, parse_rule

SCENARIOS = {
    "all equal": [0.0] * 16,
    "all worse by 0.05": [0.0] + [-0.05] * 15,
    "one better by 0.5": [0.0] * 10 + [0.5] + [-0.2] * 5,
    "one better by 1.0": [0.0] * 10 + [1.0] + [-0.2] * 5,
}


def returns(means, rep: int, falls: bool):
    def play(i: int, seeds: list[int]) -> list[float]:
        out = []
        for s in seeds:
            shared = np.random.default_rng([rep, 10**6, s]).normal(scale=2.0)
            rng = np.random.default_rng([rep, i, s])
            x = rng.normal()
            if falls and rng.random() < 0.15:
                x -= 3.0
            out.append(means[i] + shared + x)
        return out

    return play


def run(reps: int, episodes: int, rules=("fixed", "sequential"), level=0.05, start=0, scenarios=None) -> list[dict]:
    rows = []
    for falls in (False, True):
        for name, means in SCENARIOS.items():
            if scenarios and name not in scenarios:
                continue
            better = int(np.argmax(means)) if max(means) > 0 else None
            deployed = dict.fromkeys(rules, 0)
            spent = dict.fromkeys(rules, 0)
            naive_hit = 0
            for rep in range(start, start + reps):
                play = returns(means, rep, falls)
                for rule in rules:
                    result = choose(play, [f"c{i}" for i in range(len(means))], 0, episodes, level, rule=rule)
                    i = result["deployed_index"]
                    deployed[rule] += i == better if better is not None else i != 0
                    spent[rule] += result["episodes"]
                seeds = episode_seeds("validation", 0, episodes // len(means))
                pick = int(np.argmax([np.mean(play(i, seeds)) for i in range(len(means))]))
                naive_hit += pick == better if better is not None else pick != 0
            for rule in rules:
                rows.append(
                    {
                        "scenario": name,
                        "noise": "falls" if falls else "normal",
                        "rule": rule,
                        "rate": deployed[rule] / reps,
                        "kind": "power" if better is not None else "false deploys",
                        "mean_episodes": spent[rule] / reps,
                        "naive_rate": naive_hit / reps,
                    }
                )
                r = rows[-1]
                print(
                    f"{r['scenario']:<18} {r['noise']:<7} {r['kind']:<13} {rule:<10} {r['rate']:.3f}  "
                    f"naive {r['naive_rate']:.3f}  mean episodes {r['mean_episodes']:.1f} of {episodes}",
                    flush=True,
                )
    return rows


def rule_spec(text: str):
    try:
        return parse_rule(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=600)
    p.add_argument("--start", type=int, default=0, help="the first draw (further draws: --start 600)")
    p.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=None)
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES))
    p.add_argument("--try", dest="tried", nargs="+", default=[], type=rule_spec, help="NAME=ALLOCATION:STAGES:FUTILITY")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    RULES.update(dict(args.tried))
    rules = [*args.rules, *(name for name, _ in args.tried)]
    rows = run(args.reps, args.episodes, rules, start=args.start, scenarios=args.scenarios)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"reps": args.reps, "start": args.start, "episodes": args.episodes, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
