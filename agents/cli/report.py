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
report names both). The estimators are in ``agents/stats.py``, the reference scores in
``agents/references.py``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agents.cli._cli import Parser, guarded, int_in  # first: signals during start-up
from agents.config import VARIANTS, ConfigError
from agents.references import (
    ATARI_RANDOM_HERE,
    ATARI_REFERENCE,
    MUJOCO_REFERENCE,
    PUBLISHED,
    game_of,
    normalizer,
    random_score,
)
from agents.rundir import read_csv, read_json
from agents.stats import (
    MIN_SEEDS_FOR_CI,
    bootstrap_ci,
    iqm,
    probability_of_improvement,
    stability,
    stratified_bootstrap_ci,
)

# What each arm deploys: the baseline its online policy, the swa arm its averaged policy.
ARMS = {
    "baseline": ("baseline", "online_mean_reward"),
    "baseline_avg": ("baseline", "swa_mean_reward"),
    "swa_online": ("swa", "online_mean_reward"),
    "swa": ("swa", "swa_mean_reward"),
}
ARM_LABELS = {
    "baseline": "baseline (online)",
    "baseline_avg": "baseline + eval-only average",
    "swa_online": "swa arm, online weights",
    "swa": "SWA (averaged policy)",
}
VERDICTS = {  # paired difference: (what is compared, the arm that wins, the arm it is set against)
    "swa - baseline": ("SWA vs baseline", "SWA", "the baseline"),
    "baseline_avg - baseline": ("eval-only average vs online (baseline runs)", "the average", "the online policy"),
    "swa - baseline_avg": ("SWA-phase LR, on the average (swa arm's vs baseline's)", "the SWA-phase LR", "the config's LR"),
    "swa_online - baseline": ("SWA-phase LR, on the online weights", "the SWA-phase LR", "the config's LR"),
}
# The deployed comparisons, then the SWA-phase LR's own effect: on the average and on the online weights.
HEADLINE_PAIRS = tuple(tuple(key.split(" - ")) for key in VERDICTS)


# ---------------------------------------------------------------------------- loading
def load_runs(experiment_dir: str | Path, variants: Sequence[str] = ()) -> list[dict]:
    """Every finished run (with result.json) under ``experiment_dir``; only ``variants`` if given."""
    runs = []
    for result in sorted(Path(experiment_dir).glob("*/*/seed*/result.json")):
        if result.parent.parent.name == "prefix" or (variants and result.parent.parent.name not in variants):
            continue
        info = read_json(result)
        info["curve"] = read_csv(result.parent / "eval.csv") if (result.parent / "eval.csv").exists() else []
        posthoc = result.parent / "posthoc.json"
        info["posthoc"] = read_json(posthoc) if posthoc.exists() else None
        runs.append(info)
    return runs


def load_ensembles(experiment_dir: str | Path, variants: Sequence[str] = ()) -> list[dict]:
    """The test scores of SWAG and the ensembles of averages (``scripts/ensemble.py``), one per (env, variant)."""
    found = [read_json(p) for p in sorted(Path(experiment_dir).glob("ensemble_*.json"))]
    return [e for e in found if not variants or e["variant"] in variants]


def load_grids(experiment_dirs: Sequence[str | Path], variants: Sequence[str] = ()) -> tuple[list[dict], list[dict]]:
    """Runs and ensembles of one or more grids; two grids may not hold the same env."""
    runs, ensembles, owner = [], [], {}
    for d in experiment_dirs:
        found = load_runs(d, variants)
        for env in sorted({r["env"] for r in found}):
            if env in owner:
                raise ConfigError(f"{d}: {env} is also in {owner[env]}; give each env's runs from one grid only")
            owner[env] = d
        runs += found
        ensembles += load_ensembles(d, variants)
    return runs, ensembles


