"""Soak test of checkpoint/resume: kill a short DDPG Pendulum run at random moments, resume it each
time, and compare the result with its uninterrupted twin.

    python scripts/soak.py [--kills 20] [--seed 0] [--out NEW_OR_EMPTY_DIR]

Each kill is SIGKILL or SIGTERM (chosen at random) after a random delay; the run is then resumed
with ``train.py --resume``. Prints what it did and whether the final weights, evaluation history
and result match the twin bit for bit. Exit code 0 when they match.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from agents.cli._cli import SEED_MAX, Parser, int_in  # first: signals during start-up

# isort: split
import torch  # noqa: E402  (after the handlers)

ROOT = Path(__file__).resolve().parents[2]  # the repository (configs/)
CONFIG = ROOT / "configs/classic/pendulum_ddpg.yaml"
OVERRIDES = [
    "budgets.smoke.timesteps=3000",
    "budgets.smoke.checkpoint_every=150",
    "budgets.smoke.eval_freq=500",
    "budgets.smoke.hyperparams.learning_starts=200",
]


def train_cmd(out: Path) -> list[str]:
    sets = [a for o in OVERRIDES for a in ("--set", o)]
    return [
        sys.executable,
        "-m",
        "agents.cli.train",
        str(CONFIG),
        "--budget",
        "smoke",
        "--out",
        str(out),
        "--no-progress",
        *sets,
    ]


def run_dir(out: Path) -> Path:
    return out / "classic_pendulum_ddpg/Pendulum-v1/swa/seed0"


def weights(run: Path) -> dict:
    with zipfile.ZipFile(run / "model.zip") as z:
        return torch.load(io.BytesIO(z.read("policy.pth")), weights_only=True)


def _args() -> argparse.Namespace:
    p = Parser(description=__doc__)
    p.add_argument("--kills", type=int_in(1, 10_000), default=20)
    p.add_argument("--seed", type=int_in(0, SEED_MAX), default=0, help="seed of the kill schedule")
    p.add_argument("--out", default=None, help="a new or empty folder (default: a new temporary folder); never cleared")
    p.add_argument("--min-delay", type=float, default=2.0, help="seconds between a (re)start and its kill, at least")
    p.add_argument(
        "--max-delay", type=float, default=12.0, help="seconds between a (re)start and its kill, at most (start-up takes ~3 s)"
    )
    return p.parse_args()


def main() -> int:
    args = _args()
    rng = random.Random(args.seed)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="rl_swa_soak."))
    if out.exists() and any(out.iterdir()):
        print(
            f"error: --out {out}: not empty; give a new or empty folder (soak.py never deletes what it did not make)",
            file=sys.stderr,
        )
        return 2
    print(f"runs in {out}")
    t0 = time.time()
    subprocess.run(train_cmd(out / "twin"), check=True, capture_output=True)
    print(f"twin: uninterrupted run done in {time.time() - t0:.0f} s")
    cut = out / "cut"
    cmd = train_cmd(cut)
    kills = 0
    while True:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if kills < args.kills:
            delay = rng.uniform(args.min_delay, args.max_delay)
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                sig = rng.choice([signal.SIGKILL, signal.SIGTERM])
                proc.send_signal(sig)
                kills += 1
        stdout, stderr = proc.communicate()
        ckpts = sorted((run_dir(cut) / "ckpt").glob("*.ckpt")) if run_dir(cut).exists() else []
        last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
        if proc.returncode == 0:
            print(f"finished (exit 0) after {kills} kills")
            break
        name = {-9: "SIGKILL", 3: "SIGTERM -> checkpoint, exit 3", -15: "SIGTERM before training started"}.get(
            proc.returncode, f"exit {proc.returncode}"
        )
        print(
            f"kill {kills:2d}: {name}; checkpoints now {[c.name for c in ckpts]}"
            + (f"; says: {last[:90]}" if proc.returncode == 3 else "")
        )
        if proc.returncode not in (-9, 3, -15):
            print(stderr[-2000:])
            return 1
        if run_dir(cut).exists() and (run_dir(cut) / "config.yaml").exists():
            cmd = [sys.executable, "-m", "agents.cli.train", "--resume", str(run_dir(cut)), "--no-progress"]
        else:
            cmd = train_cmd(cut)  # killed before the run directory was written: start again
            shutil.rmtree(cut, ignore_errors=True)
    return _compare_with_twin(out / "twin", cut, kills)


def _compare_with_twin(twin: Path, cut: Path, kills: int) -> int:
    """0 when the interrupted run ended with the twin's weights, evaluations and result, bit for bit."""
    a, b = weights(run_dir(twin)), weights(run_dir(cut))
    same_weights = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    same_evals = (run_dir(twin) / "eval.csv").read_text() == (run_dir(cut) / "eval.csv").read_text()
    ra, rb = (json.loads((run_dir(d) / "result.json").read_text()) for d in (twin, cut))
    same_result = all(ra[k] == rb[k] for k in ("final_online", "final_swa", "n_averaged", "timesteps"))
    print(
        f"kills: {kills}; final weights identical: {same_weights}; eval history identical: {same_evals}; "
        f"result identical: {same_result} (final online {rb['final_online']}, swa {rb['final_swa']})"
    )
    return 0 if same_weights and same_evals and same_result else 1


if __name__ == "__main__":
    raise SystemExit(main())
