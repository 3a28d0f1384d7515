"""Report statistics on synthetic run directories, checked against hand-computed values."""

import csv
import json
import shutil

import numpy as np
import pytest

from agents.config import ConfigError
from agents.report import (
    curve_series,
    load_runs,
    markdown,
    summarize,
    write_report,
)


def _write_run(root, env, variant, seed, curve):
    d = root / env.replace("/", "_") / variant / f"seed{seed}"
    d.mkdir(parents=True)
    (d / "result.json").write_text(json.dumps({"env": env, "variant": variant, "seed": seed}))
    with open(d / "eval.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["step", "online_mean_reward", "swa_mean_reward"])
        w.writeheader()
        for step, online, swa in curve:
            w.writerow({"step": step, "online_mean_reward": online, "swa_mean_reward": "" if swa is None else swa})


@pytest.fixture
def grid(tmp_path):
    # baseline final online: 10, 20, 30; swa final averaged: 15, 20, 40 -> paired diffs 5, 0, 10
    for seed, (b, s) in enumerate([(10, 15), (20, 20), (30, 40)]):
        _write_run(tmp_path, "Toy-v0", "baseline", seed, [(1, 50, None), (2, 40, 35), (3, b, b + 1)])
        _write_run(tmp_path, "Toy-v0", "swa", seed, [(1, 50, None), (2, 45, 30), (3, s - 2, s)])
    return tmp_path


def test_summary_matches_hand_computed(grid):
    summary = summarize(load_runs(grid), last_k=2, reps=500)
    env = summary["per_env"]["Toy-v0"]
    base, swa = env["arms"]["baseline"], env["arms"]["swa"]
    assert base["mean"] == pytest.approx(20.0) and base["std"] == pytest.approx(10.0)
    assert swa["mean"] == pytest.approx(25.0)
    paired = env["paired"]["swa - baseline"]
    assert paired["mean"] == pytest.approx(5.0) and paired["wins"] == 2 and paired["ties"] == 1
    lo, hi = paired["ci"]
    assert 0.0 <= lo <= 5.0 <= hi <= 10.0
    # the SWA-phase LR's own effect: swa arm's average vs the baseline's (15, 20, 40 vs 11, 21, 31),
    # and the online weights of the two arms (13, 18, 38 vs 10, 20, 30)
    assert env["paired"]["swa - baseline_avg"]["mean"] == pytest.approx(4.0)
    assert env["paired"]["swa_online - baseline"]["mean"] == pytest.approx(3.0)
    assert env["paired"]["swa_online - baseline"]["wins"] == 2
    # stability of the baseline's online curve: last 2 of (50, 40, b): mean (40 + b) / 2, drop 50 - b
    assert base["last_k_mean"] == pytest.approx(np.mean([(40 + b) / 2 for b in (10, 20, 30)]))
    assert base["best_to_final_drop"] == pytest.approx(np.mean([50 - b for b in (10, 20, 30)]))
    # one env, three seeds: P(swa > baseline) over the 3 x 3 pairs (ties count half)
    pairs = [(s > b) + 0.5 * (s == b) for s in (15, 20, 40) for b in (10, 20, 30)]
    assert summary["aggregate"]["P(swa > baseline)"]["value"] == pytest.approx(np.mean(pairs))
    # the baseline's eval-only average (final b + 1) against the baseline's online policy
    pairs = [(a > b) + 0.5 * (a == b) for a in (11, 21, 31) for b in (10, 20, 30)]
    assert summary["aggregate"]["P(baseline_avg > baseline)"]["value"] == pytest.approx(np.mean(pairs))
    assert summary["aggregate"]["IQM baseline_avg"]["value"] == pytest.approx(21.0)


def test_verdict_names_each_comparison_and_says_when_a_ci_is_missing(grid, tmp_path):
    from agents.report import markdown

    text = markdown(summarize(load_runs(grid), last_k=2, reps=500), "t")
    # the baseline's average ends 1 above its online policy in every seed: the CI is [1, 1]
    assert (
        "- Toy-v0, eval-only average vs online (baseline runs): the average beat the online policy: 1.00 [1.00, 1.00]" in text
    )
    assert "- Toy-v0, SWA vs baseline: " in text
    assert "- Toy-v0, SWA-phase LR, on the average (swa arm's vs baseline's): " in text
    one = tmp_path / "one"
    _write_run(one, "Toy-v0", "baseline", 0, [(1, 50, None), (2, 40, 41)])
    _write_run(one, "Toy-v0", "swa", 0, [(1, 50, None), (2, 45, 46)])
    text = markdown(summarize(load_runs(one), last_k=2, reps=50), "t")
    assert "- Toy-v0, SWA vs baseline: too few seeds for a CI: 6.00 [n/a, n/a] over 1 paired seeds." in text
    # two seeds: a percentile bootstrap would only give their range, which must not read as a 95% CI
    _write_run(one, "Toy-v0", "baseline", 1, [(1, 50, None), (2, 40, 41)])
    _write_run(one, "Toy-v0", "swa", 1, [(1, 50, None), (2, 45, 47)])
    summary = summarize(load_runs(one), last_k=2, reps=50)
    assert "- Toy-v0, SWA vs baseline: too few seeds for a CI: 6.50 [n/a, n/a] over 2 paired seeds." in markdown(summary, "t")
    assert summary["aggregate"] == {}


def test_an_env_under_3_seeds_is_left_out_of_the_aggregate_not_voiding_it(grid):
    from agents.report import markdown

    alone = summarize(load_runs(grid), last_k=2, reps=200)["aggregate"]
    _write_run(grid, "Late-v0", "baseline", 0, [(1, 0, None), (2, 5, 6)])  # a game still running: one seed
    _write_run(grid, "Late-v0", "swa", 0, [(1, 0, None), (2, 9, 9)])
    summary = summarize(load_runs(grid), last_k=2, reps=200)
    assert summary["aggregate"].get("P(swa > baseline)") == alone["P(swa > baseline)"]
    assert summary["aggregate_envs"] == ["Toy-v0"]
    assert "Over Toy-v0; left out: Late-v0 (under 3 baseline seeds)." in markdown(summary, "t")


def test_a_game_whose_baseline_stayed_at_random_play_gets_no_weight(grid):
    from agents.report import markdown

    alone = summarize(load_runs(grid), last_k=2, reps=200)["aggregate"]
    for seed, (b, s) in enumerate([(-21, -20), (-20, -21), (-19, -18)]):  # Pong: random play scores -20.7
        _write_run(grid, "ALE/Pong-v5", "baseline", seed, [(1, -21, None), (2, b, b)])
        _write_run(grid, "ALE/Pong-v5", "swa", seed, [(1, -21, None), (2, s, s)])
    summary = summarize(load_runs(grid), last_k=2, reps=200)
    assert summary["aggregate_envs"] == ["Toy-v0"] and summary["aggregate"] == alone
    text = markdown(summary, "t")
    assert "left out: ALE/Pong-v5 (the baseline has not left random play)." in text
    assert "The baseline's final score has not left random play (CI lower bound -21.0 vs random -20.3)" in text
    assert "random -20.7 (uniform actions under this evaluation: -20.3), human 14.6" in text
    assert "- ALE/Pong-v5, SWA vs baseline: no clear difference" in text and "paired seeds (no weight: random play)." in text
    toy = [line for line in text.splitlines() if line.startswith("- Toy-v0,")]
    assert len(toy) == 4 and not any("no weight" in line for line in toy)


def test_the_aggregate_names_the_seeds_it_drops_to_weigh_envs_equally(grid):
    from agents.report import markdown

    for seed in range(4):  # a second env with one seed more than Toy-v0 in each arm
        _write_run(grid, "More-v0", "baseline", seed, [(1, 0, None), (2, seed, seed)])
        _write_run(grid, "More-v0", "swa", seed, [(1, 0, None), (2, 0, seed + 1)])
    text = markdown(summarize(load_runs(grid), last_k=2, reps=50), "t")
    assert "baseline: the first 3 seeds of each env (More-v0 4 made); swa: the first 3" in text


def test_write_report_files(grid, tmp_path):
    out = tmp_path / "report"
    path = write_report(grid, out, last_k=2, reps=200)
    text = path.read_text()
    assert "Toy-v0" in text and "| swa - baseline | 3 | 5.0 | [0.0, 10.0] |" in text
    assert (out / "runs.csv").read_text().count("\n") == 7
    assert (out / "curves_Toy-v0.png").exists()


def test_further_averages_get_their_own_rows_and_pairs(tmp_path):
    for seed, (online, extra) in enumerate([(10, 12), (20, 19), (30, 35)]):
        d = tmp_path / "Toy-v0" / "baseline" / f"seed{seed}"
        d.mkdir(parents=True)
        (d / "result.json").write_text(json.dumps({"env": "Toy-v0", "variant": "baseline", "seed": seed}))
        (d / "eval.csv").write_text(
            f"step,online_mean_reward,swa_mean_reward,swa_0.5_mean_reward\n1,{online},{online},{extra}\n"
        )
    summary = summarize(load_runs(tmp_path), last_k=1, reps=200)
    env = summary["per_env"]["Toy-v0"]
    assert env["arms"]["baseline:swa_0.5"]["mean"] == pytest.approx((12 + 19 + 35) / 3)
    pair = env["paired"]["baseline:swa_0.5 - baseline"]
    assert pair["mean"] == pytest.approx((2 - 1 + 5) / 3) and pair["wins"] == 2


def test_posthoc_results_are_summarized(grid):
    for seed, (online, fixed, posthoc) in enumerate([(10, 12, 15), (20, 22, 21), (30, 30, 30)]):
        d = grid / "Toy-v0" / "baseline" / f"seed{seed}"
        row = {"test_online": online, "test_fixed_start": fixed, "test_posthoc": posthoc}
        if seed < 2:  # written before EMA profiles existed
            row["chosen_window"] = {"from_step": 1, "to_step": 3}
        else:
            row |= {"chosen": {"label": "ema sigma_rel=0.1"}, "test_posthoc_window": 29, "test_posthoc_ema": 30}
        (d / "posthoc.json").write_text(json.dumps(row))
    ph = summarize(load_runs(grid), last_k=1, reps=200)["per_env"]["Toy-v0"]["posthoc"]["baseline"]
    assert ph["test_posthoc"]["mean"] == pytest.approx(22.0)
    assert ph["chosen"] == ["window 1-3", "window 1-3", "ema sigma_rel=0.1"]
    assert ph["test_posthoc_ema - test_posthoc_window"]["n"] == 1 and ph["test_posthoc_ema - test_posthoc_window"]["mean"] == 1
    diff = ph["test_posthoc - test_fixed_start"]
    assert diff["mean"] == pytest.approx((3 - 1 + 0) / 3) and diff["wins"] == 1 and diff["ties"] == 1


def test_atari_games_are_set_beside_random_play_and_published_scores():
    from agents.report.tables import _context

    data = {"arms": {"baseline": {"ci": (0.5, 2.5)}}, "timesteps": [1_000_000], "wall_min": {"baseline": 30.0}}
    text = " ".join(_context("ALE/Breakout-v5", data))
    assert "random 1.7 (uniform actions under this evaluation: 0.9), human 30.5" in text
    assert "RL Zoo A2C at 10M env steps (40M frames): 279.8" in text
    assert "A2C 522 ± 34, A2C+SWA 703 ± 60" in text and "4,000,000 frames here" in text
    assert "has not left random play" in text and "no weight" in text
    data["arms"]["baseline"]["ci"] = (5.0, 9.0)
    assert "has left random play" in " ".join(_context("ALE/Breakout-v5", data))
    hopper = " ".join(_context("Hopper-v5", data))  # MuJoCo: random actions and RL Zoo's TD3
    assert "random actions 28.9; RL Zoo TD3 at 1M env steps: 3606" in hopper and "has not left random play" in hopper
    assert not any("random" in line for line in _context("CartPole-v1", data))


def test_wall_time_per_arm_leaves_out_resumed_runs_and_covers_every_arm(grid):
    walls = {("baseline", 0): (600, None), ("baseline", 1): (30, 5000), ("swa", 0): (900, None), ("swa", 1): (60, 4000)}
    walls[("act_avg", 0)] = (1200, None)
    _write_run(grid, "Toy-v0", "act_avg", 0, [(1, 50, None), (2, 45, 30), (3, 20, 21)])
    for (variant, seed), (wall, resumed) in walls.items():
        path = grid / "Toy-v0" / variant / f"seed{seed}" / "result.json"
        result = json.loads(path.read_text()) | {"wall_s": wall, "resumed_from": resumed}
        path.write_text(json.dumps(result))
    env = summarize(load_runs(grid), last_k=2, reps=50)["per_env"]["Toy-v0"]
    assert env["wall_min"] == {"baseline": 10.0, "swa": 15.0, "act_avg": 20.0} and env["resumed"] == 2
    text = write_report(grid, grid / "report", last_k=2, reps=50).read_text()
    assert "baseline 10 min, swa 15 min, act_avg 20 min (2 resumed runs left out" in text


def test_curves_show_each_arm_with_every_average_it_kept(grid):
    for seed in range(3):  # the baseline arm also kept an equal average from 0.5
        path = grid / "Toy-v0" / "baseline" / f"seed{seed}" / "eval.csv"
        rows = path.read_text().splitlines()
        path.write_text("\n".join([rows[0] + ",swa_0.5_mean_reward"] + [r + f",{seed}" for r in rows[1:]]) + "\n")
    series = curve_series(load_runs(grid), "Toy-v0")
    assert list(series) == ["deployed policies", "baseline arm", "swa arm"]
    baseline_arm = ["baseline (online)", "baseline + eval-only average", "baseline arm, average swa_0.5"]
    assert list(series["baseline arm"]) == baseline_arm
    steps, mean, lo, hi = series["baseline arm"]["baseline arm, average swa_0.5"]
    assert steps == [1, 2, 3] and mean == pytest.approx([1.0, 1.0, 1.0]) and np.all(lo <= mean) and np.all(mean <= hi)
    steps, mean, _, _ = series["deployed policies"]["SWA (averaged policy)"]  # the average starts at step 2
    assert steps == [2, 3] and mean == pytest.approx([30.0, 25.0])


def test_swag_and_ensemble_scores_are_reported(grid):
    scores = {
        "env": "Toy-v0",
        "variant": "swa",
        "test_online": [1.0, 2.0, 3.0],
        "test_members": [10.0, 20.0, 30.0],
        "test_ensemble": 33.0,
        "test_swag": [12.0, 19.0, 34.0],
        "test_multiswag": 35.0,
        "test_online_ensemble": 31.0,
        "swag_disagreement_vs_return_spearman": -0.5,
    }
    (grid / "ensemble_Toy-v0_swa.json").write_text(json.dumps(scores))
    (grid / "ensemble_Toy-v0_baseline.json").write_text(json.dumps(scores | {"variant": "baseline", "test_ensemble": 5.0}))
    text = write_report(grid, grid / "report", last_k=2, reps=200).read_text()
    summary = json.loads((grid / "report" / "summary.json").read_text())
    ens = summary["per_env"]["Toy-v0"]["ensembles"]
    assert list(ens) == ["baseline", "swa"]  # the arms' order, not the files'
    swa = ens["swa"]
    assert swa["single"] == pytest.approx(20.0) and swa["swag"] == pytest.approx(65 / 3) and swa["multiswa"] == 33.0
    assert swa["swag - single"]["mean"] == pytest.approx(5 / 3) and swa["swag - single"]["wins"] == 2
    assert "| swa | 3 | 2.0 | 20.0 | 21.7 | 1.7 [" in text and "| 33.0 | 35.0 | 31.0 |" in text
    assert "with its return: baseline -0.500, swa -0.500." in text


def test_grids_side_by_side_aggregate_over_their_envs_and_may_not_share_an_env(grid, tmp_path):
    other = tmp_path / "other"
    for seed in range(3):
        _write_run(other, "Toy-v1", "baseline", seed, [(1, 0, None), (2, 5, 6)])
        _write_run(other, "Toy-v1", "swa", seed, [(1, 0, None), (2, 5, 4)])
        _write_run(other, "Toy-v1", "act_avg", seed, [(1, 0, None), (2, 9, 9)])
    path = write_report([grid, other], tmp_path / "both", last_k=2, reps=50, variants=("baseline", "swa"))
    summary = json.loads((tmp_path / "both" / "summary.json").read_text())
    assert summary["envs"] == ["Toy-v0", "Toy-v1"]
    assert "act_avg" not in summary["per_env"]["Toy-v1"]["arms"]
    # P(swa > baseline): Toy-v0 as in the one-grid test, Toy-v1 never (4 < 5)
    toy0 = np.mean([(s > b) + 0.5 * (s == b) for s in (15, 20, 40) for b in (10, 20, 30)])
    assert summary["aggregate"]["P(swa > baseline)"]["value"] == pytest.approx((toy0 + 0.0) / 2)
    assert "Results: " + grid.name + " + other" in path.read_text()
    with pytest.raises(ConfigError, match="Toy-v0 is also in"):
        write_report([grid, grid], tmp_path / "twice", reps=50)
    with pytest.raises(ConfigError, match="--out"):
        write_report([grid, other])


def test_an_unknown_variant_is_one_line_and_exit_2(grid, capsys, monkeypatch):
    import sys

    from agents.cli import report

    monkeypatch.setattr(sys, "argv", ["report.py", str(grid), "--variants", "swa", "sgd"])
    with pytest.raises(SystemExit) as exit_:
        report.main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--variants: invalid choice: 'sgd'" in err and not (grid / "report").exists()


COMMITTED = [  # (grids, report folder, --variants) as docs/results/campaign.md made them, all with --reps 500
    *(([e], f"{e}/report", ()) for e in ("classic_acrobot_a2c", "classic_pendulum_ddpg", "mujoco_ddpg")),
    *(([e], f"{e}/report", ()) for e in ("mujoco_ddpg_effects", "atari_a2c", "atari_a2c_10m_frames")),
    (["mujoco_ddpg", "mujoco_ddpg_effects"], "mujoco_all", ("baseline", "swa")),
]


@pytest.mark.parametrize("grids, folder, variants", COMMITTED)
def test_the_committed_campaign_reports_regenerate_byte_identical(grids, folder, variants):
    from pathlib import Path

    from agents.report import load_grids, report_text

    root = Path(__file__).resolve().parent.parent / "docs/results/campaign"
    dirs = [root / g for g in grids]
    runs, ensembles = load_grids(dirs, variants)
    text = report_text(dirs, runs, summarize(runs, 3, 500, ensembles))
    assert text == (root / folder / "report.md").read_text()


def test_the_deployed_policy_table_matches_hand_computed(grid):
    """selection.json of each baseline run: seed 0 deployed an average (its test returns far below the
    online weights'), seeds 1-2 kept the online weights. Seed 2 was resumed at step 800 of 1,000: its
    wall_s (50 s) is its last session's; the whole run, at that session's speed, took 250 s. Seed 1
    is a forked arm from step 750: its wall_s (20 s) is its 250 steps'; the whole run took 80 s."""
    online = [[10.0, 12.0, 11.0, 13.0, 12.0], [20.0] * 5, [30.0] * 5]
    deployed = [[1.0, 2.0, 1.5, 2.5, 1.0], [20.0] * 5, [30.0] * 5]
    best = [15.0, 18.0, 36.0]
    for seed in range(3):
        run = grid / "Toy-v0" / "baseline" / f"seed{seed}"
        result = json.loads((run / "result.json").read_text()) | {"timesteps": 1000, "wall_s": 100.0 * (seed + 1)}
        result |= {"resumed_from": 800, "wall_s": 50.0, "steps_per_s": 4.0} if seed == 2 else {"resumed_from": None}
        result |= {"fork": True, "fork_step": 750, "wall_s": 20.0, "steps_per_s": 12.5} if seed == 1 else {}
        (run / "result.json").write_text(json.dumps(result))
        test = {"online": online[seed], "deployed": deployed[seed], "best evaluated": [best[seed]] * 5}
        selection = {
            "deployed": "swa" if seed == 0 else "online",
            "default": "online",
            "episodes": 200 + seed,
            "wall_s": 10.0,
            "train_wall_s": result["wall_s"],  # as select-5 and earlier recorded it
            "test": {"returns": test, "means": {k: float(np.mean(v)) for k, v in test.items()}},
        }
        (grid / "Toy-v0" / "baseline" / f"seed{seed}" / "selection.json").write_text(json.dumps(selection))
    sel = summarize(load_runs(grid), reps=500)["per_env"]["Toy-v0"]["selection"]["baseline"]
    assert sel["n"] == 3 and sel["replaced_online"] == 1 and sel["episodes"] == pytest.approx(201)
    assert sel["wall_share"] == pytest.approx(np.mean([0.1, 10 / 80, 10 / 250]))
    assert sel["below_online"] == 1  # seed 0 only: seeds 1-2 are ties
    d = sel["deployed - online"]
    assert d["mean"] == pytest.approx(np.mean([1.6 - 11.6, 0, 0])) and d["wins"] == 0 and d["ties"] == 2
    assert sel["deployed - best evaluated"]["mean"] == pytest.approx(np.mean([1.6 - 15, 20 - 18, 30 - 36]))
    assert "fixed-start average" not in str(sel)  # not scored: no row
    # pooled over envs: paired wins (ties half), an env under 3 scored runs left out and named
    for seed in range(2):
        _write_run(grid, "Other-v0", "baseline", seed, [(1, 5, 6)])
        test = {"online": [1.0, 2.0], "deployed": [3.0, 4.0]}
        selection = {"deployed": "swa", "default": "online", "episodes": 200, "wall_s": 1.0, "train_wall_s": 10.0}
        selection["test"] = {"returns": test, "means": {k: float(np.mean(v)) for k, v in test.items()}}
        (grid / "Other-v0" / "baseline" / f"seed{seed}" / "selection.json").write_text(json.dumps(selection))
    summary = summarize(load_runs(grid), reps=500)
    pooled = summary["selection_pooled"]["baseline"]["deployed - online"]
    assert pooled["value"] == pytest.approx((0 + 0.5 + 0.5) / 3) and pooled["envs"] == ["Toy-v0"]
    assert pooled["left_out"] == {"Other-v0": 2} and pooled["runs_per_env"] == {"Toy-v0": 3}
    assert "over Toy-v0 (3 runs); left out: Other-v0 (2 scored)" in markdown(summary, "t")
    # a third and fourth Other-v0 run (it has 4, Toy-v0 3): every run counts and the envs weigh the
    # same: (1/3 + 3/4) / 2, not the first three runs of each (1/3 + 1) / 2, nor all runs pooled 4/7
    for seed, online_, deployed_ in ((2, [5.0, 5.0], [5.0, 5.0]), (3, [9.0, 8.0], [8.0, 8.0])):  # a tie, a loss
        _write_run(grid, "Other-v0", "baseline", seed, [(1, 5, 6)])
        test = {"online": online_, "deployed": deployed_}
        selection = {"deployed": "swa", "default": "online", "episodes": 200, "wall_s": 1.0, "train_wall_s": 10.0}
        selection["test"] = {"returns": test, "means": {k: float(np.mean(v)) for k, v in test.items()}}
        (grid / "Other-v0" / "baseline" / f"seed{seed}" / "selection.json").write_text(json.dumps(selection))
    pooled = summarize(load_runs(grid), reps=500)["selection_pooled"]["baseline"]["deployed - online"]
    assert pooled["value"] == pytest.approx((1 / 3 + (1 + 1 + 0.5 + 0) / 4) / 2)
    assert pooled["runs_per_env"] == {"Other-v0": 4, "Toy-v0": 3} and pooled["ci"][0] <= pooled["value"] <= pooled["ci"][1]
    for seed in (2, 3):
        shutil.rmtree(grid / "Other-v0" / "baseline" / f"seed{seed}")
    text = markdown(summarize(load_runs(grid), reps=500), "t")
    assert "replaced the online weights in 1 of 3 runs" in text and "| deployed - best evaluated | 3 |" in text
    # one row per env: under 3 runs each run's difference; the share of a run without its training time: n/a
    assert "| Other-v0 | baseline | 2 | 2 of 2 | +2.00, +2.00 | n/a | n/a | n/a | 0 of 2 | 200 | n/a |" in text
    row = next(line for line in text.splitlines() if line.startswith("| Toy-v0 | baseline | 3 |"))
    assert row.startswith("| Toy-v0 | baseline | 3 | 1 of 3 | -3.33 [")
    assert row.endswith("| n/a | n/a | 1 of 3 | 201 | 8.83% |")


def test_one_number_format_everywhere():
    """Every number with its CI in a report: the same decimals, three significant digits on the largest."""
    import re
    from pathlib import Path

    from agents.report import load_grids, report_text
    from agents.report.tables import _mean_ci, decimals

    assert _mean_ci({"mean": 6.1, "ci": (1.38, 9.98)}) == ("6.10", "[1.38, 9.98]")
    assert _mean_ci({"mean": -14.6, "ci": (-52.7, 10.5)}) == ("-14.6", "[-52.7, 10.5]")
    assert decimals(0.0) == 0 and decimals(1234.5) == 0 and decimals(0.0123) == 4 and decimals(float("nan"), 7.194) == 2
    root = Path(__file__).resolve().parent.parent / "docs/results/campaign"
    for grid in ("classic_acrobot_a2c", "atari_a2c"):
        runs, ensembles = load_grids([root / grid])
        text = report_text([root / grid], runs, summarize(runs, 3, 200, ensembles))
        number = r"(-?\d+(?:\.\d+)?)"
        assert "-0 " not in text and "[-0," not in text
        for line in text.splitlines():
            if line.startswith("|"):  # a table row: every decimal number with the same decimals
                cells = "|".join(line.split("|")[2:])  # after the label, which may hold a number (ema_0.999)
                assert len({len(x.split(".")[1]) for x in re.findall(r"-?\d+\.\d+", cells)}) <= 1, line
        triples = re.findall("- .*: " + number + r" \[" + number + ", " + number + r"\]", text)  # verdicts, aggregate
        assert len(triples) >= 4
        for triple in triples:
            places = {len(x.split(".")[1]) if "." in x else 0 for x in triple}
            top = max(abs(float(x)) for x in triple)
            digits = max(triple, key=lambda x: abs(float(x))).lstrip("-").replace(".", "").lstrip("0")
            assert len(places) == 1 and (len(digits) == 3 or (places == {0} and top >= 100) or top == 0), triple


def test_the_readme_quotes_numbers_by_the_reports_rule():
    """Every "mean [lo, hi]" in the README: the same decimals, three significant digits on the largest."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    number = r"([+-]?\d+(?:\.\d+)?)"
    triples = re.findall(number + r" \[" + number + ", " + number + r"\]", text)
    assert len(triples) > 20
    for triple in triples:
        places = {len(x.split(".")[1]) if "." in x else 0 for x in triple}
        top = max(triple, key=lambda x: abs(float(x)))
        digits = top.lstrip("+-").replace(".", "").lstrip("0")
        assert len(places) == 1 and (len(digits) == 3 or (places == {0} and abs(float(top)) >= 100)), triple


def test_glance_reads_test_scores_against_online(tmp_path):
    from agents.report.glance import collect, table, write_glance

    for seed, (deployed, online, best) in enumerate([(10.0, 4.0, 6.0), (8.0, 8.0, 5.0), (3.0, 1.0, 1.0)]):
        run = tmp_path / "exp" / "Pendulum-v1" / "baseline" / f"seed{seed}"
        run.mkdir(parents=True)
        name = "online" if deployed == online else "swa"
        means = {"deployed": deployed, "online": online, "best evaluated": best}
        (run / "selection.json").write_text(json.dumps({"env": "Pendulum-v1", "deployed": name, "test": {"means": means}}))
    data = collect([tmp_path / "exp"])["Pendulum-v1"]
    assert data["runs"] == 3 and data["replaced"] == 2
    assert data["diffs"]["deployed"] == [6.0, 0.0, 2.0] and data["diffs"]["best evaluated"] == [2.0, -3.0, 0.0]
    row = table({"Pendulum-v1": data}).splitlines()[2]
    assert row.startswith("| Pendulum-v1 | 3 | 2 of 3 | 2.67 [") and "(2/3)" in row
    md = write_glance([tmp_path / "exp"], tmp_path / "out")
    assert (tmp_path / "out" / "glance.png").stat().st_size > 0 and "rl-swa report --glance" in md.read_text()


def test_glance_keeps_the_budgets_of_one_env_apart(tmp_path):
    """The same env at 120k and 1M steps: one row each, labelled, the smaller budget first."""
    from agents.report.glance import collect

    for exp, steps, gain in (("long", 1_000_000, 50.0), ("short", 120_000, 5.0)):
        for seed in range(2):
            run = tmp_path / exp / "Hopper-v5" / "baseline" / f"seed{seed}"
            run.mkdir(parents=True)
            means = {"deployed": 100.0 + gain, "online": 100.0}
            (run / "selection.json").write_text(json.dumps({"env": "Hopper-v5", "deployed": "swa", "test": {"means": means}}))
            (run / "result.json").write_text(json.dumps({"timesteps": steps}))
    data = collect([tmp_path / "long", tmp_path / "short"])
    assert list(data) == ["Hopper-v5 at 120k steps", "Hopper-v5 at 1M steps"]
    assert data["Hopper-v5 at 1M steps"]["diffs"]["deployed"] == [50.0, 50.0]
    assert data["Hopper-v5 at 120k steps"]["runs"] == 2
    assert list(collect([tmp_path / "short"])) == ["Hopper-v5"]


def test_budgets_table_keeps_each_grid_apart_and_matches_hand_computed(tmp_path):
    """The same env in two grids at two budgets: one row each (seeds pair within a grid only), the
    smaller budget first, with the paired differences and select's test results of its own grid."""
    from agents.report.budgets import rows, table

    for name, steps, pairs in (
        ("long", 1_000_000, [(10, 30), (20, 50), (30, 40)]),
        ("short", 120_000, [(10, 15), (20, 20), (30, 40)]),
    ):
        for seed, (b, s) in enumerate(pairs):
            _write_run(tmp_path / name, "Toy-v0", "baseline", seed, [(1, 50, None), (2, b, b + 1)])
            _write_run(tmp_path / name, "Toy-v0", "swa", seed, [(1, 50, None), (2, s - 2, s)])
            for variant in ("baseline", "swa"):
                result = tmp_path / name / "Toy-v0" / variant / f"seed{seed}" / "result.json"
                result.write_text(json.dumps(json.loads(result.read_text()) | {"timesteps": steps}))
        if name == "long":  # select on the baseline runs: deployed 4, 0, 2 above online
            for seed, (gain, kind) in enumerate([(4.0, "swa"), (0.0, "online"), (2.0, "best evaluated")]):
                means = {"deployed": 10 + gain, "online": 10.0, "best evaluated": 11.0}
                sel = {"env": "Toy-v0", "deployed": kind, "default": "online", "episodes": 199, "wall_s": 5.0}
                sel["test"] = {"means": means, "returns": {k: [v] * 3 for k, v in means.items()}}
                (tmp_path / name / "Toy-v0" / "baseline" / f"seed{seed}" / "selection.json").write_text(json.dumps(sel))
    data = rows([tmp_path / "long", tmp_path / "short"], reps=200)
    assert [(r["grid"], r["timesteps"]) for r in data] == [("short", [120_000]), ("long", [1_000_000])]
    short, long = data
    assert short["swa - baseline"]["mean"] == pytest.approx(5.0) and long["swa - baseline"]["mean"] == pytest.approx(20.0)
    assert long["baseline_avg - baseline"]["mean"] == pytest.approx(1.0) and long["baseline_avg - baseline"]["wins"] == 3
    assert long["deployed - online"]["mean"] == pytest.approx(2.0) and long["deployed - online"]["wins"] == 2
    assert long["deployed - best evaluated"]["mean"] == pytest.approx(1.0)
    assert short["deployed - online"] is None and long["deployed"] == {"swa": 1, "online": 1, "best evaluated": 1}
    lines = table(data).splitlines()
    assert lines[2].startswith("| Toy-v0 | 120k | short | 3 | +5.0 [0.0, 10.0] (2/3) | +1.00 [1.00, 1.00] (3/3) |  |")
    assert lines[3].startswith("| Toy-v0 | 1M | long | 3 | +20.0 [") and "| +2.00 [0.00, 4.00] (2/3) |" in lines[3]
