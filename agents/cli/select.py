"""Choose the policy to deploy from a finished run: race its candidates, confirm the leader.

    rl-swa select runs/<experiment>/<env>/<variant>/seed<k> [--episodes 200] [--level 0.05] [--test-episodes 0]

Candidates (those the run saved): the final online weights (the default), the best evaluated
online weights (``best_policy.safetensors``: what SB3's ``EvalCallback`` keeps), the averages at the
end (``swa_policy.safetensors``, ``average_<name>.safetensors``) and, with ``posthoc.pt``, the online
weights at each saved point, the windows ending at the last point and post-hoc EMA profiles.
The leader of a race on validation episodes replaces the online weights only when a one-sided
paired test on fresh episodes finds it better at ``--level`` (``rl_swa.selection``).

Writes into the run directory ``deployed_policy.safetensors`` (``rl_swa.SWAPolicy.load``),
``deployed_model.zip`` (the run's SB3 model with the deployed weights: ``A2C.load`` / ``DDPG.load``;
like any SB3 zip it does not carry ``VecNormalize`` statistics, the ``.safetensors`` file does) and
``selection.json`` (every candidate's episodes and means, the decision, its test, wall time).
``--test-episodes N`` also scores the deployed policy, the online weights, the best evaluated ones,
the fixed-start average and the post-hoc choice of ``posthoc.json`` (if any) on N test episodes,
seeded apart from every validation and training evaluation episode.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from agents.cli._cli import Parser, guarded, int_in  # first: signals during start-up
from agents.config import ConfigError


def _args() -> argparse.Namespace:
    p = Parser(description=__doc__)
    p.add_argument("run_dir")
    p.add_argument(
        "--episodes", type=int_in(20, 10**6), default=200, help="validation budget over all candidates (default 200)"
    )
    p.add_argument("--level", type=float, default=0.05, help="deploy a candidate only if better than online at this level")
    p.add_argument("--test-episodes", type=int_in(0, 10**5), default=0, help="also score the alternatives on N test episodes")
    args = p.parse_args()
    if not 0 < args.level < 0.5:
        raise ConfigError(f"--level: {args.level} is not allowed; use a float in (0, 0.5), e.g. 0.05")
    return args


@guarded
def main() -> int:
    args = _args()
    torch.set_num_threads(1)
    from agents.deploy import select_run, summary

    run = Path(args.run_dir)
    result = select_run(run, args.episodes, args.level, args.test_episodes)
    print(f"{summary(result)}; {run / 'selection.json'}")
    return 0


if __name__ == "__main__":
    main()
