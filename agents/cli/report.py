"""Statistics and the results report of a compare grid.

    python scripts/report.py runs/<experiment> [--out DIR] [--last-k 3] [--reps 2000]
    python scripts/report.py runs/<a> runs/<b> --out DIR [--variants baseline swa]   # grids side by side
    rl-swa report --glance docs/results/campaign/deploy_* --out docs/results        # the README's figure and table
    rl-swa report --budgets GRID_120K GRID_1M --out DIR     # one table, one row per (env, grid): budgets side by side

What it reads, writes and computes: the package ``agents/report/`` (its docstring).
"""

from __future__ import annotations

from pathlib import Path

from agents.cli._cli import Parser, guarded, int_in  # first: signals during start-up
from agents.config import VARIANTS, ConfigError
from agents.report import write_report


@guarded
def main() -> int:
    p = Parser(description=__doc__)
    p.add_argument("experiment_dir", nargs="+", help="one grid, or several whose envs differ (then --out)")
    p.add_argument("--out", default=None)
    p.add_argument("--variants", nargs="+", default=(), choices=VARIANTS, help="only these arms' runs (default: all)")
    p.add_argument("--last-k", type=int_in(1, 1000), default=3)
    p.add_argument("--reps", type=int_in(1, 10**7), default=2000)
    p.add_argument("--glance", action="store_true", help="glance.png and glance.md: each policy against online, per env")
    p.add_argument("--budgets", action="store_true", help="budgets.md: the same comparisons, one row per (env, grid)")
    args = p.parse_args()
    for d in args.experiment_dir:
        if not Path(d).is_dir():
            raise ConfigError(f"{d}: no such folder")
    if args.glance:
        from agents.report.glance import write_glance

        if args.out is None:
            raise ConfigError("--glance: give --out, the folder of glance.png and glance.md")
        try:
            print(write_glance(args.experiment_dir, args.out))
        except ValueError as exc:
            raise ConfigError(f"--glance: {exc}") from None
        return 0
    if args.budgets:
        from agents.report.budgets import write_budgets

        if args.out is None:
            raise ConfigError("--budgets: give --out, the folder of budgets.md")
        print(write_budgets(args.experiment_dir, args.out, args.reps))
        return 0
    print(write_report(args.experiment_dir, args.out, args.last_k, args.reps, variants=args.variants))
    return 0


if __name__ == "__main__":
    main()
