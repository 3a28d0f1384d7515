"""Shared command-line plumbing: one-line errors with exit code 2, thread settings."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from collections.abc import Callable

_STOP = ["interrupted before a checkpoint was written; run the same command again"]


def stop_message(text: str) -> None:
    """What an interrupt during start-up says (a command that writes no checkpoint says so)."""
    _STOP[0] = text


def _stopped_early(signum, frame) -> None:
    print(_STOP[0], file=sys.stderr)
    raise SystemExit(3)


# Ctrl-C or SIGTERM while the scripts start (imports take seconds): one line and exit code 3, no
# traceback. A run installs its own handlers (checkpoint, then exit 3) for its training loop.
signal.signal(signal.SIGINT, _stopped_early)
signal.signal(signal.SIGTERM, _stopped_early)


from agents.config import ConfigError  # noqa: E402  (after the handlers: its imports take time)

SEED_MAX = 2**32 - 1  # numpy's and gymnasium's seeds


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit code 2, as every other bad input's."""

    def __init__(self, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(**kwargs)

    def error(self, message: str):
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def int_in(lo: int, hi: int):
    """An argparse ``type``: an int in ``[lo, hi]``; the error names the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed; use an int in [{lo}, {hi}]") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is not allowed; use an int in [{lo}, {hi}]")
        return value

    return parse


def command_line() -> str:
    """The command that started this process, runnable again."""
    if sys.argv[0].startswith("rl-swa "):  # the console script (agents.cli.main)
        return shlex.join([*sys.argv[0].split(), *sys.argv[1:]])
    return shlex.join([sys.executable, *sys.argv])


def guarded(main: Callable[[], int | None]) -> Callable[[], None]:
    """Run ``main``; a ConfigError becomes one line on stderr and exit code 2 (no traceback)."""

    def wrapper() -> None:
        try:
            code = main()
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        raise SystemExit(code or 0)

    return wrapper
