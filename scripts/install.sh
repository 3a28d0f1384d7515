#!/usr/bin/env bash
# Create .venv and install rl-swa with everything the scripts and tests need (CPU torch).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch 2.13.0 CPU: on this project's machines that wheel lies on disk; elsewhere pip fetches it
# from PyPI (set TORCH_SPEC to choose another build, e.g. TORCH_SPEC="torch" for CUDA).
.venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install -q -e ".[experiments,dev,atari,mujoco]"
.venv/bin/python -c "import rl_swa, torch, stable_baselines3; print('rl-swa', rl_swa.__version__, '| torch', torch.__version__, '| SB3', stable_baselines3.__version__)"
