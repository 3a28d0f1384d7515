"""Evaluate a saved SWAPolicy or SB3 model for N episodes.

Same as ``rl-swa evaluate``; the code is ``agents/cli/evaluate.py``.
"""

from agents.cli.evaluate import main

if __name__ == "__main__":
    main()
