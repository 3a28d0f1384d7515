"""Train one run: (config, env, variant, seed, budget).

Same as ``rl-swa train``; the code is ``agents/cli/train.py``.
"""

from agents.cli.train import main

if __name__ == "__main__":
    main()
