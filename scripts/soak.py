"""Soak test of checkpoint/resume.

Same as ``rl-swa soak``; the code is ``agents/cli/soak.py``.
"""

from agents.cli.soak import main

if __name__ == "__main__":
    main()
