"""Run the grid envs x {baseline, swa} x seeds in a local process pool, then write the report.

Same as ``rl-swa compare``; the code is ``agents/cli/compare.py``.
"""

from agents.cli.compare import main

if __name__ == "__main__":
    main()
