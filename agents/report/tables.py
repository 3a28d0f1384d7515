"""The report as text: markdown tables, context lines, verdicts, and runs.csv."""

from __future__ import annotations

import csv
import io
import math

import numpy as np

from agents.references import ATARI_RANDOM_HERE, ATARI_REFERENCE, MUJOCO_REFERENCE, PUBLISHED, game_of, random_score
from agents.report.runs import label
from agents.report.summary import POSTHOC_PAIRS, POSTHOC_SCORES, SELECTION_AGAINST, VERDICTS, random_play


def decimals(*values) -> int:
    """One rule for every number of a report: the decimals that give the largest magnitude among
    ``values`` (the numbers of one row, or one mean with its CI) three significant digits (0 to 4)."""
    finite = [abs(float(v)) for v in values if v is not None and np.isfinite(v)]
    top = max(finite, default=0.0)
    return 0 if top == 0 else int(min(4, max(0, 2 - math.floor(math.log10(top)))))


def _fmt(x: float | None, d: int | None = None) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    text = f"{x:.{decimals(x) if d is None else d}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text  # -0.4 to no decimals: 0, not -0


def _mean_ci(stat: dict, key: str = "mean") -> tuple[str, str]:
    """A mean and its CI, with the same decimals."""
    d = decimals(stat[key], *stat["ci"])
    return _fmt(stat[key], d), f"[{_fmt(stat['ci'][0], d)}, {_fmt(stat['ci'][1], d)}]"


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
            numbers = (a["mean"], a["std"], *a["ci"], a["last_k_mean"], a["last_k_std"], a["best_to_final_drop"])
            d = decimals(*numbers)
            cells = [
                label(arm),
                a["n"],
                f"{_fmt(a['mean'], d)} ± {_fmt(a['std'], d)}",
                f"[{_fmt(a['ci'][0], d)}, {_fmt(a['ci'][1], d)}]",
                *(_fmt(x, d) for x in numbers[4:]),
            ]
            lines.append(_row(cells))
        lines += ["", "| paired difference | seeds | mean | 95% CI | wins / ties |", "|---|---|---|---|---|"]
        for name, p in data["paired"].items():
            lines.append(_row([name, p["n"], *_mean_ci(p), f"{p['wins']} / {p['ties']}"]))
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
                    lines.append(_row([key, ph[key]["n"], *_mean_ci(ph[key]), ""]))
            for a, b in POSTHOC_PAIRS:
                if (key := f"{a} - {b}") in ph:
                    d = ph[key]
                    lines.append(_row([key, d["n"], *_mean_ci(d), f"{d['wins']} / {d['ties']}"]))
        lines += selection_lines(data.get("selection", {}))
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
            lines.append(f"- {name}{scale}: {' '.join(_mean_ci(a, 'value'))}")
        lines.append("")
    lines += selection_table(summary)
    if pooled := summary.get("selection_pooled"):
        lines += ["## The deployed policy over envs", ""]
        for variant, comparisons in pooled.items():
            for key, p in comparisons.items():
                left = (
                    "; left out: " + ", ".join(f"{e} ({n} scored)" for e, n in p["left_out"].items()) if p["left_out"] else ""
                )
                lines.append(
                    f"- {variant} runs, share of runs where {key.replace(' - ', ' beat ')} on the test episodes (ties half, "
                    f"envs weighing the same, stratified bootstrap): {' '.join(_mean_ci(p, 'value'))} over "
                    f"{', '.join(f'{e} ({n} runs)' for e, n in p['runs_per_env'].items())}{left}"
                )
        lines.append("")
    lines.append(_verdict(summary))
    return "\n".join(lines) + "\n"


def _signed(x: float, d: int) -> str:
    text = _fmt(x, d)
    return text if text == "0" or text.startswith("-") else f"+{text}"


def _difference_cell(d: dict) -> str:
    """Mean [CI], wins / ties; under 3 runs (no CI) each run's difference."""
    if d["n"] < 3:
        return ", ".join(_signed(x, decimals(*d["runs"])) for x in d["runs"])
    mean, ci = _mean_ci(d)
    return f"{_signed(d['mean'], decimals(d['mean'], *d['ci']))} {ci}, {d['wins']} / {d['ties']}"


