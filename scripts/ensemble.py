"""Score the ensemble of a grid's averaged policies (MultiSWA) against each of them.

Same as ``rl-swa ensemble``; the code is ``agents/cli/ensemble.py``.
"""

from agents.cli.ensemble import main

if __name__ == "__main__":
    main()
