"""Statistics and the results report of a compare grid.

    python scripts/report.py runs/<experiment> [--out DIR] [--last-k 3] [--reps 2000]
    python scripts/report.py runs/<a> runs/<b> --out DIR [--variants baseline swa]   # grids side by side

Reads every ``<env>/<variant>/seed<k>/`` (``result.json`` + ``eval.csv``, and ``posthoc.json`` where
made) of one experiment, and its ``ensemble_<env>_<variant>.json`` (``scripts/ensemble.py``) where
made; of several, when their envs differ (the aggregate then spans them all); writes ``report.md``,
``runs.csv`` and a learning-curve PNG per env (the deployed policies; the further averages).

Statistics follow Agarwal et al. (2021): per env, mean +- std and 95% percentile-bootstrap CI
over seeds; the paired difference (same seed, forked from the same prefix) with its CI;
across envs, IQM and probability of improvement over the baseline (of SWA and of the baseline's
eval-only average) with stratified-bootstrap CIs; no CI under 3 seeds, and an env under 3 baseline
seeds, or whose baseline has not left random play (CI lower bound at or under the random score),
is left out of the aggregate, and an env with more seeds than another enters with its first n (the
report names both). The code is the package ``agents/report/``.
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
    args = p.parse_args()
    for name in ("last_k", "reps"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')}: {getattr(args, name)} is not allowed; use an int >= 1")
    for d in args.experiment_dir:
        if not Path(d).is_dir():
            raise ConfigError(f"{d}: no such folder")
    print(write_report(args.experiment_dir, args.out, args.last_k, args.reps, variants=args.variants))
    return 0


if __name__ == "__main__":
    main()
