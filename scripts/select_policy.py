"""Choose the policy to deploy from a finished run.

Same as ``rl-swa select``; the code is ``agents/cli/select.py``. Not named ``select.py``: a script's
folder comes first on ``sys.path``, and a ``select.py`` there would hide the standard library's ``select``.
"""

from agents.cli.select import main

if __name__ == "__main__":
    main()
