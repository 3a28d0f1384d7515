"""How much of the best candidate's gain each rule of `rl-swa select` keeps (the oracle capture).

    python scripts/oracle_capture.py score RUN_DIR [RUN_DIR ...] [--episodes 200] [--test-episodes 50]
        [--committed DIR]     # writes RUN_DIR/oracle.json
    python scripts/oracle_capture.py table RUN_DIR_OR_FOLDER [...] [--out FILE.md] [--try NAME=ALLOCATION:STAGES:FUTILITY ...]

score: every candidate of a finished run plays every validation episode a rule could ask for (the
budget's seeds: a rule never plays more distinct seeds than its budget) and the test episodes. Each
rule of ``rl_swa.selection.RULES`` then decides from these returns as `rl-swa select` would (the same
seeds in the same order), so the rules meet the same episodes (paired); so does the naive rule (the
best validation mean, the budget spread evenly). The oracle is the candidate with the best test mean
in hindsight. Returns equal `rl-swa select`'s up to float rounding (a batch of another size sums in
another order). --committed: the experiment folder of the committed copy of the run (its
<env>/<variant>/seed<k> under it, e.g. docs/results/campaign/deploy_acrobot_a2c): whether eval.csv is
the same bit for bit, and its test returns (the exhaustive post-hoc choice among them).

table: per env, the share of the oracle's gain over the online weights (on test) that each rule
keeps (sum of gains over runs / sum of the oracle's gains), the validation episodes each spent, how
often each deployed below the online weights beyond the test noise (one-sided paired t, 5%). The
rules decide again from oracle.json's validation returns (no episode is played): --try adds rules.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from agents.cli._cli import Parser, guarded, int_in  # first: signals during start-up
from agents.report.per_run import emit, per_run, share
from rl_swa.files import atomic_write


def rule_spec(text: str):
    from rl_swa.selection import parse_rule

    try:
        return parse_rule(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _args() -> argparse.Namespace:
    p = Parser(description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("score")
    s.add_argument("runs", nargs="+")
    s.add_argument("--episodes", type=int_in(20, 10**5), default=200, help="the validation budget of the rules")
    s.add_argument("--test-episodes", type=int_in(1, 10**5), default=50)
    s.add_argument("--committed", default=None, help="experiment folder of the committed copies of these runs")
    t = sub.add_parser("table")
    t.add_argument("paths", nargs="+")
    t.add_argument("--out", default=None)
    t.add_argument("--try", dest="tried", nargs="+", default=[], type=rule_spec, help="NAME=ALLOCATION:STAGES:FUTILITY")
    return p.parse_args()


def score(run: Path, episodes: int, test_episodes: int, committed: Path | None) -> dict:
    from agents.deploy import load_candidates
    from agents.envs import make_env
    from agents.provenance import code_version, cpu_model
    from rl_swa.deploy import ReusedEnvs, finite_policy, play_episodes
    from rl_swa.selection import RULES, choose, episode_seeds

    cfg, env_id, candidates, _, _, _ = load_candidates(run)
    det, base = cfg.eval.deterministic, cfg.eval.seed
    built = {c.name: c.make() for c in candidates}
    usable = [c for c in candidates if finite_policy(built[c.name])]
    val_seeds, test_seeds = episode_seeds("validation", base, episodes), episode_seeds("test", base, test_episodes)
    val, test = {}, {}
    with ReusedEnvs(lambda n, seed: make_env(cfg, env_id, n, seed, training=False)) as envs:
        for c in usable:
            val[c.name] = play_episodes(built[c.name], envs, val_seeds, det)
            test[c.name] = play_episodes(built[c.name], envs, test_seeds, det)
            print(f"{run}: {c.name}: validation {np.mean(val[c.name]):.2f}, test {np.mean(test[c.name]):.2f}", flush=True)
    names = [c.name for c in usable]
    first = val_seeds[0]

    def replay(i: int, seeds: list[int]) -> list[float]:
        return [val[names[i]][s - first] for s in seeds]

    rules = {}
    for rule in RULES:
        r = choose(replay, names, 0, episodes, base_seed=base, rule=rule)
        rules[rule] = {k: r[k] for k in ("deployed", "leader", "episodes", "confirmation", "candidates")}
    k = episodes // len(names)
    rules["naive"] = {"deployed": max(names, key=lambda n: np.mean(val[n][:k])), "episodes": k * len(names)}
    out = {
        "run": str(run),
        "env": env_id,
        "kinds": {c.name: c.kind for c in usable},
        "validation_seeds": [val_seeds[0], val_seeds[-1]],
        "test_seeds": [test_seeds[0], test_seeds[-1]],
        "validation": val,
        "test": test,
        "oracle": max(names, key=lambda n: np.mean(test[n])),
        "rules": rules,
        "code": code_version(),
        "cpu": cpu_model(),
    }
    if committed is not None:
        twin = committed.joinpath(*run.parts[-3:]) if len(run.parts) >= 3 else None
        if twin is not None and (twin / "eval.csv").is_file():
            same = (twin / "eval.csv").read_bytes() == (run / "eval.csv").read_bytes()
            out["committed"] = {"path": str(twin), "eval_csv_identical": same}
            if (twin / "selection.json").is_file():
                out["committed"]["test"] = json.loads((twin / "selection.json").read_text()).get("test")
    atomic_write(run / "oracle.json", json.dumps(out, indent=1, allow_nan=False))
    return out


def replay(r: dict, rule: str) -> dict:
    """Rule ``rule`` of ``RULES`` decided again from an oracle.json's validation returns."""
    from rl_swa.selection import VALIDATION_OFFSET, choose

    names, first = list(r["validation"]), r["validation_seeds"][0]
    episodes = len(r["validation"][names[0]])

    def play(i: int, seeds: list[int]) -> list[float]:
        return [r["validation"][names[i]][s - first] for s in seeds]

    return choose(play, names, 0, episodes, base_seed=first - VALIDATION_OFFSET, rule=rule)