def arms_in(runs: list[dict]) -> dict[str, tuple[str, str]]:
    """The standard arms plus one per further average found in the evaluation histories."""
    arms = dict(ARMS)
    for variant in sorted({r["variant"] for r in runs} - {"baseline", "swa"}):  # act_avg, reset_avg: online and average
        arms[variant] = (variant, "online_mean_reward")
        arms[f"{variant}:average"] = (variant, "swa_mean_reward")
    for r in runs:
        for key in r["curve"][-1] if r["curve"] else {}:
            name = key.removesuffix("_mean_reward")
            if key.endswith("_mean_reward") and name not in ("online", "swa"):
                arms[f"{r['variant']}:{name}"] = (r["variant"], key)
    return arms


def _label(arm: str) -> str:
    if arm in ARM_LABELS:
        return ARM_LABELS[arm]
    if ":" not in arm:
        return f"{arm} arm, online weights"
    variant, name = arm.split(":", 1)
    return f"{variant} arm, its main average" if name == "average" else f"{variant} arm, average {name}"


def arm_scores(runs: list[dict], env: str, arm: str, arms: dict | None = None) -> dict[int, float]:
    variant, key = (arms or ARMS)[arm]
    out = {}
    for r in runs:
        if r["env"] == env and r["variant"] == variant and r["curve"]:
            value = r["curve"][-1].get(key, np.nan)
            if not np.isnan(value):
                out[int(r["seed"])] = float(value)
    return out


def summarize(runs: list[dict], last_k: int = 3, reps: int = 2000, ensembles: list[dict] = ()) -> dict:
    """All numbers of the report, as plain data (tested against hand-computed values)."""
    envs = sorted({r["env"] for r in runs})
    all_arms = arms_in(runs)
    per_env = {}
    for env in envs:
        arms = {}
        for arm in all_arms:
            scores = arm_scores(runs, env, arm, all_arms)
            if not scores:
                continue
            x = np.array(list(scores.values()))
            variant, key = all_arms[arm]
            stab = [stability(r["curve"], key, last_k) for r in runs if r["env"] == env and r["variant"] == variant]
            arms[arm] = {
                "n": len(x),
                "mean": float(x.mean()),
                "std": float(x.std(ddof=1)) if len(x) > 1 else float("nan"),
                "ci": bootstrap_ci(x, reps=reps),
                "scores": scores,
                **{k: float(np.nanmean([s[k] for s in stab])) for k in ("last_k_mean", "last_k_std", "best_to_final_drop")},
            }
        paired = {}
        own_online = {"baseline": "baseline", "swa": "swa_online"}  # each further average vs its arm's online policy
        extra_pairs = [(arm, own_online.get(all_arms[arm][0], all_arms[arm][0])) for arm in all_arms if ":" in arm]
        extra_pairs += [
            (arm, "baseline") for arm in all_arms if arm not in ARMS and ":" not in arm
        ]  # a new arm vs the baseline
        for a, b in (*HEADLINE_PAIRS, ("swa", "swa_online"), *extra_pairs):
            if a in arms and b in arms:
                seeds = sorted(set(arms[a]["scores"]) & set(arms[b]["scores"]))
                d = np.array([arms[a]["scores"][s] - arms[b]["scores"][s] for s in seeds])
                if len(d):
                    paired[f"{a} - {b}"] = {
                        "n": len(d),
                        "mean": float(d.mean()),
                        "ci": bootstrap_ci(d, reps=reps),
                        "wins": int((d > 0).sum()),
                        "ties": int((d == 0).sum()),
                    }
        steps = sorted({int(r["timesteps"]) for r in runs if r["env"] == env and "timesteps" in r})
        here = [r for r in runs if r["env"] == env and r.get("wall_s")]
        whole = [r for r in here if r.get("resumed_from") is None]  # a resumed run's wall_s covers its last start only
        variants = [v for v in VARIANTS if any(r["variant"] == v for r in here)]
        walls = {v: [r["wall_s"] for r in whole if r["variant"] == v] for v in variants}
        per_env[env] = {
            "arms": arms,
            "paired": paired,
            "timesteps": steps,
            "wall_min": {v: float(np.mean(w)) / 60 for v, w in walls.items() if w},
            "resumed": len(here) - len(whole),
        }
    for env in envs:
        per_env[env]["posthoc"] = _posthoc(runs, env, reps)
        per_env[env]["ensembles"] = {
            v: _ensemble(e, reps) for v in VARIANTS for e in ensembles if e["env"] == env and e["variant"] == v
        }
    # the aggregate spans the envs with enough baseline seeds (a game still running does not void it)
    # whose baseline left random play (a comparison of random policies gets no weight)
    left_out = {}
    for e in envs:
        base = per_env[e]["arms"].get("baseline")
        if base is None or base["n"] < MIN_SEEDS_FOR_CI:
            left_out[e] = f"under {MIN_SEEDS_FOR_CI} baseline seeds"
        elif random_play(e, base):
            left_out[e] = "the baseline has not left random play"
    agg_envs = [e for e in envs if e not in left_out]
    aggregate = _aggregate({e: per_env[e] for e in agg_envs}, reps)
    return {
        "envs": envs,
        "per_env": per_env,
        "aggregate": aggregate,
        "aggregate_envs": agg_envs,
        "aggregate_left_out": left_out,
        "last_k": last_k,
    }


