"""The ``rl-swa`` command: ``rl-swa train|compare|evaluate|posthoc|select|export|ensemble|report|soak ...``.

Each command is a module of this package with a ``main()``; ``scripts/<command>.py`` runs the same
(``scripts/select_policy.py`` for ``select``, which would hide the standard library's module).
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "train": "train one run (config, env, variant, seed, budget)",
    "compare": "a grid of baseline and SWA pairs, then its report",
    "evaluate": "score a saved policy for N episodes",
    "posthoc": "choose the averaging window after training",
    "select": "choose the policy to deploy: an rl-swa run, an RL Zoo folder, SB3 checkpoints",
    "export": "a deployed policy as an ONNX graph (normalization and action clipping inside)",
    "ensemble": "score the ensemble of a grid's averaged policies (MultiSWA)",
    "report": "statistics and the report of a grid",
    "soak": "kill and resume a short run at random moments",
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        usage = "\n".join(f"  {name:<9} {what}" for name, what in COMMANDS.items())
        print(
            f"usage: rl-swa <command> [options]  (rl-swa <command> -h for its options)\n\ncommands:\n{usage}", file=sys.stderr
        )
        asked = len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help")
        if not asked and len(sys.argv) > 1:
            print(f"error: unknown command {sys.argv[1]!r}; allowed: {', '.join(COMMANDS)}", file=sys.stderr)
        raise SystemExit(0 if asked else 2)
    name = sys.argv.pop(1)
    sys.argv[0] = f"rl-swa {name}"  # argparse's program name
    importlib.import_module(f"agents.cli.{name}").main()
