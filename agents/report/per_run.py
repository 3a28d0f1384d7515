"""Per-run JSON files of the evidence scripts (oracle_capture.py, checkpoint_averages.py): found and tabled."""

from __future__ import annotations

import json
from pathlib import Path

from rl_swa.files import atomic_write


def per_run(paths: list[str | Path], name: str) -> list[dict]:
    """Every ``name`` under ``paths`` (run directories, or folders searched recursively), in path order."""
    found = []
    for p in map(Path, paths):
        found += [p / name] if (p / name).is_file() else sorted(p.rglob(name))
    return [json.loads(f.read_text()) for f in found]


def share(part: float, whole: float) -> str:
    """``part`` as a percentage of a positive ``whole`` (n/a otherwise): a share of a gain kept."""
    return f"{100 * part / whole:.0f}%" if whole > 0 else "n/a"


def emit(lines: list[str], out: str | None = None) -> None:
    """Print a markdown table; also write it to ``out`` when given."""
    text = "\n".join(lines)
    print(text)
    if out:
        atomic_write(Path(out), text + "\n")