def random_play(env_id: str, base: dict | None) -> bool:
    """Whether the baseline's final score has not left random play: its CI's lower bound is at or
    under the random score (False where that score is unknown or there is no CI)."""
    rnd = random_score(env_id)
    return rnd is not None and bool(base) and not np.isnan(base["ci"][0]) and base["ci"][0] <= rnd


def _runs_left_out(summary: dict) -> str:
    """Runs past the first n of an env, which the aggregate drops so that every env weighs the same."""
    out = []
    for arm in ("baseline", "swa", "baseline_avg"):
        counts = {e: len(summary["per_env"][e]["arms"].get(arm, {}).get("scores", {})) for e in summary["aggregate_envs"]}
        n = min(counts.values(), default=0)
        if n and (more := [f"{e} {c}" for e, c in counts.items() if c > n]):
            out.append(f"{arm}: the first {n} seeds of each env ({', '.join(more)} made)")
    return f"Equal runs per env (the estimators take a runs x envs matrix): {'; '.join(out)}." if out else ""


POSTHOC_SCORES = ("test_online", "test_fixed_start", "test_posthoc", "test_posthoc_window", "test_posthoc_ema")
POSTHOC_PAIRS = (
    ("test_posthoc", "test_fixed_start"),
    ("test_posthoc", "test_online"),
    ("test_posthoc_window", "test_fixed_start"),
    ("test_posthoc_ema", "test_fixed_start"),
    ("test_posthoc_ema", "test_posthoc_window"),
)


def _chosen_label(posthoc: dict) -> str:
    if "chosen" in posthoc:
        return posthoc["chosen"]["label"]
    window = posthoc["chosen_window"]  # posthoc.json written before EMA profiles existed
    return f"window {window['from_step']}-{window['to_step']}"


def _posthoc(runs: list[dict], env: str, reps: int) -> dict:
    """Test scores of post-hoc windows (scripts/posthoc.py) vs the online policy and the fixed start, per variant."""
    out = {}
    for variant in ("baseline", "swa"):
        rows = [r["posthoc"] for r in runs if r["env"] == env and r["variant"] == variant and r.get("posthoc")]
        if not rows:
            continue
        entry = {"n": len(rows), "chosen": [_chosen_label(p) for p in rows]}
        for key in POSTHOC_SCORES:
            x = np.array([p[key] for p in rows if key in p], dtype=float)
            if x.size:
                entry[key] = {"n": int(x.size), "mean": float(x.mean()), "ci": bootstrap_ci(x, reps=reps)}
        for a, b in POSTHOC_PAIRS:
            d = np.array([p[a] - p[b] for p in rows if a in p and b in p], dtype=float)
            if d.size:
                entry[f"{a} - {b}"] = {
                    "n": int(d.size),
                    "mean": float(d.mean()),
                    "ci": bootstrap_ci(d, reps=reps),
                    "wins": int((d > 0).sum()),
                    "ties": int((d == 0).sum()),
                }
        out[variant] = entry
    return out


