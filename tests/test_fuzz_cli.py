"""Fuzz of the command line as a hostile user drives it: configs, --set values, damaged run files.

Every case asserts the CLI's contract: exit code 0, 2, 3 or 4 only; for 2, one line on stderr and
nothing written; a finished run's files are never deleted. The scripts run in this process (their
``main``), so each case costs a smoke run at most.
"""

import shutil
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agents.cli import evaluate, posthoc, report, select, train

ROOT = Path(__file__).resolve().parent.parent
CARTPOLE = ROOT / "configs/classic/cartpole_a2c.yaml"
SMALL = [
    "--set",
    "budgets.smoke.timesteps=200",
    "--set",
    "budgets.smoke.eval_freq=100",
    "--set",
    "budgets.smoke.eval_episodes=1",
]
FINISHED = (
    "result.json",
    "eval.csv",
    "model.zip",
    "policy.safetensors",
    "swa_policy.safetensors",
    "config.yaml",
    "posthoc.pt",
)


def cli(main, argv, capsys) -> tuple[int, str]:
    old = sys.argv
    sys.argv = ["prog", *map(str, argv)]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = old
    return code, capsys.readouterr().err


def listing(folder: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} if folder.exists() else {}


def check(code: int, err: str, before: dict, after: dict) -> None:
    assert code in (0, 2, 3, 4), err[-3000:]
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("error: "), err
        assert after == before, "exit 2 wrote or deleted files"
    for path in before:  # a finished run's files are never deleted
        if path.name in FINISHED and (path.parent / "result.json") in before:
            assert path.exists(), path


keys = st.sampled_from(
    [
        "swa.start",
        "swa.swa_lr",
        "swa.averages",
        "swa.posthoc_points",
        "swa.cycle",
        "swa.update_every",
        "n_envs",
        "policy",
        "hyperparams.n_steps",
        "hyperparams.learning_rate",
        "hyperparams.gamma",
        "hyperparams",
        "policy_kwargs.net_arch",
        "policy_kwargs.activation_fn",
        "experiment",
        "envs",
        "eval.seed",
        "on_divergence",
        "budgets.smoke",
        "algo",
        "x.y",
    ]
)
values = st.one_of(
    st.sampled_from(
        [
            "0",
            "-1",
            "1e6",
            "1e-30",
            "1e30",
            "abc",
            "..",
            ".",
            "[]",
            "{}",
            "null",
            "[64, 64]",
            "relu",
            "0.5",
            "'../../x'",
            "[swa@0.5]",
            "[ema@2]",
            "MlpPolicy",
            "CnnPolicy",
            "true",
            "3",
            "{a: 1}",
            "[Pendulum-v1]",
        ]
    ),
    st.text(max_size=6),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sets=st.lists(st.tuples(keys, values), max_size=2))
def test_train_with_any_set_values(tmp_path, capsys, sets):
    out = tmp_path / "runs"
    if out.exists():
        shutil.rmtree(out)
    args = [a for key, value in sets for a in ("--set", f"{key}={value}")]
    before = listing(tmp_path)
    code, err = cli(train.main, [CARTPOLE, "--budget", "smoke", "--out", out, "--no-progress", *args, *SMALL], capsys)
    check(code, err, before, listing(tmp_path))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished")
    old = sys.argv
    sys.argv = [
        "train.py",
        str(CARTPOLE),
        "--budget",
        "smoke",
        "--out",
        str(out),
        "--no-progress",
        *SMALL,
        "--set",
        "swa.posthoc_points=3",
    ]
    try:
        train.main()
    except SystemExit as exc:
        assert exc.code == 0
    finally:
        sys.argv = old
    (run,) = out.glob("*/*/swa/seed0")
    return run


def damage(path: Path, how: str, where: float) -> None:
    blob = path.read_bytes()
    if how == "truncate":
        path.write_bytes(blob[: int(len(blob) * where)])
    elif how == "garbage":
        cut = int(len(blob) * where)
        path.write_bytes(blob[:cut] + bytes((b + 77) % 256 for b in blob[cut : cut + 64]) + blob[cut + 64 :])
    elif how == "empty":
        path.write_bytes(b"")
    else:
        path.unlink()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(
        [
            "result.json",
            "eval.csv",
            "config.yaml",
            "policy.safetensors",
            "swa_policy.safetensors",
            "best_policy.safetensors",
            "posthoc.pt",
            "command.txt",
        ]
    ),
    how=st.sampled_from(["truncate", "garbage", "empty", "delete"]),
    where=st.floats(0, 1),
    command=st.sampled_from(["resume", "evaluate", "report", "posthoc", "select"]),
)
# the cases seen to end in a traceback: always tried
@example(name="result.json", how="truncate", where=0.5, command="report")
@example(name="eval.csv", how="garbage", where=0.3, command="report")
@example(name="eval.csv", how="truncate", where=0.0, command="report")  # no evaluation left: no curve to draw
@example(name="swa_policy.safetensors", how="garbage", where=0.5, command="evaluate")
@example(name="posthoc.pt", how="truncate", where=0.5, command="posthoc")
@example(name="policy.safetensors", how="garbage", where=0.9, command="posthoc")
@example(name="result.json", how="delete", where=0.0, command="resume")
@example(name="command.txt", how="garbage", where=0.0, command="resume")
@example(name="config.yaml", how="truncate", where=0.3, command="resume")
@example(name="posthoc.pt", how="garbage", where=0.5, command="select")
@example(name="best_policy.safetensors", how="garbage", where=0.5, command="select")
def test_damaged_run_files(tmp_path, capsys, finished_run, name, how, where, command):
    exp = tmp_path / "exp"
    if exp.exists():
        shutil.rmtree(exp)
    run = exp / "CartPole-v1" / "swa" / "seed0"
    shutil.copytree(finished_run, run)
    damage(run / name, how, where)
    if command == "resume" and name != "result.json":
        (run / "result.json").unlink()  # an unfinished run: resume reads its files
    before = listing(exp)
    main, argv = {
        "resume": (train.main, ["--resume", run, "--no-progress"]),
        "evaluate": (evaluate.main, [run / "swa_policy.safetensors", "--episodes", "1"]),
        "report": (report.main, [exp, "--reps", "20"]),
        "posthoc": (posthoc.main, [run, "--val-episodes", "1", "--test-episodes", "1", "--sigma-rels", "0.1"]),
        "select": (select.main, [run, "--episodes", "80"]),
    }[command]
    code, err = cli(main, argv, capsys)
    if command == "report":  # a report writes only under report/
        before = {p: t for p, t in before.items() if "report" not in p.parts}
    after = {p: t for p, t in listing(exp).items() if command != "report" or "report" not in p.parts}
    if command == "select" and code == 0:  # select writes its three files, nothing else
        made = {p.name for p in set(after) - set(before)}
        assert made <= {"deployed_policy.safetensors", "deployed_model.zip", "selection.json"}, made
        after = {p: t for p, t in after.items() if p in before}
    check(code, err, before, after)
