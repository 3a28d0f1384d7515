"""Train one run: (config, env, variant, seed, budget).

    python scripts/train.py configs/classic/cartpole_a2c.yaml --variant swa --seed 0 --budget short
    python scripts/train.py configs/mujoco/ddpg.yaml --env Hopper-v5 --variant baseline --seed 1 --fork
    python scripts/train.py --resume runs/classic_cartpole_a2c/CartPole-v1/swa/seed0

SIGINT/SIGTERM: the run writes a checkpoint, exits with code 3 and says how to resume.
NaN/Inf weights with on_divergence=stop (the default): exit code 4, the last good checkpoint kept.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from agents.cli._cli import SEED_MAX, Parser, command_line, guarded, int_in  # first: signals during start-up

# isort: split
import torch  # noqa: E402  (after the handlers)

from agents.builders import VARIANTS  # noqa: E402  (after the handlers)
from agents.config import ConfigError, load_config, parse_config
from agents.rundir import read_yaml
from agents.runner import Diverged, Interrupted, run


def parser() -> argparse.ArgumentParser:
    p = Parser(description=__doc__)
    p.add_argument("config", nargs="?", help="YAML experiment config")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue this run directory from its newest checkpoint")
    p.add_argument("--env", default=None, help="env id (default: the config's first env)")
    p.add_argument("--variant", default="swa", help=f"one of {', '.join(VARIANTS)}")
    p.add_argument("--seed", type=int_in(0, SEED_MAX), default=0)
    p.add_argument("--budget", default="short", help="a budget named in the config: smoke, short, paper")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. swa.start=0.5",
    )
    p.add_argument("--out", default="runs", help="root of the run directories")
    p.add_argument(
        "--fork", action="store_true", help="continue from the shared prefix checkpoint (trained once up to the SWA start)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument("--threads", type=int_in(1, 1024), default=1, help="torch threads (one run per core is fastest)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


@guarded
def main() -> int:
    args = parser().parse_args()
    torch.set_num_threads(max(1, args.threads))
    if args.resume:
        return resume(args)
    if not args.config:
        raise ConfigError("config: give a YAML config, or --resume RUN_DIR")
    cfg = load_config(args.config, args.overrides)
    env_id = args.env or cfg.envs[0]
    if env_id not in cfg.envs:
        raise ConfigError(f"--env: {env_id!r} is not in the config's envs {cfg.envs}")
    cfg.budget(args.budget)
    return _train(
        cfg, env_id, args.variant, args.seed, args.budget, args.out, args.overwrite, args.fork, not args.no_progress, False
    )


def _train(cfg, env_id, variant, seed, budget, out, overwrite, fork, progress, resume_run) -> int:
    try:
        result = run(
            cfg, env_id, variant, seed, budget, out, command_line(), overwrite, fork, progress=progress, resume=resume_run
        )
    except Diverged as exc:
        print(f"diverged: {exc}", file=sys.stderr)
        return 4
    except Interrupted as stop:
        print(
            f"interrupted at step {stop.step}: checkpoint {stop.checkpoint}; resume with: "
            f"python scripts/train.py --resume {stop.path}",
            file=sys.stderr,
        )
        return 3
    print(json.dumps(result))
    return 0


def resume(args) -> int:
    path = Path(args.resume)
    saved = path / "config.yaml"
    if not saved.is_file():
        raise ConfigError(f"--resume {path}: not a run directory (no config.yaml)")
    if (path / "result.json").exists():
        raise ConfigError(f"--resume {path}: this run is finished (result.json exists)")
    meta = read_yaml(saved)
    if meta.get("variant") not in VARIANTS or not isinstance(meta.get("config"), dict):
        raise ConfigError(f"--resume {path}: not a baseline/swa run directory")
    cfg = parse_config(meta["config"], str(saved))
    # runs/<experiment>/<env>/<variant>/seed<k> -> the root is four levels up
    root = path.resolve().parents[3]
    return _train(
        cfg,
        meta["env"],
        meta["variant"],
        int(meta["seed"]),
        meta["budget"],
        root,
        False,
        bool(meta.get("fork")),
        not args.no_progress,
        True,
    )


if __name__ == "__main__":
    main()