def _ensemble(scores: dict, reps: int) -> dict:
    """One (env, variant) of scripts/ensemble.py: per-seed means, the ensembles, SWAG against its seed's single average."""
    out = {
        "seeds": len(scores["test_members"]),
        "online": float(np.mean(scores["test_online"])),
        "single": float(np.mean(scores["test_members"])),
        "multiswa": float(scores["test_ensemble"]),
    }
    if "test_swag" in scores:
        d = np.array(scores["test_swag"], dtype=float) - np.array(scores["test_members"], dtype=float)
        out |= {
            "swag": float(np.mean(scores["test_swag"])),
            "swag - single": {"mean": float(d.mean()), "ci": bootstrap_ci(d, reps=reps), "wins": int((d > 0).sum())},
            "multiswag": float(scores["test_multiswag"]),
            "spearman": float(scores.get("swag_disagreement_vs_return_spearman", np.nan)),
        }
    return out


def _ensemble_lines(ensembles: dict) -> list[str]:
    if not ensembles:
        return []
    lines = [
        "",
        "SWAG and ensembles of the averages (scripts/ensemble.py, test episodes; per-seed policies: mean over seeds; "
        "MultiSWA: the seeds' averages as one ensemble; MultiSWAG: their drawn policies as one; "
        "Spearman: the drawn policies' disagreement on an episode's states vs its return):",
        "",
        "| arm | seeds | online | single average | SWAG | SWAG - single average [95% CI] (wins) "
        "| MultiSWA | MultiSWAG | Spearman |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for variant, e in ensembles.items():
        swag = e.get("swag - single")
        cells = [variant, e["seeds"], _fmt(e["online"]), _fmt(e["single"]), _fmt(e.get("swag", np.nan))]
        cells.append(f"{_fmt(swag['mean'])} {_ci(swag)} ({swag['wins']})" if swag else "n/a")
        rho = e.get("spearman", np.nan)
        cells += [_fmt(e["multiswa"]), _fmt(e.get("multiswag", np.nan)), "n/a" if np.isnan(rho) else f"{rho:+.2f}"]
        lines.append(_row(cells))
    return lines


def _matrix(per_env: dict, arm: str, envs: list[str], normalize: bool) -> np.ndarray | None:
    cols = []
    for env in envs:
        arm_data = per_env[env]["arms"].get(arm)
        if arm_data is None:
            return None
        x = np.array([arm_data["scores"][s] for s in sorted(arm_data["scores"])])
        fn, _ = normalizer(env)
        cols.append(fn(x) if (normalize and fn) else x)
    n = min(len(c) for c in cols)
    return np.stack([c[:n] for c in cols], axis=1)


def _aggregate(per_env: dict, reps: int) -> dict:
    """P(arm > baseline) for SWA and the baseline's eval-only average, and IQMs where scores share a scale."""
    envs = list(per_env)
    out = {}
    base = _matrix(per_env, "baseline", envs, True) if envs else None
    if base is None or len(base) < MIN_SEEDS_FOR_CI:
        return out
    arms = {
        a: m
        for a in ("swa", "baseline_avg")
        if (m := _matrix(per_env, a, envs, True)) is not None and len(m) >= MIN_SEEDS_FOR_CI
    }
    for arm, m in arms.items():
        out[f"P({arm} > baseline)"] = {
            "value": probability_of_improvement(m, base),
            "ci": stratified_bootstrap_ci(probability_of_improvement, m, base, reps=reps),
        }
    all_atari = all(normalizer(e)[0] is not None for e in envs)
    if all_atari or len(envs) == 1:
        label = "human-normalized" if all_atari else "raw score"
        for arm, m in (("baseline", base), *arms.items()):
            out[f"IQM {arm}"] = {"value": iqm(m), "ci": stratified_bootstrap_ci(iqm, m, reps=reps), "scale": label}
    return out


# ---------------------------------------------------------------------------- output
def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.1f}" if abs(x) >= 10 else f"{x:.3f}"


