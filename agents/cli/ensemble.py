"""Score the ensemble of a grid's averaged policies (MultiSWA) against each of them, on test episodes.

    python scripts/ensemble.py runs/<experiment> --env Hopper-v5 [--variant baseline] [--test-episodes 10]

Members: every finished seed's ``swa_policy.safetensors`` of one (env, variant). The ensemble acts
with the members' mean action (continuous) or mean probability (discrete) (``rl_swa.EnsemblePolicy``).
The ensemble, each member, each seed's online policy and the ensemble of the seeds' online
policies (MultiSWA's rival at equal compute) play the same test episodes as
``scripts/posthoc.py`` (seeds from the config's ``eval.seed``); with ``swa.swag_rank`` set, so do
each seed's SWAG policy and MultiSWAG (every seed's drawn policies as one ensemble). Writes
``<experiment>/ensemble_<env>_<variant>.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from agents.cli._cli import Parser, guarded, int_in  # first: signals during start-up

# isort: split
import numpy as np  # noqa: E402  (after the handlers: it takes a second)

from agents.config import ConfigError, parse_config
from agents.rundir import read_yaml
from rl_swa.files import atomic_write


def members_of(experiment: Path, env_id: str, variant: str) -> list[Path]:
    """The seed folders of (env, variant) that finished with an averaged policy, in seed order."""
    folder = experiment / env_id.replace("/", "_") / variant
    runs = sorted(folder.glob("seed*"), key=lambda p: int(p.name[4:]) if p.name[4:].isdigit() else -1)
    return [r for r in runs if (r / "result.json").is_file() and (r / "swa_policy.safetensors").is_file()]


def _episodes_with_disagreement(swag, cfg, env_id: str, seeds: list[int], det: bool) -> tuple[list[float], list[float]]:
    """Per test episode: the SWAG policy's return, and how much its drawn policies disagree on the
    states it visited (``SWAGPolicy.disagreement``)."""
    from agents.cli.posthoc import episode_returns

    seen = [[] for _ in seeds]
    returns = episode_returns(swag, cfg, env_id, seeds, det, on_step=lambda k, obs: seen[k].append(obs))
    return returns, [swag.disagreement(np.stack(states)) for states in seen]


def _swag_scores(runs: list[Path], cfg, env_id: str, seeds: list[int], det: bool) -> dict:
    """When every run saved a SWAG policy (``swa.swag_rank``): each seed's SWAG policy (the mean over its
    drawn policies) and MultiSWAG (one ensemble of every seed's drawn policies), on the same episodes;
    and whether the drawn policies' disagreement on an episode's states goes with a lower return
    (Spearman's rank correlation over all test episodes of all seeds)."""
    from scipy.stats import spearmanr

    from agents.cli.posthoc import play
    from rl_swa import EnsemblePolicy, SWAGPolicy

    if not all((r / "swag_policy.safetensors").is_file() for r in runs):
        return {}
    try:
        swags = [SWAGPolicy.load(r / "swag_policy.safetensors", device="cpu") for r in runs]
    except (ValueError, OSError) as exc:
        raise ConfigError(str(exc).replace("\n", " ")) from None
    episodes = [_episodes_with_disagreement(s, cfg, env_id, seeds, det) for s in swags]
    scores = [float(np.mean(returns)) for returns, _ in episodes]
    pairs = [(r, d) for returns, dis in episodes for r, d in zip(returns, dis)]
    rho = spearmanr(*zip(*pairs)).statistic if len({d for _, d in pairs}) > 1 else float("nan")
    multi = EnsemblePolicy([m for s in swags for m in s.ensemble().members], seed=swags[0].seed)
    return {
        "test_swag": scores,
        "test_swag_mean": float(np.mean(scores)),
        "swag": {"rank": swags[0].rank, "n_samples": swags[0].n_samples, "scale": swags[0].scale},
        "test_multiswag": play(multi, cfg, env_id, seeds, det),
        "swag_episodes": [{"returns": r, "disagreement": d} for r, d in episodes],
        "swag_disagreement_vs_return_spearman": None if rho != rho else float(rho),
    }


@guarded
def main() -> int:
    p = Parser(description=__doc__)
    p.add_argument("experiment_dir")
    p.add_argument("--env", required=True)
    p.add_argument("--variant", default="baseline")
    p.add_argument("--test-episodes", type=int_in(1, 10**5), default=10)
    args = p.parse_args()
    import torch

    from agents.cli.posthoc import episode_seeds, play
    from rl_swa import EnsemblePolicy, SWAPolicy

    torch.set_num_threads(1)
    experiment = Path(args.experiment_dir)
    runs = members_of(experiment, args.env, args.variant)
    if len(runs) < 2:
        raise ConfigError(
            f"{experiment}: {len(runs)} finished {args.env} {args.variant} runs with swa_policy.safetensors; need 2 or more"
        )
    cfg = parse_config(read_yaml(runs[0] / "config.yaml")["config"], str(runs[0] / "config.yaml"))
    seeds, det = episode_seeds("test", cfg.eval.seed, args.test_episodes), cfg.eval.deterministic
    try:
        members = [SWAPolicy.load(r / "swa_policy.safetensors", device="cpu") for r in runs]
        online = [SWAPolicy.load(r / "policy.safetensors", device="cpu") for r in runs]
    except (ValueError, OSError) as exc:
        raise ConfigError(str(exc).replace("\n", " ")) from None
    averaged = [play(m, cfg, args.env, seeds, det) for m in members]
    result = {
        "experiment": str(experiment),
        "env": args.env,
        "variant": args.variant,
        "seeds": [r.name for r in runs],
        "test_seeds": [seeds[0], seeds[-1]],
        "test_ensemble": play(EnsemblePolicy(members), cfg, args.env, seeds, det),
        "test_members": averaged,
        "test_members_mean": float(np.mean(averaged)),
        "test_best_member": float(np.max(averaged)),
        "test_online": [play(m, cfg, args.env, seeds, det) for m in online],
        # MultiSWA's fair rival at equal compute: the same seeds' online weights as one ensemble
        "test_online_ensemble": play(EnsemblePolicy(online), cfg, args.env, seeds, det),
    }
    result.update(_swag_scores(runs, cfg, args.env, seeds, det))
    atomic_write(experiment / f"ensemble_{args.env.replace('/', '_')}_{args.variant}.json", json.dumps(result, indent=1))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    main()
