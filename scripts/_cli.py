"""Shared command-line plumbing: one-line errors with exit code 2, thread settings."""

from __future__ import annotations

import shlex
import signal
import sys
from collections.abc import Callable

from agents.config import ConfigError


def command_line() -> str:
    return shlex.join([sys.executable, *sys.argv])


def guarded(main: Callable[[], int | None]) -> Callable[[], None]:
    """Run ``main``; a ConfigError becomes one line on stderr and exit code 2 (no traceback); Ctrl-C or
    SIGTERM before a run's own handler is in place, one line and exit code 3."""

    def wrapper() -> None:
        old = signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM before training: as Ctrl-C
        try:
            code = main()
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt:  # before any checkpoint (a run checkpoints and exits 3 itself)
            print("interrupted before a checkpoint was written; run the same command again", file=sys.stderr)
            raise SystemExit(3) from None
        finally:
            signal.signal(signal.SIGTERM, old)
        raise SystemExit(code or 0)

    return wrapper