def _ci(stat: dict) -> str:
    return f"[{_fmt(stat['ci'][0])}, {_fmt(stat['ci'][1])}]"


def _row(cells: list) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def markdown(summary: dict, title: str) -> str:
    k = summary["last_k"]
    lines = [f"# {title}", ""]
    lines.append(
        "Final score = mean return of the last evaluation (same evaluation episodes for every policy). "
        "CI: 95% percentile bootstrap over seeds. Paired differences are taken per seed; the two arms "
        "of a seed continue from the same prefix checkpoint."
    )
    lines.append("")
    for env in summary["envs"]:
        data = summary["per_env"][env]
        lines += [
            f"## {env}",
            "",
            f"| policy | seeds | final mean ± std | 95% CI | last-{k} mean | last-{k} spread | best→final drop |",
            "|---|---|---|---|---|---|---|",
        ]
        for arm, a in data["arms"].items():
            cells = [
                _label(arm),
                a["n"],
                f"{_fmt(a['mean'])} ± {_fmt(a['std'])}",
                _ci(a),
                _fmt(a["last_k_mean"]),
                _fmt(a["last_k_std"]),
                _fmt(a["best_to_final_drop"]),
            ]
            lines.append(_row(cells))
        lines += ["", "| paired difference | seeds | mean | 95% CI | wins / ties |", "|---|---|---|---|---|"]
        for name, p in data["paired"].items():
            lines.append(_row([name, p["n"], _fmt(p["mean"]), _ci(p), f"{p['wins']} / {p['ties']}"]))
        for variant, ph in data.get("posthoc", {}).items():
            lines += [
                "",
                f"Post-hoc averaging ({variant} runs, chosen on validation episodes, scored on test episodes; "
                f"chosen: {ph['chosen']}):",
                "",
                "| test score | seeds | mean | 95% CI | wins / ties |",
                "|---|---|---|---|---|",
            ]
            for key in POSTHOC_SCORES:
                if key in ph:
                    lines.append(_row([key, ph[key]["n"], _fmt(ph[key]["mean"]), _ci(ph[key]), ""]))
            for a, b in POSTHOC_PAIRS:
                if (key := f"{a} - {b}") in ph:
                    d = ph[key]
                    lines.append(_row([key, d["n"], _fmt(d["mean"]), _ci(d), f"{d['wins']} / {d['ties']}"]))
        lines += _ensemble_lines(data.get("ensembles", {}))
        lines += _context(env, data)
        lines += ["", f"![{env}](curves_{env.replace('/', '_')}.png)", ""]
    agg = summary["aggregate"]
    if agg:
        lines += ["## Aggregate over envs (stratified bootstrap, 95% CI)", ""]
        if left := summary.get("aggregate_left_out"):
            why = "; ".join(f"{e} ({reason})" for e, reason in left.items())
            lines += [f"Over {', '.join(summary['aggregate_envs'])}; left out: {why}.", ""]
        if equal := _runs_left_out(summary):
            lines += [equal, ""]
        for name, a in agg.items():
            scale = f" ({a['scale']})" if "scale" in a else ""
            lines.append(f"- {name}{scale}: {_fmt(a['value'])} [{_fmt(a['ci'][0])}, {_fmt(a['ci'][1])}]")
        lines.append("")
    lines.append(_verdict(summary))
    return "\n".join(lines) + "\n"


def _left_random(env: str, base: dict | None) -> str:
    """Whether the baseline's final score (its CI's lower bound) is above random play, in words."""
    if not base or np.isnan(base["ci"][0]):
        return ""
    left = not random_play(env, base)
    return (
        f" The baseline's final score {'has' if left else 'has not'} left random play (CI lower bound "
        f"{_fmt(base['ci'][0])} vs random {random_score(env)}){'' if left else ': give its SWA comparison no weight'}."
    )


