"""`rl-swa select` on a run directory as a hostile user would try it: each case ends in one line, a
stated exit code, and a run directory whose outputs are all old or all new."""

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agents.runner import locked

ROOT = Path(__file__).resolve().parent.parent
RL_SWA = [sys.executable, "-c", "import sys; from agents.cli import main; sys.argv[0] = 'rl-swa'; main()"]
OUTPUTS = ("deployed_policy.safetensors", "deployed_model.zip", "selection.json")


def _cmd(*args, timeout=300):
    return subprocess.run([*RL_SWA, *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    config = ROOT / "configs/classic/cartpole_a2c.yaml"
    done = _cmd("train", config, "--variant", "baseline", "--budget", "smoke", "--out", out,
                "--no-progress", "--set", "swa.posthoc_points=3")  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out / "classic_cartpole_a2c/CartPole-v1/baseline/seed0"


@pytest.fixture
def run(finished, tmp_path) -> Path:
    copy = tmp_path / "classic_cartpole_a2c/CartPole-v1/baseline/seed0"  # the layout train --out tmp_path writes
    shutil.copytree(finished, copy)
    return copy


def _files(run: Path) -> dict:
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and not p.is_symlink()}


def _refused(run: Path, *args, says: str) -> None:
    before = _files(run)
    done = _cmd("select", run, "--episodes", "80", *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ") and says in done.stderr, done.stderr
    assert "weights_only" not in done.stderr  # never suggests the unsafe load
    assert _files(run) == before and not any(p.name.startswith(".") for p in run.iterdir())


def test_nan_online_weights_are_left_out_and_the_rule_is_stated(tmp_path):
    config = ROOT / "configs/classic/cartpole_a2c.yaml"
    done = _cmd("train", config, "--variant", "swa", "--budget", "smoke", "--out", tmp_path, "--no-progress",
                "--set", "on_divergence=finish", "--set", "swa.start=0.5", "--set", "swa.swa_lr=1e30",
                "--set", "select.episodes=200")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "classic_cartpole_a2c/CartPole-v1/swa/seed0"
    selection = json.loads((run / "selection.json").read_text())  # strict JSON (no bare NaN)
    assert selection["default_finite"] is False and "online" in selection["left_out"]
    assert selection["deployed"] != "online" and selection["confirmation"] is None
    again = _cmd("select", run, "--episodes", "80", "--test-episodes", "3")
    assert again.returncode == 0, again.stderr
    assert "NaN/Inf" in again.stdout and "left out" in again.stdout
    test = json.loads((run / "selection.json").read_text())["test"]
    assert "online" in test["left_out"] and "deployed" in test["means"]


def test_a_run_in_use_is_refused(run):
    with locked(run):  # as `train --overwrite` or another select would hold it
        _refused(run, says="in use by process")


def test_train_overwrite_is_refused_while_select_holds_the_run(run):
    with locked(run):
        done = _cmd("train", ROOT / "configs/classic/cartpole_a2c.yaml", "--variant", "baseline", "--budget", "smoke",
                    "--out", run.parents[3], "--overwrite", "--no-progress")  # fmt: skip
    assert done.returncode == 2 and "in use" in done.stderr, done.stderr


def test_a_planted_link_is_never_followed(run, tmp_path):
    outside = tmp_path / "outside.zip"
    outside.write_bytes(b"precious")
    (run / ".deployed_model.tmp.zip").symlink_to(outside)  # the fixed name older versions wrote through
    done = _cmd("select", run, "--episodes", "80")
    assert done.returncode == 0, done.stderr
    assert outside.read_bytes() == b"precious"
    (run / ".deployed_model.tmp.zip").unlink()
    (run / "selection.json").unlink()
    (run / "selection.json").symlink_to(outside)
    _refused(run, says="not a regular file")
    assert outside.read_bytes() == b"precious"


@pytest.mark.parametrize(
    "damage, says",
    [
        (lambda r: (r / "model.zip").unlink(), "model.zip"),
        (lambda r: (r / "model.zip").write_bytes(b"PK\x03\x04damaged"), "model.zip: SB3 cannot load it"),
        (lambda r: (r / "selection.json").mkdir(), "selection.json: exists and is not a regular file"),
        (lambda r: (r / "result.json").write_text("{}"), "timesteps must be a positive int"),
        (lambda r: (r / "result.json").write_text('{"timesteps": 200, "wall_s": NaN}'), "wall_s must be a finite number"),
        (lambda r: (r / "posthoc.pt").write_bytes(b""), "posthoc.pt: empty file"),
        (lambda r: (r / "posthoc.pt").write_bytes(b"\x80\x04garbage" * 20), "posthoc.pt: damaged"),
        (lambda r: _cut(r / "config.yaml", "config:"), "no config section"),
        (lambda r: _edit(r / "config.yaml", "env: CartPole-v1\n", ""), "no env"),
        (lambda r: _edit(r / "config.yaml", "env: CartPole-v1", "env: Acrobot-v1"), "records 'CartPole-v1'"),
        (lambda r: _edit(r / "config.yaml", "env: CartPole-v1", "env: CartPole-v0"), "records 'CartPole-v1'"),
        (lambda r: _edit(r / "config.yaml", "env_type: classic", "env_type: atari"), "config.yaml"),
    ],
    ids=[
        "no-model",
        "bad-model",
        "selection-dir",
        "empty-result",
        "nan-result",
        "empty-posthoc",
        "garbage-posthoc",
        "cut-config",
        "no-env",
        "other-env",
        "v0-env",
        "atari-type",
    ],  # fmt: skip
)
def test_bad_inputs_are_refused_before_playing(run, damage, says):
    damage(run)
    _refused(run, says=says)


def test_result_fifo_does_not_hang(run):
    (run / "result.json").unlink()
    os.mkfifo(run / "result.json")
    done = _cmd("select", run, "--episodes", "80", timeout=120)
    assert done.returncode == 2 and "result.json: not a regular file" in done.stderr, done.stderr


def test_outputs_are_replaced_together(run):
    first = _cmd("select", run, "--episodes", "80")
    assert first.returncode == 0, first.stderr
    old = {n: (run / n).read_bytes() for n in OUTPUTS}
    (run / "deployed_model.zip").chmod(0o444)  # a read-only output is replaced by rename, not written through
    again = _cmd("select", run, "--episodes", "100")
    assert again.returncode == 0, again.stderr
    new = {n: (run / n).read_bytes() for n in OUTPUTS}
    from rl_swa import SWAPolicy

    assert (
        SWAPolicy.load(run / "deployed_policy.safetensors").metadata["deployed"]
        == json.loads(new["selection.json"])["deployed"]
    )
    assert json.loads(new["selection.json"])["budget"] == 100 and old["selection.json"] != new["selection.json"]
    assert not [p for p in run.iterdir() if p.name.startswith(".")]


def _cut(path: Path, before: str) -> None:
    text = path.read_text()
    path.write_text(text[: text.index(before)])


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, text[:500]
    path.write_text(text.replace(old, new, 1))


def test_every_command_installs_its_signal_handlers_before_heavy_imports():
    """Ctrl-C during start-up is one line (exit 3), not a traceback: every command module imports only the
    standard library before ``agents.cli._cli``, which installs the handlers (torch takes a second to import)."""
    for module in sorted((ROOT / "agents/cli").glob("*.py")):
        if module.name in ("__init__.py", "_cli.py"):
            continue
        before = []
        for node in ast.parse(module.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module == "agents.cli._cli":
                break
            if isinstance(node, ast.Import):
                before += [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
                before.append(node.module.split(".")[0])
        else:
            raise AssertionError(f"{module.name} never imports agents.cli._cli")
        assert set(before) <= sys.stdlib_module_names, (module.name, set(before) - sys.stdlib_module_names)


def test_a_select_section_added_to_a_finished_grid_says_how_to_select(tmp_path):
    config = str(ROOT / "configs/classic/cartpole_a2c.yaml")
    grid = [sys.executable, str(ROOT / "scripts/compare.py"), config, "--budget", "smoke", "--seeds", "1", "--jobs", "1",
            "--out", str(tmp_path), "--set", "variants=[baseline]", "--no-fork"]  # fmt: skip
    first = subprocess.run(grid, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    again = subprocess.run([*grid, "--set", "select.episodes=200"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    line = next(x for x in again.stdout.splitlines() if "have no selection" in x)
    assert line.startswith("1 finished runs") and "rl-swa select RUN_DIR --episodes 200" in line


def test_library_call_names_a_bad_source_and_prints_its_table(finished):
    from rl_swa import select_policy

    with pytest.raises(ValueError, match="a trained SWACallback or the path of a folder"):
        select_policy(None, "CartPole-v1")
    from rl_swa.table import with_decisions

    rows = [{"name": "online", "kind": "online", "race_mean": 500.0, "race_episodes": 14, "eliminated_in_round": None},
            {"name": "swa", "kind": "average", "race_mean": 338.0, "race_episodes": 4, "eliminated_in_round": 2}]  # fmt: skip
    table = with_decisions(rows, "online")
    text = str(table)
    assert text.splitlines()[0].split() == ["name", "kind", "statistics", "race", "confirmation", "decision"]
    assert "500.0 (14)" in text and "left in round 2" in text and "deployed" in text.splitlines()[1]
    assert table.to_markdown().splitlines()[2].startswith("| online | online |")


def test_a_signal_during_the_writes_leaves_the_new_outputs_whole(run, monkeypatch, capsys):
    """SIGTERM arrives between two renames: it waits until all three are in place, then stops (exit 3)."""
    import signal

    first = _cmd("select", run, "--episodes", "80")
    assert first.returncode == 0, first.stderr
    old = json.loads((run / "selection.json").read_text())
    from agents.cli import select as cli

    real_replace, calls = os.replace, []

    def replace(src, dst):
        real_replace(src, dst)
        if Path(dst).name in OUTPUTS and Path(dst).parent == run:  # the outputs moved into place (not temp writes)
            calls.append(dst)
            if len(calls) == 1:
                os.kill(os.getpid(), signal.SIGTERM)  # held until the other two are renamed

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(sys, "argv", ["rl-swa select", str(run), "--episodes", "100"])
    try:
        from agents.cli import _cli

        signal.signal(signal.SIGTERM, _cli._stopped_early)
        with pytest.raises(SystemExit) as stop:
            cli.main()
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    assert stop.value.code == 3 and len(calls) == 3
    new = json.loads((run / "selection.json").read_text())
    from rl_swa import SWAPolicy

    assert new["budget"] == 100 and old["budget"] == 80
    assert SWAPolicy.load(run / "deployed_policy.safetensors").metadata["deployed"] == new["deployed"]
    assert "all old or all new" in capsys.readouterr().err


def test_what_a_newcomer_reads(run):
    """A missing candidate file is said, the race prints where it is, the summary says what the budget
    bought, and --level's help gives its range and default."""
    (run / "best_policy.safetensors").unlink()
    done = _cmd("select", run, "--episodes", "80")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "note: no best_policy.safetensors" in out and "race round 1/" in out
    assert " of 80 episodes" in out and "wrote " in out and "selection.json" in out
    assert "(0, 0.5), default 0.05" in " ".join(_cmd("select", "--help").stdout.split())
