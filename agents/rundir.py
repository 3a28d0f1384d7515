"""Reading a run directory's files: a missing, truncated or damaged file is one ConfigError naming it."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import yaml

from agents.config import ConfigError


def _text(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({type(exc).__name__})") from None


def read_json(path: Path) -> Any:
    try:
        return json.loads(_text(path))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: truncated or not JSON ({exc.msg} at line {exc.lineno})") from None


def read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(_text(path))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: truncated or not YAML ({getattr(exc, 'problem', None) or type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: truncated or not a run's YAML mapping")
    return data


def read_csv(path: Path) -> list[dict[str, float]]:
    """Rows of numbers (an empty cell is NaN)."""
    try:
        rows = list(csv.DictReader(io.StringIO(_text(path))))
        return [{k: float(v) if v not in ("", None) else float("nan") for k, v in row.items()} for row in rows]
    except (ValueError, TypeError, csv.Error) as exc:
        raise ConfigError(f"{path}: truncated or not a numeric CSV ({exc})") from None


def training_wall_s(result: dict) -> float | None:
    """A run's training wall time from its result.json. A resumed run's ``wall_s`` is its last
    session's only, a forked arm's its own steps only (the shared prefix was trained once for both
    arms): the whole run is then estimated at that speed (``steps_per_s``)."""
    if result.get("resumed_from") is None and not result.get("fork"):
        return result.get("wall_s")
    rate = result.get("steps_per_s")
    return round(result["timesteps"] / rate, 1) if rate else None