def _context(env: str, data: dict) -> list[str]:
    """Budget, cost, and for Atari: random and human play, and the published A2C scores."""
    out = [""]
    if data.get("timesteps"):
        out.append(f"Budget: {', '.join(f'{t:,}' for t in data['timesteps'])} env steps per run.")
    if data.get("wall_min"):
        partial = f" ({data.get('resumed')} resumed runs left out: their wall time covers their last start only)"
        out.append(
            "Wall time per arm after the fork (mean): "
            + ", ".join(f"{v} {m:.0f} min" if m >= 10 else f"{v} {60 * m:.0f} s" for v, m in data["wall_min"].items())
            + (partial if data.get("resumed") else "")
            + "."
        )
    game = game_of(env)
    base = data["arms"].get("baseline")
    if game in ATARI_REFERENCE:
        lo, hi = ATARI_REFERENCE[game]
        pub = PUBLISHED.get(game, {})
        zoo = f"; RL Zoo A2C at 10M env steps (40M frames): {pub['rl_zoo_a2c_10M']}" if "rl_zoo_a2c_10M" in pub else ""
        paper = (
            f"; SWA paper (frames unpublished): A2C {pub['paper_a2c']}, A2C+SWA {pub['paper_a2c_swa']}"
            if "paper_a2c" in pub
            else ""
        )
        frames = f" (4 frames per env step: {4 * data['timesteps'][-1]:,} frames here)" if data.get("timesteps") else ""
        here = f" (uniform actions under this evaluation: {ATARI_RANDOM_HERE[game]})" if game in ATARI_RANDOM_HERE else ""
        out.append(f"Reference scores{frames}: random {lo}{here}, human {hi}{zoo}{paper}.{_left_random(env, base)}")
    elif game in MUJOCO_REFERENCE:
        ref = MUJOCO_REFERENCE[game]
        out.append(
            f"Reference scores: random actions {ref['random']}; RL Zoo TD3 at 1M env steps: {ref['rl_zoo_td3_1M']}."
            + _left_random(env, base)
        )
    return out


def _verdict(summary: dict) -> str:
    out = ["## Verdict", ""]
    for env in summary["envs"]:
        for key, (what, a, b) in VERDICTS.items():
            p = summary["per_env"][env]["paired"].get(key)
            if not p:
                continue
            lo, hi = p["ci"]
            if np.isnan(lo):
                word = "too few seeds for a CI"
            elif lo > 0:
                word = f"{a} beat {b}"
            elif hi < 0:
                word = f"{a} lost to {b}"
            else:
                word = "no clear difference (the CI covers 0)"
            weight = " (no weight: random play)" if random_play(env, summary["per_env"][env]["arms"].get("baseline")) else ""
            out.append(
                f"- {env}, {what}: {word}: {_fmt(p['mean'])} [{_fmt(lo)}, {_fmt(hi)}] over {p['n']} paired seeds{weight}."
            )
    return "\n".join(out)


def runs_csv(runs: list[dict]) -> str:
    keys = [
        "env",
        "variant",
        "seed",
        "budget",
        "timesteps",
        "final_online",
        "final_swa",
        "n_averaged",
        "skipped",
        "fork_step",
        "wall_s",
        "steps_per_s",
    ]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    w.writerows(runs)
    return buf.getvalue()


