#!/usr/bin/env bash
# Create .venv and install rl-swa with everything the scripts and tests need (CPU torch).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -qq --upgrade pip
# torch 2.13.0 CPU: on this project's machines that wheel lies on disk; elsewhere pip fetches it
# from PyPI (set TORCH_SPEC to choose another build, e.g. TORCH_SPEC="torch" for CUDA).
.venv/bin/python -m pip install -qq "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install -qq -e ".[experiments,dev,atari,mujoco,export]"
# pip at -qq: errors only (setuptools' editable-install notice and a machine's pip settings print
# multi-line warnings that read like failures); say what was installed instead.
.venv/bin/python -c "import rl_swa, torch, stable_baselines3 as sb3; print(f'installed in .venv: rl-swa {rl_swa.__version__} (editable; extras experiments, dev, atari, mujoco, export) | torch {torch.__version__} | SB3 {sb3.__version__}')"