def selection_table(summary: dict) -> list[str]:
    """One row per env and variant with ``rl-swa select`` results: the deployed policy minus each
    alternative on the test episodes, how often it fell below the online weights, and its cost."""
    rows = [(env, v, sel) for env in summary["envs"] for v, sel in summary["per_env"][env].get("selection", {}).items()]
    if not rows:
        return []
    lines = [
        "## The deployed policy, per env",
        "",
        "Test episodes, deployed policy minus each alternative: mean over runs [95% CI], wins / ties "
        "(under 3 runs: each run's difference).",
        "",
        _row(
            [
                "env",
                "variant",
                "runs",
                "replaced the online weights",
                *SELECTION_AGAINST,
                "below online beyond the noise",
                "validation episodes",
                "share of training wall time",
            ]
        ),
        "|" + "---|" * (7 + len(SELECTION_AGAINST)),
    ]
    for env, variant, sel in rows:
        cells = [_difference_cell(sel[k]) if (k := f"deployed - {other}") in sel else "n/a" for other in SELECTION_AGAINST]
        below = f"{sel['below_online']} of {sel['n']}" if "below_online" in sel else "n/a"
        share = f"{_fmt(100 * sel['wall_share'])}%" if np.isfinite(sel["wall_share"]) else "n/a"
        lines.append(
            _row(
                [
                    env,
                    variant,
                    sel["n"],
                    f"{sel['replaced_online']} of {sel['n']}",
                    *cells,
                    below,
                    _fmt(sel["episodes"]),
                    share,
                ]
            )
        )
    return [*lines, ""]


def selection_lines(selection: dict) -> list[str]:
    """The deployed policy of each run (``rl-swa select``) against what a user would deploy otherwise."""
    lines = []
    for variant, sel in selection.items():
        lines += [
            "",
            f"Deployed policy ({variant} runs, `rl-swa select`: a race on validation episodes, the leader deployed "
            f"only when it beat the online weights on fresh ones): replaced the online weights in "
            f"{sel['replaced_online']} of {sel['n']} runs (deployed: {sel['deployed']}); {_fmt(sel['episodes'])} "
            f"validation episodes a run, {_fmt(100 * sel['wall_share'])}% of the training wall time.",
        ]
        if "test_episodes" in sel:
            lines += [
                f"On {', '.join(map(str, sel['test_episodes']))} test episodes a run, disjoint from every selection: "
                f"below the online weights beyond the test noise (one-sided paired t, 5%) in {sel['below_online']} "
                f"of {sel['n']} runs.",
                "",
                "| paired difference (test) | runs | mean | 95% CI | wins / ties |",
                "|---|---|---|---|---|",
            ]
            for key, d in sel.items():
                if key.startswith("deployed - "):
                    lines.append(_row([key, d["n"], *_mean_ci(d), f"{d['wins']} / {d['ties']}"]))
    return lines


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
            out.append(f"- {env}, {what}: {word}: {' '.join(_mean_ci(p))} over {p['n']} paired seeds{weight}.")
    return "\n".join(out)


def _runs_left_out(summary: dict) -> str:
    """Runs past the first n of an env, which the aggregate drops so that every env weighs the same."""
    out = []
    for arm in ("baseline", "swa", "baseline_avg"):
        counts = {e: len(summary["per_env"][e]["arms"].get(arm, {}).get("scores", {})) for e in summary["aggregate_envs"]}
        n = min(counts.values(), default=0)
        if n and (more := [f"{e} {c}" for e, c in counts.items() if c > n]):
            out.append(f"{arm}: the first {n} seeds of each env ({', '.join(more)} made)")
    return f"Equal runs per env (the estimators take a runs x envs matrix): {'; '.join(out)}." if out else ""


def _ensemble_lines(ensembles: dict) -> list[str]:
    if not ensembles:
        return []
    lines = [
        "",
        "SWAG and ensembles of the averages (scripts/ensemble.py, test episodes; per-seed policies: mean over seeds; "
        "MultiSWA: the seeds' averages as one ensemble; MultiSWAG: their drawn policies as one; "
        "online ensemble: the seeds' online weights as one, MultiSWA's rival at equal compute):",
        "",
        "| arm | seeds | online | single average | SWAG | SWAG - single average [95% CI] (wins) | MultiSWA | MultiSWAG "
        "| online ensemble |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rhos = []
    for variant, e in ensembles.items():
        swag = e.get("swag - single")
        scores = (e["online"], e["single"], e.get("swag", np.nan), e["multiswa"], e.get("multiswag", np.nan))
        scores += (e.get("online_ensemble", np.nan),)
        d = decimals(*scores, *((swag["mean"], *swag["ci"]) if swag else ()))
        cells = [variant, e["seeds"], *(_fmt(x, d) for x in scores[:3])]
        ci = f"[{_fmt(swag['ci'][0], d)}, {_fmt(swag['ci'][1], d)}]" if swag else ""
        cells.append(f"{_fmt(swag['mean'], d)} {ci} ({swag['wins']})" if swag else "n/a")
        cells += [_fmt(x, d) for x in scores[3:]]
        lines.append(_row(cells))
        if not np.isnan(rho := e.get("spearman", np.nan)):
            rhos.append(f"{variant} {_fmt(rho)}")
    if rhos:  # a correlation, not a return: a line of its own
        lines += [
            "",
            f"Spearman correlation of the drawn policies' disagreement on an episode's states with its return: "
            f"{', '.join(rhos)}.",
        ]
    return lines


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
