"""Every number of a report, as plain data: per env, per arm, paired differences, post hoc, aggregate."""

from __future__ import annotations

import numpy as np

from agents.config import VARIANTS
from agents.references import normalizer, random_score
from agents.report.runs import ARMS, arm_scores, arms_in
from agents.rundir import training_wall_s
from agents.stats import (
    MIN_SEEDS_FOR_CI,
    bootstrap_ci,
    iqm,
    mean_of_task_means,
    probability_of_improvement,
    stability,
    stratified_bootstrap_ci,
)

VERDICTS = {  # paired difference: (what is compared, the arm that wins, the arm it is set against)
    "swa - baseline": ("SWA vs baseline", "SWA", "the baseline"),
    "baseline_avg - baseline": ("eval-only average vs online (baseline runs)", "the average", "the online policy"),
    "swa - baseline_avg": ("SWA-phase LR, on the average (swa arm's vs baseline's)", "the SWA-phase LR", "the config's LR"),
    "swa_online - baseline": ("SWA-phase LR, on the online weights", "the SWA-phase LR", "the config's LR"),
}
# The deployed comparisons, then the SWA-phase LR's own effect: on the average and on the online weights.
HEADLINE_PAIRS = tuple(tuple(key.split(" - ")) for key in VERDICTS)


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
        per_env[env]["posthoc"] = posthoc_summary(runs, env, reps)
        if selection := selection_summary(runs, env, reps):
            per_env[env]["selection"] = selection
        per_env[env]["ensembles"] = {
            v: ensemble_summary(e, reps) for v in VARIANTS for e in ensembles if e["env"] == env and e["variant"] == v
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
    pooled = selection_pooled(per_env, reps)
    return {
        "envs": envs,
        "per_env": per_env,
        **({"selection_pooled": pooled} if pooled else {}),
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


POSTHOC_SCORES = ("test_online", "test_fixed_start", "test_posthoc", "test_posthoc_window", "test_posthoc_ema")
POSTHOC_PAIRS = (
    ("test_posthoc", "test_fixed_start"),
    ("test_posthoc", "test_online"),
    ("test_posthoc_window", "test_fixed_start"),
    ("test_posthoc_ema", "test_fixed_start"),
    ("test_posthoc_ema", "test_posthoc_window"),
)


def paired_stats(d: np.ndarray, reps: int) -> dict:
    """Paired differences over runs: count, mean, 95% bootstrap CI, wins and ties."""
    return {
        "n": int(d.size),
        "mean": float(d.mean()),
        "ci": bootstrap_ci(d, reps=reps),
        "wins": int((d > 0).sum()),
        "ties": int((d == 0).sum()),
    }


def _chosen_label(posthoc: dict) -> str:
    if "chosen" in posthoc:
        return posthoc["chosen"]["label"]
    window = posthoc["chosen_window"]  # posthoc.json written before EMA profiles existed
    return f"window {window['from_step']}-{window['to_step']}"


def posthoc_summary(runs: list[dict], env: str, reps: int) -> dict:
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
                entry[f"{a} - {b}"] = paired_stats(d, reps)
        out[variant] = entry
    return out


def ensemble_summary(scores: dict, reps: int) -> dict:
    """One (env, variant) of scripts/ensemble.py: per-seed means, the ensembles, SWAG against its seed's single average."""
    out = {
        "seeds": len(scores["test_members"]),
        "online": float(np.mean(scores["test_online"])),
        "single": float(np.mean(scores["test_members"])),
        "multiswa": float(scores["test_ensemble"]),
        "online_ensemble": float(scores.get("test_online_ensemble", np.nan)),  # scored since its rival was named
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


SELECTION_AGAINST = ("online", "best evaluated", "fixed-start average", "posthoc choice")


def selection_summary(runs: list[dict], env: str, reps: int) -> dict:
    """``rl-swa select`` per variant: what was deployed, its cost, and on test episodes the deployed
    policy against the online weights, the best evaluated ones, the fixed-start average and the
    exhaustive post-hoc choice (paired per run), and how often it scored below the online weights
    beyond the test episodes' noise (one-sided paired t-test at 5% on the run's test episodes)."""
    from rl_swa.selection import paired_test

    out = {}
    for variant in VARIANTS:
        chosen = [r for r in runs if r["env"] == env and r["variant"] == variant and r.get("selection")]
        rows = [r["selection"] for r in chosen]
        if not rows:
            continue
        trained = [training_wall_s(r) for r in chosen]
        shares = [s["wall_s"] / t for s, t in zip(rows, trained, strict=True) if t]
        entry = {
            "n": len(rows),
            "deployed": [s["deployed"] for s in rows],
            "replaced_online": sum(s["deployed"] != s["default"] for s in rows),
            "episodes": float(np.mean([s["episodes"] for s in rows])),
            "wall_share": float(np.mean(shares)) if shares else float("nan"),
        }
        tests = [s["test"] for s in rows if "test" in s]
        if tests:
            entry["test_episodes"] = sorted({len(t["returns"]["deployed"]) for t in tests})
            entry["below_online"] = sum(
                paired_test(t["returns"]["online"], t["returns"]["deployed"], 0.05)["better"] for t in tests
            )
        for other in SELECTION_AGAINST if tests else ():
            d = np.array([t["means"]["deployed"] - t["means"][other] for t in tests if other in t["means"]])
            if d.size:
                entry[f"deployed - {other}"] = paired_stats(d, reps) | {"runs": [float(x) for x in d]}
        out[variant] = entry
    return out


def selection_pooled(per_env: dict, reps: int) -> dict:
    """Over envs, per variant and alternative: the share of runs whose deployed policy scored above
    the alternative on the test episodes (paired per run, ties half; scale-free, so envs pool),
    each env weighing the same (the mean of its runs' shares, all its runs), with a stratified
    bootstrap CI (runs resampled within each env). Envs under ``MIN_SEEDS_FOR_CI`` runs are left out."""
    out: dict = {}
    for variant in VARIANTS:
        for other in SELECTION_AGAINST:
            key = f"deployed - {other}"
            cols = {
                e: d["selection"][variant][key]["runs"]
                for e, d in per_env.items()
                if key in d.get("selection", {}).get(variant, {})
            }
            used = {e: c for e, c in cols.items() if len(c) >= MIN_SEEDS_FOR_CI}
            if not used:
                continue
            value, ci = mean_of_task_means([[(x > 0) + 0.5 * (x == 0) for x in c] for c in used.values()], reps)
            out.setdefault(variant, {})[key] = {
                "value": value,
                "ci": ci,
                "envs": list(used),
                "runs_per_env": {e: len(c) for e, c in used.items()},
                "left_out": {e: len(c) for e, c in cols.items() if e not in used},
            }
    return out


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
