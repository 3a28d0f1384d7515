"""Choose the policy to deploy from a folder you already have: race its candidates, confirm the leader.

    rl-swa select PATH [--episodes 200] [--level 0.05] [--rule fixed|sequential] [--test-episodes 0] [--default final|best]

PATH is one of (told apart by their files):
  - an RL Zoo experiment folder, logs/<algo>/<env>_<id>/ (algorithm, env, env_kwargs, wrappers,
    frame stack and normalization come from its config.yml and args.yml);
  - a folder of SB3 CheckpointCallback zips, rl_model_<N>_steps.zip (give --env, and --algo when
    the zips do not say; rl_model_vecnormalize_<N>_steps.pkl are used when present);
  - a run directory of rl-swa train/compare.

Candidates: the final model (the default a candidate must beat; --default best: the best model,
as `enjoy.py --load-best` runs it), the best model, every checkpoint, equal averages of the last k
checkpoints and EMA-weighted averages of the checkpoints (rl-swa runs: the final online weights,
the best evaluated ones, the averages, the post-hoc windows and EMAs). Each plays with the
normalization statistics of its own time where the folder has them, else the nearest; the table
says which. The race's leader replaces the default only when a one-sided paired test on fresh
episodes finds it better at --level. Actions: RL Zoo's rule (sampled on Atari, deterministic
elsewhere) unless --actions says otherwise.

Writes PATH/deployed/ as one unit (an rl-swa run: deployed_policy.safetensors, deployed_model.zip
and selection.json, as before): model.zip (plain ALGO.load), vecnormalize.pkl (the deployed
weights' statistics), policy.safetensors (loads without running code), results.json (the shape
huggingface_sb3 writes), selection.json, and RL Zoo's layout, which its enjoy.py runs:
    python -m rl_zoo3.enjoy --algo ALGO --env ENV -f PATH/deployed --exp-id 1
Nothing else in PATH changes. Zips and .pkl files are read with SB3's own loaders (they unpickle):
PATH must be a folder you trust.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agents.cli._cli import Parser, guarded, int_in, stop_message  # first: signals during start-up
from agents.config import ConfigError

stop_message("interrupted; the outputs are all old or all new; run the same command again")
ACTIONS = {"auto": None, "deterministic": True, "sampled": False}


def _args() -> argparse.Namespace:
    p = Parser(description=__doc__)
    p.add_argument("path", help="an RL Zoo experiment folder, a folder of SB3 checkpoints or an rl-swa run directory")
    p.add_argument(
        "--episodes", type=int_in(20, 10**6), default=200, help="validation budget over all candidates (default 200)"
    )
    p.add_argument(
        "--level",
        type=float,
        default=0.05,
        help="deploy a candidate only if better than the default at this level: a float in (0, 0.5), default 0.05",
    )
    p.add_argument(
        "--rule",
        choices=["fixed", "sequential"],
        default="fixed",
        help="fixed: one paired test on all the confirmation's episodes (default); sequential: a race with equal "
        "episodes a candidate each round and a confirmation in stages that stops once the answer is clear",
    )
    p.add_argument("--test-episodes", type=int_in(0, 10**5), default=0, help="also score the alternatives on N test episodes")
    p.add_argument("--env", default=None, help="env id of a folder of SB3 checkpoints (the other folders record theirs)")
    p.add_argument("--algo", default=None, help="algorithm of a checkpoint folder whose zips do not say (a2c, ppo, td3, ...)")
    p.add_argument("--default", choices=["final", "best"], default="final", help="what a candidate must beat (default final)")
    p.add_argument("--actions", choices=list(ACTIONS), default="auto", help="auto: RL Zoo's rule (sampled on Atari)")
    args = p.parse_args()
    if not 0 < args.level < 0.5:
        raise ConfigError(f"--level: {args.level} is not allowed; use a float in (0, 0.5), e.g. 0.05")
    return args


@guarded
def main() -> int:
    args = _args()
    import torch

    torch.set_num_threads(1)
    from agents.runner import locked
    from rl_swa.sources import SourceError, open_source
    from rl_swa.sources.rundir import matches as is_run

    path = Path(args.path)
    if path.is_dir() and is_run(path):
        return _run_dir(path, args)
    with locked(path.resolve()):
        try:
            from rl_swa.select_folder import select_source
            from rl_swa.selection import check_budget

            source = open_source(path, args.env, args.algo, args.default, ACTIONS[args.actions])
            print(source.describe(), flush=True)
            try:
                check_budget(len(source.candidates), args.episodes)
            except ValueError as exc:
                raise SourceError(f"--episodes: {exc}") from None
            from agents.provenance import code_version, cpu_model

            record = {"code": code_version(), "cpu": cpu_model()}
            _, selection = select_source(
                source, args.episodes, args.level, args.test_episodes, on_round=_progress, record=record, rule=args.rule
            )
        except SourceError as exc:
            raise ConfigError(str(exc)) from None
    from rl_swa.sources.deployed import zoo_command

    out = Path(selection["written"])
    files = "model.zip, vecnormalize.pkl if normalized, policy.safetensors, results.json, selection.json"
    _report(selection, source.notes, f"{out}/ ({files}); RL Zoo: {zoo_command(source, out)}")
    return 0


def _progress(line: str) -> None:
    """Where a long select is (an Atari race takes minutes): one line per round (stderr keeps errors only)."""
    print(line, flush=True)


def _report(selection: dict, notes: list[str], wrote: str) -> None:
    """The notes, the table of candidates, the decision, the test means and what was written. The
    outputs are complete by now: a signal while this prints is ignored (exit 0, not -2 or -15)."""
    import signal

    from agents.deploy import summary
    from rl_swa.table import with_decisions

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    for note in notes:
        print(f"note: {note}")
    print(with_decisions(selection["candidates"], selection["deployed"]))
    print(summary(selection))
    if "test" in selection:
        means = ", ".join(f"{k} {v:.1f}" for k, v in selection["test"]["means"].items())
        print(f"test ({len(selection['test']['returns']['deployed'])} episodes): {means}")
    print(f"wrote {wrote}")


def _run_dir(run: Path, args) -> int:
    from agents.deploy import OUTPUTS, select_run
    from agents.runner import locked

    if args.env or args.algo or args.default != "final" or args.actions != "auto":
        raise ConfigError(
            "--env, --algo, --default and --actions are for RL Zoo and checkpoint folders; a run records its own"
        )
    with locked(run):
        result = select_run(run, args.episodes, args.level, args.test_episodes, on_round=_progress, rule=args.rule)
    _report(result, result.get("notes", []), ", ".join(str(run / name) for name in OUTPUTS))
    return 0


if __name__ == "__main__":
    main()
