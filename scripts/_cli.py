"""Shared command-line plumbing: one-line errors with exit code 2, thread settings."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable

from agents.config import ConfigError


def command_line() -> str:
    return shlex.join([sys.executable, *sys.argv])


def guarded(main: Callable[[], int | None]) -> Callable[[], None]:
    """Run ``main``; a ConfigError becomes one line on stderr and exit code 2 (no traceback)."""

    def wrapper() -> None:
        try:
            code = main()
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(130) from None
        raise SystemExit(code or 0)

    return wrapper
