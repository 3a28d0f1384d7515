#!/usr/bin/env bash
set -u
cd /work/main
PY=.venv/bin/python
AV="swa.averages=[swa@0.5, swa@0.9, ema@0.999@0]"
$PY scripts/compare.py configs/classic/pendulum_ddpg.yaml --budget short --seeds 5 --jobs 2 \
  --set experiment=classic_pendulum_ddpg_posthoc --set "$AV" --set swa.posthoc_points=10
for s in 0 1 2 3 4; do [ -f runs/classic_pendulum_ddpg_posthoc/Pendulum-v1/baseline/seed$s/posthoc.json ] || $PY scripts/posthoc.py runs/classic_pendulum_ddpg_posthoc/Pendulum-v1/baseline/seed$s & 
  [ $((s % 2)) = 1 ] && wait; done; wait
$PY scripts/report.py runs/classic_pendulum_ddpg_posthoc
$PY scripts/compare.py configs/classic/cartpole_a2c.yaml --budget short --seeds 5 --jobs 2 \
  --set experiment=classic_cartpole_a2c_posthoc --set "$AV" --set swa.posthoc_points=10
for s in 0 1 2 3 4; do [ -f runs/classic_cartpole_a2c_posthoc/CartPole-v1/baseline/seed$s/posthoc.json ] || $PY scripts/posthoc.py runs/classic_cartpole_a2c_posthoc/CartPole-v1/baseline/seed$s &
  [ $((s % 2)) = 1 ] && wait; done; wait
$PY scripts/report.py runs/classic_cartpole_a2c_posthoc
for s in 0 1 2; do [ -f runs/mujoco_ddpg/Hopper-v5/baseline/seed$s/posthoc.json ] || $PY scripts/posthoc.py runs/mujoco_ddpg/Hopper-v5/baseline/seed$s & done; wait
$PY scripts/report.py runs/mujoco_ddpg
echo ALLDONE
