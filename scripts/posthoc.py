"""Choose the averaging window after training, on validation episodes, and report it on test episodes.

Same as ``rl-swa posthoc``; the code is ``agents/cli/posthoc.py``.
"""

from agents.cli.posthoc import main

if __name__ == "__main__":
    main()
