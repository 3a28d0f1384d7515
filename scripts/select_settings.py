"""Try settings of `rl-swa select` on finished runs: episode budgets, levels and candidate sets.

    python scripts/select_settings.py RUN_DIR [RUN_DIR ...] [--episodes 100 200 400] [--levels 0.05 0.1 0.2]
        [--sets all averages no-points] [--test-episodes 50] [--out FILE.json]   # --episodes default: 150 200 400

For each run and each setting, the selection runs on validation episodes as `rl-swa select` does;
the deployed candidate is then scored on test episodes (each candidate once per run, cached), next
to the final online weights. Prints one line per setting over all runs: the mean test difference
deployed - online, how often the online weights were replaced, how often the deployed policy
scored below them beyond the test noise, and the validation episodes spent. This is how the
defaults of `rl-swa select` were chosen, on the classic envs only (docs/results/deploy.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from agents.cli._cli import Parser, guarded, int_in  # first: signals during start-up
from rl_swa.files import atomic_write

SETS = {  # candidate kinds each set keeps; the default (the final online weights) is always first
    "all": None,
    "averages": {"online", "best", "average"},
    "no-points": {"online", "best", "average", "window", "ema"},
}


def _args() -> argparse.Namespace:
    p = Parser(description=__doc__)
    p.add_argument("runs", nargs="+")
    p.add_argument("--episodes", type=int_in(20, 10**6), nargs="+", default=[150, 200, 400])
    p.add_argument("--levels", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    p.add_argument("--sets", nargs="+", choices=sorted(SETS), default=["all", "averages", "no-points"])
    p.add_argument("--test-episodes", type=int_in(1, 10**5), default=50)
    p.add_argument("--out", default=None, help="write every run's rows as JSON here")
    return p.parse_args()


@guarded
def main() -> int:
    args = _args()
    torch.set_num_threads(1)
    from agents.deploy import load_candidates
    from agents.envs import make_env
    from rl_swa.deploy import play_episodes, run_selection
    from rl_swa.selection import episode_seeds, paired_test

    rows = []
    for run in map(Path, args.runs):
        cfg, env_id, candidates, _, _, _ = load_candidates(run)

        def make(n: int, seed: int, cfg=cfg, env_id=env_id):
            return make_env(cfg, env_id, n, seed, training=False)

        det, base = cfg.eval.deterministic, cfg.eval.seed
        test_seeds = episode_seeds("test", base, args.test_episodes)
        test: dict[str, list[float]] = {}

        def on_test(candidate, test=test, make=make, det=det, test_seeds=test_seeds) -> list[float]:
            if candidate.name not in test:
                test[candidate.name] = play_episodes(candidate.make(), make, test_seeds, det)
            return test[candidate.name]

        for name in args.sets:
            pool = [c for c in candidates if SETS[name] is None or c.kind in SETS[name]]
            for episodes in args.episodes:
                for level in args.levels:
                    try:
                        _, result = run_selection(pool, make, episodes, level, det, base)
                    except ValueError as exc:  # a budget too small for this many candidates
                        print(f"{run} {name} {episodes} {level}: {exc}", flush=True)
                        continue
                    chosen = pool[result["deployed_index"]]
                    deployed, online = on_test(chosen), on_test(pool[0])
                    rows.append(
                        {
                            "run": str(run),
                            "env": env_id,
                            "set": name,
                            "candidates": len(pool),
                            "episodes": episodes,
                            "level": level,
                            "deployed": chosen.name,
                            "spent": result["episodes"],
                            "test_deployed": float(np.mean(deployed)),
                            "test_online": float(np.mean(online)),
                            "below_online": paired_test(online, deployed, 0.05)["better"],
                        }
                    )
    if args.out:
        atomic_write(Path(args.out), json.dumps(rows, indent=1))
    print("set | episodes | level | runs | deployed - online (test, mean) | replaced | below online | spent")
    keys = sorted({(r["set"], r["episodes"], r["level"]) for r in rows})
    for key in keys:
        sel = [r for r in rows if (r["set"], r["episodes"], r["level"]) == key]
        d = np.mean([r["test_deployed"] - r["test_online"] for r in sel])
        replaced = sum(r["deployed"] != "online" for r in sel)
        below = sum(r["below_online"] for r in sel)
        spent = np.mean([r["spent"] for r in sel])
        print(f"{key[0]} | {key[1]} | {key[2]} | {len(sel)} | {d:+.3g} | {replaced} | {below} | {spent:.0f}")
    return 0


if __name__ == "__main__":
    main()
