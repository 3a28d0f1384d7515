"""Choose the averaging window after training, on validation episodes, and report it on test episodes.

    python scripts/posthoc.py runs/<experiment>/<env>/baseline/seed0 [--val-episodes 10] [--test-episodes 10]

Needs a run trained with ``swa.posthoc_points > 0`` (its ``posthoc.pt`` holds the running equal
average, and the power EMAs of ``swa.posthoc_sigma_rels``, at evenly spaced times). Candidates:

- every window [t_a, t_b] between two saved times, rebuilt exactly (``rl_swa.posthoc.window_average``);
- post-hoc EMA profiles at the end of the run for each ``--sigma-rels`` width, synthesized from
  the saved averages (``rl_swa.posthoc.synthesize_ema``; runs saved before power EMAs existed
  get windows only).

All are scored on validation episodes; the best of all, the best window and the best EMA profile
are then scored on test episodes next to the online policy and the run's fixed-start average.

Validation and test episodes are seeded from disjoint ranges (``episode_seeds``): the selection
code only ever receives validation seeds, so selecting on test episodes is impossible.
Writes ``posthoc.json`` in the run directory and prints it.
"""

from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path

from agents.cli._cli import Parser, guarded, int_in  # first: signals during start-up

# isort: split
import numpy as np  # noqa: E402  (after the handlers: it takes a second)
import torch  # noqa: E402  (after the handlers: it takes a second)

from agents.config import ConfigError, parse_config
from agents.provenance import code_version, cpu_model
from agents.rundir import read_yaml
from rl_swa.files import atomic_write
from rl_swa.selection import VALIDATION_OFFSET  # noqa: E402  validation seeds: eval seed + 1e6 + i; test seeds here: eval seed + i


def episode_seeds(split: str, base: int, n: int) -> list[int]:
    if split == "test":
        return [base + i for i in range(n)]
    if split == "validation":
        return [base + VALIDATION_OFFSET + i for i in range(n)]
    raise ValueError(f"split={split!r} is not supported; allowed: test, validation")


def episode_returns(
    policy, cfg, env_id: str, seeds: list[int], deterministic: bool, together: bool = False, on_step=None
) -> list[float]:
    """The return of one episode per seed, each episode's env reset with its own seed.

    ``together``: all episodes in one VecEnv (env ``i`` reset with ``seeds[i]``; consecutive seeds,
    as ``episode_seeds`` gives), one batched forward pass per step: about 2x faster for a CNN
    policy. The episodes start as they would alone, but a batched forward pass rounds differently
    from a one-row one (last bit), which a deterministic policy on a chaotic env (MuJoCo) turns
    into different returns: scores compared with each other must be played the same way.
    ``on_step(k, obs)``: called at every step of episode ``k`` (index into ``seeds``) with the
    observation the action was taken on."""
    from agents.envs import make_env
    from rl_swa.deploy import play_episodes  # the one code path that plays scored episodes

    def make(n: int, first: int):
        return make_env(cfg, env_id, n, first, training=False)  # SB3 resets env i with seed first + i

    if together:
        if list(seeds) != list(range(seeds[0], seeds[0] + len(seeds))):
            raise ValueError(f"episode_returns: seeds={seeds!r} is not allowed with together=True; give consecutive seeds")
        return play_episodes(policy, make, seeds, deterministic, on_step)
    out = []
    for k, seed in enumerate(seeds):
        hook = None if on_step is None else (lambda i, obs, k=k: on_step(k, obs))
        out += play_episodes(policy, make, [seed], deterministic, hook)
    return out


def play(policy, cfg, env_id: str, seeds: list[int], deterministic: bool, together: bool = False) -> float:
    """Mean return of one episode per seed (``episode_returns``)."""
    return float(np.mean(episode_returns(policy, cfg, env_id, seeds, deterministic, together)))


def windows(points: list[dict]) -> list[tuple[dict | None, dict]]:
    starts = [None, *points]
    return [(a, b) for i, a in enumerate(starts) for b in points[i:] if a is None or b["n"] > a["n"]]


def select_window(candidates, score_on_validation) -> tuple[int, list[float]]:
    """Index of the best candidate by validation score (the only scores this function sees)."""
    scores = [score_on_validation(c) for c in candidates]
    return int(np.argmax(scores)), scores


def candidates_of(points: list[dict], sigma_rels: list[float]) -> list[dict]:
    """Every window between saved times and every EMA profile: ``{"kind", "label", "weights", ...}``."""
    from rl_swa.posthoc import synthesize_ema, window_average

    out = []
    for a, b in windows(points):
        start = 0 if a is None else a["step"]
        out.append(
            {
                "kind": "window",
                "label": f"window {start}-{b['step']}",
                "from_step": start,
                "to_step": b["step"],
                "snapshots": b["n"] - (0 if a is None else a["n"]),
                "weights": window_average(b, a),
            }
        )
    if any(p.get("power") for p in points):
        for sigma in sigma_rels:
            weights, error = synthesize_ema(points, sigma)
            out.append(
                {
                    "kind": "ema",
                    "label": f"ema sigma_rel={sigma}",
                    "sigma_rel": sigma,
                    "to_step": points[-1]["step"],
                    "profile_error": round(error, 4),
                    "weights": weights,
                }
            )
    return out


