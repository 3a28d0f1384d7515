#!/usr/bin/env bash
# The evidence of docs/results/any-run.md: runs trained by RL Zoo itself (its own hyperparameters,
# nothing of rl-swa in the training), then `rl-swa select` on each folder with 50 test episodes.
#
#   bash scripts/any_run.sh train     # RL Zoo trains every run that has no final model yet (one at a time)
#   bash scripts/any_run.sh select    # rl-swa select on every trained folder without deployed/
#   bash scripts/any_run.sh enjoy     # RL Zoo's enjoy.py on every deployed/ folder (1,000 steps), its exit code into enjoy.log
#   bash scripts/any_run.sh collect   # the small files (selection.json, results.json, RL Zoo's records) into docs/results/any_run/
#
# ZOO_DIR (default: ../campaign/zoo next to the repository) holds the runs; PY: the Python with rl_zoo3; RLSWA: rl-swa.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
DIR=${ZOO_DIR:-$(dirname "$REPO")/campaign/zoo}
PY=${PY:-$REPO/.venv/bin/python}
RLSWA=${RLSWA:-$REPO/.venv/bin/rl-swa}
# algo | env | seeds | checkpoint and evaluation frequency (env steps) | further rl_zoo3.train flags
# Frequencies give 20 checkpoints and 20 evaluations of RL Zoo's 5 episodes. Hopper-v4 (RL Zoo's MuJoCo entry, normalize: true)
# at 300k of its 1M steps: the budget this grid affords.
RUNS=(
  "a2c|CartPole-v1|1 2 3 4 5|25000|"
  "a2c|Acrobot-v1|1 2 3 4 5|25000|"
  "td3|Pendulum-v1|1 2 3 4 5|1000|"
  "a2c|Hopper-v4|1 2 3|15000|-n 300000"
)

each_run() {  # $1 ALGO ENV SEED FREQ EXTRA for every run of RUNS
  local algo env seeds freq extra seed
  for line in "${RUNS[@]}"; do
    IFS='|' read -r algo env seeds freq extra <<< "$line"
    for seed in $seeds; do "$1" "$algo" "$env" "$seed" "$freq" "$extra"; done
  done
}

train_one() {
  local algo=$1 env=$2 seed=$3 freq=$4 extra=$5 run=$DIR/$1/${2}_$3 made
  [ -f "$run/$env.zip" ] && return 0
  rm -rf "$run"
  echo "train $algo $env seed $seed"
  # shellcheck disable=SC2086
  (cd "$DIR" && /usr/bin/time -f "%e" -o "$DIR/$algo-$env-$seed.time" "$PY" -m rl_zoo3.train --algo "$algo" --env "$env" \
    --seed "$seed" --save-freq "$freq" --eval-freq "$freq" -f "$DIR" --log-interval -1 --num-threads 1 $extra \
    > "$DIR/$algo-$env-$seed.log" 2>&1)
  made=$(ls -td "$DIR/$algo/${env}_"* | head -1)  # RL Zoo numbers its runs <env>_<k> by order; keep the seed as k
  [ "$made" = "$run" ] || mv "$made" "$run"
  mv "$DIR/$algo-$env-$seed.time" "$run/train_wall_s.txt"
}

select_one() {
  local env=$2 run=$DIR/$1/${2}_$3
  [ -f "$run/$env.zip" ] && [ ! -d "$run/deployed" ] || return 0
  echo "select $run"
  "$RLSWA" select "$run" --test-episodes 50 > "$run/select.log" 2>&1 || echo "select failed: $run (see select.log)"
}

enjoy_one() {
  local algo=$1 env=$2 run=$DIR/$1/${2}_$3 rc=0
  [ -d "$run/deployed" ] || return 0
  "$PY" -m rl_zoo3.enjoy --algo "$algo" --env "$env" -f "$run/deployed" --exp-id 1 --no-render -n 1000 \
    > "$run/enjoy.out" 2>&1 || rc=$?
  echo "rl_zoo3.enjoy exit $rc; $(grep -c 'Episode Reward' "$run/enjoy.out") episodes" > "$run/enjoy.log"
  echo "enjoy $run: $(cat "$run/enjoy.log")"
}

collect() {
  local dest=$REPO/docs/results/any_run
  (cd "$DIR" && find . -path '*/deployed/selection.json' -printf '%h\n') | while read -r d; do
    local run=${d%/deployed}
    mkdir -p "$dest/$run"
    cp "$DIR/$d/selection.json" "$DIR/$d/results.json" "$dest/$run/"
    cp "$DIR/$run/train_wall_s.txt" "$DIR/$run/select.log" "$DIR/$run/enjoy.log" "$dest/$run/" 2>/dev/null || true
    find "$DIR/$run" -maxdepth 2 \( -name config.yml -o -name args.yml -o -name command.txt \) -path "*/$(basename "${run%_*}")/*" \
      -exec cp {} "$dest/$run/" \;
  done
  echo "copied into $dest"
}

mkdir -p "$DIR"
cmd=${1:-train}
case $cmd in
  train) each_run train_one ;;
  select) each_run select_one ;;
  enjoy) each_run enjoy_one ;;
  collect) collect ;;
  *) echo "usage: any_run.sh train|select|enjoy|collect" >&2; exit 2 ;;
esac