def _mean_curve(runs: list[dict], env: str, variant: str, key: str) -> tuple | None:
    """Steps, mean over seeds and CI band of one evaluation column of one arm; None if never evaluated."""
    curves = [r["curve"] for r in runs if r["env"] == env and r["variant"] == variant and r["curve"]]
    steps = sorted({row["step"] for c in curves for row in c if not np.isnan(row.get(key, np.nan))})
    if not steps:
        return None
    col_of = {step: j for j, step in enumerate(steps)}
    table = np.full((len(curves), len(steps)), np.nan)
    for i, c in enumerate(curves):
        for row in c:
            if row["step"] in col_of:
                table[i, col_of[row["step"]]] = row.get(key, np.nan)
    mean = np.nanmean(table, axis=0)
    ci = np.array(
        [
            bootstrap_ci(col[~np.isnan(col)], reps=500) if (~np.isnan(col)).sum() > 1 else (m, m)
            for col, m in zip(table.T, mean)
        ]
    )
    return steps, mean, ci[:, 0], ci[:, 1]


def curve_series(runs: list[dict], env: str) -> dict[str, dict[str, tuple]]:
    """Per panel (the policies each arm deploys; then per arm, its online policy and every average it kept),
    per curve: steps, mean over seeds, CI band. Each curve is computed once, whatever panels show it."""
    arms = arms_in(runs)
    curves = {arm: c for arm, (variant, key) in arms.items() if (c := _mean_curve(runs, env, variant, key))}
    panels = {"deployed policies": [*ARMS, *(a for a in arms if a not in ARMS and ":" not in a)]}
    for variant in (v for v in VARIANTS if any(r["env"] == env and r["variant"] == v for r in runs)):
        panels[f"{variant} arm"] = [a for a in arms if arms[a][0] == variant]
    out: dict[str, dict[str, tuple]] = {}
    for panel, names in panels.items():
        for arm in names:
            if arm in curves:
                out.setdefault(panel, {})[_label(arm)] = curves[arm]
    return out


def plot_curves(runs: list[dict], env: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = curve_series(runs, env) or {"no evaluations": {}}
    cols = min(3, len(series))
    rows = -(-len(series) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 4 * rows), squeeze=False, sharey=True)
    for ax in axes.flat[len(series) :]:
        ax.set_visible(False)
    for ax, (panel, curves) in zip(axes.flat, series.items()):
        for label, (steps, mean, lo, hi) in curves.items():
            (line,) = ax.plot(steps, mean, label=label)
            ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.15)
        ax.set_xlabel("env steps")
        ax.set_title(f"{env}: {panel}")
        ax.set_ylabel("evaluation return")
        if curves:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(
    experiment_dir: str | Path | Sequence[str | Path],
    out_dir: str | Path | None = None,
    last_k: int = 3,
    reps: int = 2000,
    not_finished: dict[str, str] | None = None,
    variants: Sequence[str] = (),
) -> Path:
    """The report of one grid (in its ``report/`` unless ``out_dir``) or of several side by side (``out_dir`` needed)."""
    dirs = [Path(experiment_dir)] if isinstance(experiment_dir, (str, Path)) else [Path(d) for d in experiment_dir]
    if len(dirs) > 1 and out_dir is None:
        raise ConfigError("--out: needed when the report covers several grids")
    out = Path(out_dir) if out_dir else dirs[0] / "report"
    out.mkdir(parents=True, exist_ok=True)
    runs, ensembles = load_grids(dirs, variants)
    if not runs:
        raise ConfigError(f"{', '.join(map(str, dirs))}: no finished runs (no */*/seed*/result.json)")
    summary = summarize(runs, last_k, reps, ensembles)
    for env in summary["envs"]:
        plot_curves(runs, env, out / f"curves_{env.replace('/', '_')}.png")
    (out / "runs.csv").write_text(runs_csv(runs))
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    text = markdown(summary, f"Results: {' + '.join(d.name for d in dirs)}")
    made_by = sorted({(r.get("code", "not recorded"), r.get("cpu", "not recorded")) for r in runs})
    text += "\n## Made by\n\n" + "".join(f"- code {code} on {cpu}\n" for code, cpu in made_by)
    if not_finished:
        text += "\n## Runs that did not finish\n\n" + "".join(
            f"- {label}: {why}\n" for label, why in sorted(not_finished.items())
        )
    (out / "report.md").write_text(text)
    return out / "report.md"


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