def _load_run(run: Path):
    """(config, env id, saved points, online policy, fixed-start average or None) of a finished run."""
    from rl_swa import SWAPolicy

    for need in ("config.yaml", "policy.safetensors", "posthoc.pt"):
        if not (run / need).is_file():
            raise ConfigError(f"{run}: no {need} (train with --set swa.posthoc_points=10 and let the run finish)")
    meta = read_yaml(run / "config.yaml")
    cfg = parse_config(meta["config"], str(run / "config.yaml"))
    try:
        saved = torch.load(run / "posthoc.pt", weights_only=True)  # tensors and plain data only: loading runs no code
        online = SWAPolicy.load(run / "policy.safetensors", device="cpu")
        fixed_path = run / "swa_policy.safetensors"
        fixed = SWAPolicy.load(fixed_path, device="cpu") if fixed_path.exists() else None
    except (ValueError, RuntimeError, EOFError, OSError, pickle.UnpicklingError) as exc:
        raise ConfigError(f"{run}: {exc}".replace("\n", " ")) from None
    if not isinstance(saved, dict) or not isinstance(saved.get("points"), list):
        raise ConfigError(f"{run / 'posthoc.pt'}: holds no saved points")
    return cfg, meta["env"], saved, online, fixed


def _args() -> argparse.Namespace:
    p = Parser(description=__doc__)
    p.add_argument("run_dir")
    p.add_argument("--val-episodes", type=int_in(1, 10**5), default=10)
    p.add_argument("--test-episodes", type=int_in(1, 10**5), default=10)
    p.add_argument(
        "--together",
        action="store_true",
        help="play each policy's episodes in one VecEnv, one batched forward pass per step (about 2x faster "
        "on Atari); deterministic MuJoCo episodes then differ from one-at-a-time ones (see play)",
    )
    p.add_argument(
        "--sigma-rels",
        type=float,
        nargs="+",
        default=[0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.25],
        help="widths of the post-hoc EMA profiles to try (relative standard deviation, Karras et al. 2024)",
    )
    args = p.parse_args()
    from rl_swa.posthoc import check_sigma_rels

    try:
        check_sigma_rels("--sigma-rels", args.sigma_rels)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return args


def _policy_maker(online):
    """weights -> an SWAPolicy of the online policy's class holding them (and its normalizer)."""
    from rl_swa.deploy import policy_with

    return lambda weights: policy_with(online, weights, metadata={})


@guarded
def main() -> int:
    args = _args()
    torch.set_num_threads(1)
    run = Path(args.run_dir)
    cfg, env_id, saved, online, fixed = _load_run(run)
    det, base, tog = cfg.eval.deterministic, cfg.eval.seed, args.together
    points = saved["points"]
    val_seeds = episode_seeds("validation", base, args.val_episodes)
    test_seeds = episode_seeds("test", base, args.test_episodes)
    assert not set(val_seeds) & set(test_seeds)
    policy_with = _policy_maker(online)

    candidates = candidates_of(points, args.sigma_rels)
    best, val_scores = select_window(candidates, lambda c: play(policy_with(c["weights"]), cfg, env_id, val_seeds, det, tog))

    def described(i: int) -> dict:
        return {k: v for k, v in candidates[i].items() if k != "weights"} | {"validation": val_scores[i]}

    result = {
        "run": str(run),
        "env": env_id,
        "val_seeds": [val_seeds[0], val_seeds[-1]],
        "test_seeds": [test_seeds[0], test_seeds[-1]],
        "together": tog,
        "code": code_version(),  # of the scoring; the policies are the run's (its result.json)
        "cpu": cpu_model(),
        "saved_points": [(p["step"], p["n"]) for p in points],
        "windows_tried": sum(c["kind"] == "window" for c in candidates),
        "ema_profiles_tried": sum(c["kind"] == "ema" for c in candidates),
        "chosen": described(best),
        "test_online": play(online, cfg, env_id, test_seeds, det, tog),
        "test_posthoc": play(policy_with(candidates[best]["weights"]), cfg, env_id, test_seeds, det, tog),
        "validation": {c["label"]: v for c, v in zip(candidates, val_scores)},
    }
    for kind in ("window", "ema"):  # the best of each family, also chosen on validation only
        family = [i for i, c in enumerate(candidates) if c["kind"] == kind]
        if family:
            pick = max(family, key=lambda i: val_scores[i])
            result[f"chosen_{kind}"] = described(pick)
            result[f"test_posthoc_{kind}"] = (
                result["test_posthoc"]
                if pick == best
                else play(policy_with(candidates[pick]["weights"]), cfg, env_id, test_seeds, det, tog)
            )
    if fixed is not None:
        result["test_fixed_start"] = play(fixed, cfg, env_id, test_seeds, det, tog)
    atomic_write(run / "posthoc.json", json.dumps(result, indent=1))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    main()
