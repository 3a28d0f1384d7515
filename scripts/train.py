"""Train one run: (config, env, variant, seed, budget).

    python scripts/train.py configs/classic/cartpole_a2c.yaml --variant swa --seed 0 --budget short
    python scripts/train.py configs/mujoco/ddpg.yaml --env Hopper-v5 --variant baseline --seed 1 --fork
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from agents.builders import VARIANTS
from agents.config import ConfigError, load_config
from agents.runner import run
from scripts._cli import command_line, guarded


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="YAML experiment config")
    p.add_argument("--env", default=None, help="env id (default: the config's first env)")
    p.add_argument("--variant", default="swa", help=f"one of {', '.join(VARIANTS)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budget", default="short", help="a budget named in the config: smoke, short, paper")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a config field, e.g. swa.start=0.5")
    p.add_argument("--out", default="runs", help="root of the run directories")
    p.add_argument("--fork", action="store_true", help="continue from the shared prefix checkpoint (trained once up to the SWA start)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument("--threads", type=int, default=1, help="torch threads (one run per core is fastest)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


@guarded
def main() -> int:
    args = parser().parse_args()
    cfg = load_config(args.config, args.overrides)
    env_id = args.env or cfg.envs[0]
    if env_id not in cfg.envs:
        raise ConfigError(f"--env: {env_id!r} is not in the config's envs {cfg.envs}")
    if args.seed < 0:
        raise ConfigError(f"--seed: {args.seed} is not allowed; use an int >= 0")
    cfg.budget(args.budget)
    torch.set_num_threads(max(1, args.threads))
    result = run(cfg, env_id, args.variant, args.seed, args.budget, args.out, command_line(), args.overwrite, args.fork, progress=not args.no_progress)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    main()
