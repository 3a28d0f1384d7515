"""Statistics and the results report of a compare grid.

Same as ``rl-swa report``; the code is ``agents/cli/report.py``.
"""

from agents.cli.report import main

if __name__ == "__main__":
    main()