def best_validated(r: dict) -> str:
    return max(r["validation"], key=lambda k: np.mean(r["validation"][k]))


def capture(results: list[dict], rules: list[str]) -> list[str]:
    """Markdown rows: per env, the oracle and what users deploy, then each rule."""
    from rl_swa.selection import paired_test

    def mean(r: dict, name: str) -> float:
        return float(np.mean(r["test"][name]))

    rows = []
    for env in sorted({r["env"] for r in results}):
        runs = [r for r in results if r["env"] == env]
        n = len(runs)
        oracle = sum(mean(r, r["oracle"]) - mean(r, "online") for r in runs)
        picks = {"oracle (best on test, in hindsight)": [r["oracle"] for r in runs]}
        # chosen on every validation episode of every candidate: no rule's budget, no hindsight bias
        picks["best on all validation episodes"] = [best_validated(r) for r in runs]
        picks["best evaluated"] = ["best evaluated" if "best evaluated" in r["test"] else "online" for r in runs]
        for rule in rules:
            picks[f"rule {rule}"] = [replay(r, rule) for r in runs]
        picks["naive (best validation mean)"] = [r["rules"]["naive"] for r in runs]
        for label, chosen in picks.items():
            names = [c if isinstance(c, str) else c["deployed"] for c in chosen]
            gains = [mean(r, d) - mean(r, "online") for r, d in zip(runs, names)]
            kept = share(sum(gains), oracle)
            below = sum(paired_test(r["test"]["online"], r["test"][d], 0.05)["better"] for r, d in zip(runs, names))
            spent = [c["episodes"] for c in chosen if isinstance(c, dict)]
            if label == "best on all validation episodes":
                spent = [sum(map(len, r["validation"].values())) for r in runs]
            episodes = f"{np.mean(spent):.0f}" if spent else ""
            replaced = "" if label == "best evaluated" else sum(d != "online" for d in names)
            rows.append(f"| {env} ({n}) | {label} | {kept} | {np.mean(gains):+.3g} | {replaced} | {below} | {episodes} |")
        posthoc = [r["committed"]["test"]["means"] for r in runs if (r.get("committed") or {}).get("test")]
        posthoc = [m["posthoc choice"] - m["online"] for m in posthoc if "posthoc choice" in m]
        if len(posthoc) == n:  # from the committed twin's test episodes (the same seeds, the first ones)
            kept = share(sum(posthoc), oracle)
            rows.append(f"| {env} ({n}) | exhaustive post-hoc choice (committed) | {kept} | {np.mean(posthoc):+.3g} | | | |")
    return rows


@guarded
def main() -> int:
    args = _args()
    torch.set_num_threads(1)
    if args.command == "score":
        committed = Path(args.committed) if args.committed else None
        for run in map(Path, args.runs):
            out = score(run, args.episodes, args.test_episodes, committed)
            print(f"{run}: oracle {out['oracle']}; " + "; ".join(f"{k} {v['deployed']}" for k, v in out["rules"].items()))
        return 0
    from rl_swa.selection import RULES

    RULES.update(dict(args.tried))
    header = (
        "| env (runs) | deployed | share of the oracle's gain kept | minus online (test, mean) | replaced online "
        "| below online beyond the noise | validation episodes |"
    )
    rules = ["fixed", "sequential", *(name for name, _ in args.tried)]
    emit([header, "|---|---|---|---|---|---|---|", *capture(per_run(args.paths, "oracle.json"), rules)], args.out)
    return 0


if __name__ == "__main__":
    main()
