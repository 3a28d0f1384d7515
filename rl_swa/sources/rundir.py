"""A run directory of ``rl-swa train`` / ``compare``: the candidates it saved (the final online
weights, the best evaluated ones, the averages, and with ``posthoc.pt`` the saved points, windows
and post-hoc EMA profiles). Reading its config needs the pipeline (``rl-swa[experiments]``)."""

from __future__ import annotations

from pathlib import Path

from rl_swa.sources import Source
from rl_swa.sources.zips import SourceError


def matches(path: Path) -> bool:
    return (path / "config.yaml").is_file() and (path / "result.json").exists()  # a damaged one is refused later


def open(path: Path, env: str | None, algo: str | None, default: str, deterministic: bool | None) -> Source:  # noqa: A001
    try:
        from agents.builders import ALGORITHMS
        from agents.config import ConfigError
        from agents.deploy import load_candidates
        from agents.envs import make_env
    except ImportError as exc:
        raise SourceError(
            f"{path}: an rl-swa run directory needs the pipeline ({exc.name}): pip install 'rl-swa[experiments]'"
        ) from None
    try:
        cfg, env_id, candidates, _, _, notes = load_candidates(path)
    except ConfigError as exc:
        raise SourceError(str(exc)) from None
    if env is not None and env != env_id:
        raise SourceError(f"--env: {env!r} but {path / 'config.yaml'} says the run trained on {env_id!r}")
    if algo is not None and algo.lower() != cfg.algo:
        raise SourceError(f"--algo: {algo!r} but {path / 'config.yaml'} says the run used {cfg.algo!r}")
    if default == "best":
        best = [c for c in candidates if c.kind == "best"]
        if not best:
            raise SourceError(f"--default best: {path} has no best_policy.safetensors")
        candidates = [best[0], *(c for c in candidates if c is not best[0])]
    mode = cfg.eval.deterministic if deterministic is None else deterministic
    return Source(
        "rl-swa run",
        path,
        env_id,
        cfg.algo,
        lambda n, seed: make_env(cfg, env_id, n, seed, training=False),
        candidates,
        mode,  # the run's own evaluation mode unless overridden
        model_zip=path / "model.zip",
        algo_class=ALGORITHMS[cfg.algo],
        notes=notes,
        found="final online weights, " + ", ".join(c.name for c in candidates[1:4]) + (", ..." if len(candidates) > 4 else ""),
    )
