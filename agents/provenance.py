"""What made a run: its resolved config, the code version and the CPU model.

A grid never reuses a run, or a prefix, made with another config or other code: the same seed
gives bit-identical runs only for the same config, code and CPU model.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

from agents.config import ConfigError, ExperimentConfig
from agents.rundir import read_yaml

ROOT = Path(__file__).resolve().parent.parent
NOT_RESULTS = ("resources", "select")  # where a run runs, and what is chosen after it: not what it trains


def config_identity(cfg: ExperimentConfig) -> dict[str, Any]:
    data = cfg.model_dump(mode="json")
    return {k: v for k, v in data.items() if k not in NOT_RESULTS}


def config_digest(cfg: ExperimentConfig) -> str:
    return hashlib.sha256(json.dumps(config_identity(cfg), sort_keys=True).encode()).hexdigest()[:16]


@functools.cache
def code_version() -> str:
    """The git commit of this checkout (``+dirty`` with uncommitted changes to tracked files), or the
    package version outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        if head.returncode == 0:
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True, timeout=10
            ).stdout.strip()
            return head.stdout.strip()[:12] + ("+dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        pass
    from rl_swa import __version__

    return f"rl-swa {__version__}"


@functools.cache
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def stamp(cfg: ExperimentConfig) -> dict[str, str]:
    """Recorded in a run's config.yaml and result.json."""
    return {"config_digest": config_digest(cfg), "code": code_version(), "cpu": cpu_model()}


def _first_difference(old: Any, new: Any, where: str = "") -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            if old.get(key) != new.get(key):
                return _first_difference(old.get(key), new.get(key), f"{where}.{key}" if where else str(key))
    return f"{where or 'config'}: {old!r} there, {new!r} now"


def check_same(path: Path, cfg: ExperimentConfig, code: bool = True) -> None:
    """Raise ConfigError if the run directory ``path`` was made with another config (or, with
    ``code``, other code). A directory without config.yaml is new and passes."""
    saved = path / "config.yaml"
    if not saved.is_file():
        return
    meta = read_yaml(saved)
    if not isinstance(meta.get("config"), dict):
        raise ConfigError(f"{saved}: holds no config; remove {path} to train it again")
    old = {k: v for k, v in meta["config"].items() if k not in NOT_RESULTS}
    new = config_identity(cfg)
    if old != new:
        raise ConfigError(
            f"{path} was made with another config ({_first_difference(old, new)}); "
            "use another --out or experiment name, or remove that directory"
        )
    if code and meta.get("code") != code_version():
        raise ConfigError(
            f"{path} was made by code {meta.get('code')}, this is {code_version()}; "
            "finish it with that code (a grid's worktree), or remove that directory"
        )
