"""Where a grid is: each run writes its step count to ``progress.json``; the driver reads them.

A grid runs for hours: ``compare.py`` shows the runs done / running / queued, the env steps of each
running run and an estimate of the time left: rich's live display on a terminal, a plain line every
few minutes in a log.
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


def summary(
    done: int, running: dict[str, Path], queued: list[tuple[str, float]], started: dict[str, tuple[float, int]]
) -> str:
    """One line: counts, each running run's steps, and the time left at the rates seen so far.

    ``queued``: (label, env steps it will train); ``started``: label -> (time, step) when first seen."""
    head, parts = _summary(done, running, queued, started)
    return head + (f" | {'; '.join(parts)}" if parts else "")


def _summary(done, running, queued, started) -> tuple[str, list[str]]:
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
    return f"progress: {done} done, {len(running)} running, {len(queued)} queued{eta}", parts


class Board:
    """Shows where a grid is. On a terminal: rich's live display (one line of counts and time left,
    one bar per running run), refreshed every 2 s. Otherwise (a log): :func:`summary` every ``every``
    seconds. Lines printed meanwhile (a finished job) go above the live display."""

    def __init__(self, every: float, console=None):
        from rich.console import Console

        self.console = console or Console()
        self.live = self.console.is_terminal
        self.every = min(every, 2.0) if self.live else every
        self.started: dict[str, tuple[float, int]] = {}
        self._bars, self._rows = None, {}

    def __enter__(self) -> Board:
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=self.console)
            self._rows["grid"] = self._bars.add_task("progress: starting", total=None)
            self._bars.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bars is not None:
            self._bars.stop()

    def show(self, done: int, running: dict[str, Path], queued: list[tuple[str, float]]) -> None:
        if self._bars is None:
            print(summary(done, running, queued, self.started), flush=True)
            return
        head, _ = _summary(done, running, queued, self.started)
        self._bars.update(self._rows["grid"], description=head)
        for label in [k for k in self._rows if k != "grid" and k not in running]:
            self._bars.remove_task(self._rows.pop(label))
        for label, path in running.items():
            p = read(path)
            if label not in self._rows:
                self._rows[label] = self._bars.add_task(label, total=None)
            if p is not None:
                self._bars.update(self._rows[label], completed=p["step"], total=p["total"])
