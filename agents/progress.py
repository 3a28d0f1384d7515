"""Where a grid is: each run writes its step count to ``progress.json``; the driver reads them.

A grid runs for hours: ``compare.py`` prints, every few minutes, the runs done / running / queued,
the env steps of each running run and an estimate of the time left.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from stable_baselines3.common.callbacks import BaseCallback

from rl_swa.files import atomic_write

FILE = "progress.json"


class ProgressFile(BaseCallback):
    """Write ``{"step", "total", "time"}`` to ``<run dir>/progress.json`` about every 1% of the run."""

    def __init__(self, path: Path, total: int):
        super().__init__()
        self.path, self.total = Path(path) / FILE, int(total)
        self.every = max(1, self.total // 100)
        self._next = 0

    def _write(self) -> None:
        atomic_write(self.path, json.dumps({"step": int(self.num_timesteps), "total": self.total, "time": time.time()}))

    def _on_training_start(self) -> None:
        self._next = self.num_timesteps
        self._on_step()

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._write()
            self._next = self.num_timesteps + self.every
        return True

    def _on_training_end(self) -> None:
        self._write()


def read(run_dir: Path) -> dict | None:
    try:
        return json.loads((Path(run_dir) / FILE).read_text())
    except (OSError, ValueError):
        return None


def summary(done: int, running: dict[str, Path], queued: list[tuple[str, float]], started: dict[str, tuple[float, int]]) -> str:
    """One line: counts, each running run's steps, and the time left at the rates seen so far.

    ``queued``: (label, env steps it will train); ``started``: label -> (time, step) when first seen."""
    parts, rates, left = [], [], 0.0
    for label, path in running.items():
        p = read(path)
        if p is None:
            parts.append(f"{label} starting")
            continue
        t0, s0 = started.setdefault(label, (p["time"], p["step"]))
        if p["time"] > t0 and p["step"] > s0:
            rates.append((p["step"] - s0) / (p["time"] - t0))
        left += p["total"] - p["step"]
        parts.append(f"{label} {p['step']:,}/{p['total']:,}")
    left += sum(steps for _, steps in queued)
    eta = ""
    if rates:  # runs in parallel: len(running) at the mean rate each
        hours = left / (sum(rates) / len(rates) * max(1, len(running))) / 3600
        eta = f"; about {hours:.1f} h" if hours >= 1 else f"; about {max(1, round(hours * 60))} min"
        eta += " left at the current speed"
    return f"progress: {done} done, {len(running)} running, {len(queued)} queued{eta}" + (f" | {'; '.join(parts)}" if parts else "")
