#!/usr/bin/env bash
# The evidence campaign (docs/results/campaign.md): DDPG on MuJoCo and A2C on Atari, SWA against
# the plain baseline, each grid run from a worktree of one tagged commit with its own venv.
#
#   bash scripts/campaign.sh start     # make the worktree + venv if missing, start (or resume) the grids in the background
#                                      # (and the chain of deployment grids, which run one after another)
#   JOBS=2 bash scripts/campaign.sh start   # the same, each grid running up to 2 runs at once (default 1)
#   bash scripts/campaign.sh start deploy   # only the grids named (here the deployment chain, and a loop that
#                                           # scores its finished runs every 10 minutes: deploy_score)
#   JOBS=1 bash scripts/campaign.sh start deploy-qbert deploy-breakout-10m  # deployment grids named on their own: each
#                                           # runs beside the others (not in the chain), with the scoring loop
#   bash scripts/campaign.sh stop      # checkpoint the running runs and stop (before a session ends)
#   bash scripts/campaign.sh status    # finished runs per grid (and those awaiting post-hoc), running processes, last log lines
#   bash scripts/campaign.sh collect   # copy the small files of finished runs (and ensemble scores) into docs/results/campaign/
#   bash scripts/campaign.sh posthoc [EXPERIMENT...]  # post-hoc choice for finished runs that lack one, each with its grid's code
#   bash scripts/campaign.sh deploy_score  # the deployed policy (rl-swa select, test episodes) of finished deployment runs
#   (starting scale-mujoco also starts scale_loop: its finished runs scored while their policies are here)
#   bash scripts/campaign.sh start oracle  # the classic deployment grids again at their code, then every candidate
#                                          # scored (oracle_score: scripts/oracle_capture.py), one run at a time
#
# CAMPAIGN_DIR (default: ../campaign next to the repository) holds one clone and one venv per code
# version, the run directories and the logs; rerunning `start` skips finished runs and resumes
# unfinished ones.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
DIR=${CAMPAIGN_DIR:-$(dirname "$REPO")/campaign}
RUNS=$DIR/runs
AVERAGES=(--set "swa.averages=[swa@0.5, swa@0.9, ema@0.999@0]" --set swa.posthoc_points=10)

# name | code (tag=commit; a new checkout may lack tags) | config | envs | seeds | further --set KEY=VALUE (no spaces)
#   [| budget (default short)]
# Frozen settings: the configs' SWA section plus AVERAGES (plus the grid's own settings). A grid never changes its code.
# The issue-16 grids (uses of the average during training): arms act_avg and reset_avg next to
# baseline and swa, SWAG (rank 20) in every arm; Acrobot resets every 50 updates (~6 resets in the
# averaging phase of 1,250 updates), Pendulum and Hopper every 1,000 (the default; ~7 of 7,500, ~30 of 30,000).
EFFECTS="variants=[baseline,swa,act_avg,reset_avg] swa.swag_rank=20"
# atari-pong: the Atari grid's next game (Pong), same code, config and settings, into the same experiment.
# atari-breakout-10m: Breakout at 10M frames (2.5M env steps, evaluations every 250k), an experiment of its own.
# scale-mujoco (issue 41, docs/results/scale.md): DDPG at RL Zoo's 1M steps (the paper budget), forked pairs at 750k,
# the policy to deploy chosen at the end of each run (50 test episodes), and SB3 checkpoint zips every 50k steps
# along the baseline's trajectory (prefix + baseline arm; not committed: score them on the machine that made them).
SCALE="experiment=scale_mujoco_ddpg_1m sb3_checkpoints.every=50000 select.test_episodes=50"
GRIDS=(
  "mujoco|campaign-1=6bf1fcf0e16b8b355aca0aa05223aefc41547f32|configs/mujoco/ddpg.yaml|HalfCheetah-v5 Walker2d-v5|5"
  "atari|campaign-2=c944ba2d4aa8526def38823737d4bf00d692a849|configs/atari/a2c.yaml|ALE/Breakout-v5 ALE/Qbert-v5 ALE/SpaceInvaders-v5|3"
  "atari-pong|campaign-2=c944ba2d4aa8526def38823737d4bf00d692a849|configs/atari/a2c.yaml|ALE/Pong-v5|3"
  "atari-breakout-10m|campaign-2=c944ba2d4aa8526def38823737d4bf00d692a849|configs/atari/a2c.yaml|ALE/Breakout-v5|3|budgets.short.timesteps=2500000 budgets.short.eval_freq=250000 experiment=atari_a2c_10m_frames"
  "effects-acrobot|effects-1=ee057ab848fdb23a6c172c9885fdfd3fa3f2de09|configs/classic/acrobot_a2c.yaml|Acrobot-v1|5|$EFFECTS swa.reset_every=50"
  "effects-pendulum|effects-1=ee057ab848fdb23a6c172c9885fdfd3fa3f2de09|configs/classic/pendulum_ddpg.yaml|Pendulum-v1|5|$EFFECTS"
  "effects-hopper|effects-1=ee057ab848fdb23a6c172c9885fdfd3fa3f2de09|configs/mujoco/ddpg.yaml|Hopper-v5|5|$EFFECTS experiment=mujoco_ddpg_effects"
  "scale-mujoco|scale-1=9b5729c2364ade15f881377e81e96694d452b701|configs/mujoco/ddpg.yaml|Hopper-v5 HalfCheetah-v5|3|$SCALE|paper"
)

# The deployment grids (issue 31, docs/results/deploy.md): the baseline arm only, trained from scratch (--no-fork),
# saving every candidate that `rl-swa select` chooses from. One background chain runs them one after another
# (classic envs first: the selection's defaults are chosen there), so they take JOBS cores in all.
DEPLOY_CODE="deploy-1=f71344c86dd490436decde46e70c920267bbd034"
DEPLOY_GRIDS=(
  "deploy-acrobot|$DEPLOY_CODE|configs/classic/acrobot_a2c.yaml|Acrobot-v1|5|variants=[baseline] experiment=deploy_acrobot_a2c"
  "deploy-pendulum|$DEPLOY_CODE|configs/classic/pendulum_ddpg.yaml|Pendulum-v1|5|variants=[baseline] experiment=deploy_pendulum_ddpg"
  "deploy-mujoco|$DEPLOY_CODE|configs/mujoco/ddpg.yaml|Hopper-v5 HalfCheetah-v5|5|variants=[baseline] experiment=deploy_mujoco_ddpg"
  "deploy-qbert|$DEPLOY_CODE|configs/atari/a2c.yaml|ALE/Qbert-v5|3|variants=[baseline] experiment=deploy_atari_a2c"
  "deploy-breakout-10m|$DEPLOY_CODE|configs/atari/a2c.yaml|ALE/Breakout-v5|3|variants=[baseline] budgets.short.timesteps=2500000 budgets.short.eval_freq=250000 experiment=deploy_atari_a2c_10m_frames"
)
# The oracle capture (issue 39, docs/results/deploy.md#the-oracle-capture): the classic deployment grids trained again
# at their code (bit for bit on the same CPU model: eval.csv is compared with the committed copy), since their
# policies were not committed; then every candidate plays the validation and test episodes (oracle_score).
ORACLE_GRIDS=(
  "oracle-acrobot|$DEPLOY_CODE|configs/classic/acrobot_a2c.yaml|Acrobot-v1|5|variants=[baseline] experiment=oracle_acrobot_a2c"
  "oracle-pendulum|$DEPLOY_CODE|configs/classic/pendulum_ddpg.yaml|Pendulum-v1|5|variants=[baseline] experiment=oracle_pendulum_ddpg"
)
# The 1M-step runs scored while their policies and SB3 zips are on this machine (neither is committed): every
# candidate on validation and test episodes (oracle.json, issue 39) and a baseline run's zips as a checkpoint folder
# (checkpoint_selection.json, issue 42). scale_loop runs scale_score every 10 minutes beside the grid.
SCALE_SCORING="scale-score-1=7a4625f7120b2164d38d1fdc24aaafaa16d6b478"
ORACLE_SCORING="oracle-1=e390670007582c5b8bc15d1ba826ea7b165587dd"
ALL_GRIDS=("${GRIDS[@]}" "${DEPLOY_GRIDS[@]}" "${ORACLE_GRIDS[@]}")
# The code that scores the deployment runs: `deploy_score` below (selection settings frozen on the classic envs;
# select-5 plays the same episodes as select-4, which scored the first runs, with ended ones no longer stepped;
# select-6 the same again, reusing one VecEnv per batch size: Qbert seed 0 rescored bit-identically, 6% faster).
DEPLOY_SCORING="select-6=b8200979d484b6a4e8e569c49ef21f07bb6c431f"

# experiment | code | posthoc.py arguments: post-hoc choices made with later scoring code than the grid's (the
# policies are the runs' own either way). The Atari grid's: `--together` plays each candidate's episodes at once
# (campaign-2 plays them one at a time: ~1.5x the time; docs/performance.md#post-hoc-scoring).
SCORING=(
  "atari_a2c|scoring-1=2462bd2c5c22fa76f094b0d5ef148400e688ed83|--together"
  "atari_a2c_10m_frames|scoring-1=2462bd2c5c22fa76f094b0d5ef148400e688ed83|--together"
)

launch() {  # the compare driver of the grid set by `grid`, in the background; its pid in logs/NAME.pid ($@: further flags)
  # shellcheck disable=SC2086
  (cd "$WT" && exec setsid nohup "$PY" "$WT/scripts/compare.py" "$WT/$config" --envs $envs --budget "${budget:-short}" --seeds "$seeds" \
      --jobs "${JOBS:-1}" --out "$RUNS" "${AVERAGES[@]}" "${own[@]}" "$@" >> "$DIR/logs/$name.log" 2>&1) &
  echo $! > "$DIR/logs/$name.pid"
}

chain() {  # the grid lines "$@" one after another, from scratch (--no-fork); a stop (driver exit 3) ends the chain
  local rc line
  for line in "$@"; do
    grid "$line"
    setup
    launch --no-fork
    rc=0; wait "$(cat "$DIR/logs/$name.pid")" || rc=$?
    [ "$rc" = 3 ] && { echo "$name: stopped; the chain ends"; return 3; }
    echo "$name: driver exited $rc"
  done
}

deploy_chain() { chain "${DEPLOY_GRIDS[@]}"; }  # the deployment grids

grid() {  # sets name, tag, commit, config, envs, seeds, WT, PY for grid line $1
  IFS='|' read -r name code config envs seeds extra budget <<< "$1"
  own=(); for kv in $extra; do own+=(--set "$kv"); done
  use_code "$code"
}

use_code() {  # sets tag, commit, WT, PY for code "tag=commit"
  tag=${1%%=*}; commit=${1#*=}; WT=$DIR/wt-$tag; PY=$DIR/venv-$tag/bin/python
}

setup() {  # for the grid set by `grid`
  mkdir -p "$DIR/logs" "$RUNS"
  # a clone of its own (not a linked worktree), so that it knows its commit whatever happens to this checkout
  if [ "$(git -C "$WT" rev-parse HEAD 2>/dev/null)" != "$commit" ]; then
    rm -rf "$WT"
    git clone -q --no-checkout "$REPO" "$WT" && git -C "$WT" checkout -q --detach "$commit"
  fi
  if [ ! -x "$PY" ]; then
    python3 -m venv "$DIR/venv-$tag"
    "$PY" -m pip install -q --upgrade pip
    "$PY" -m pip install -q "torch==2.13.0"
    "$PY" -m pip install -q -e "$WT[atari,mujoco,experiments]"  # experiments: the pipeline (an extra since effects-1; older tags ignore it)
    "$PY" -m pip freeze > "$DIR/logs/pip-freeze-$tag.txt"
  fi
}

running() {  # the driver of grid $1 is alive
  local pid
  pid=$(cat "$DIR/logs/$1.pid" 2>/dev/null) && kill -0 "$pid" 2>/dev/null && grep -q compare.py "/proc/$pid/cmdline"
}

restore() {  # on a new machine: finished runs come back from the repository, so the grids skip them
  local saved=$REPO/docs/results/campaign
  [ -d "$saved" ] || return 0
  (cd "$saved" && find . -name result.json -printf '%h\n') | while read -r run; do
    # a deployment run not yet scored is not restored: its policies are gone with the old machine, so it trains again
    if [[ $run == ./deploy_* ]] && [ ! -f "$saved/$run/selection.json" ]; then echo "not restored (unscored): $run"; continue; fi
    if [[ $run == ./oracle_* ]] && [ ! -f "$saved/$run/oracle.json" ]; then echo "not restored (unscored): $run"; continue; fi
    if [ ! -e "$RUNS/$run/result.json" ]; then mkdir -p "$RUNS/$run" && cp "$saved/$run/"* "$RUNS/$run/" && echo "restored $run"; fi
  done
  # the ensembles' scores too: deploy_score would otherwise try them again without the (uncommitted) policies
  (cd "$saved" && find . -maxdepth 2 -name 'ensemble_*.json') | while read -r f; do
    if [ ! -e "$RUNS/$f" ]; then cp "$saved/$f" "$RUNS/$f"; fi
  done
}

start() {  # [NAME...]: only these grids ("deploy": the deployment chain); default all
  mkdir -p "$RUNS" "$DIR/logs"
  restore
  for line in "${GRIDS[@]}"; do
    grid "$line"
    if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then continue; fi
    if running "$name"; then echo "$name: already running"; continue; fi
    setup
    launch
    echo "$name: started (log $DIR/logs/$name.log)"
  done
  sleep 2  # a driver just launched is running once its subshell has exec'd python
  if running scale-mujoco && ! pgrep -f "campaign.sh scale_loop" > /dev/null; then
    setsid nohup bash "$REPO/scripts/campaign.sh" scale_loop >> "$DIR/logs/scale-score.log" 2>&1 &
    echo "scale scoring loop: started (log $DIR/logs/scale-score.log)"
  fi
  for line in "${DEPLOY_GRIDS[@]}"; do  # a deployment grid named on its own runs beside the others, not in the chain
    grid "$line"
    if [ $# -eq 0 ] || [[ " $* " != *" $name "* ]]; then continue; fi
    if running "$name"; then echo "$name: already running"; continue; fi
    setup
    launch --no-fork
    echo "$name: started (log $DIR/logs/$name.log)"
  done
  if [[ " $* " == *" oracle "* ]]; then  # the oracle chain, then nothing else unless named
    if pgrep -f "campaign.sh oracle_chain" > /dev/null; then
      echo "oracle chain: already running"
    else
      setsid nohup bash "$REPO/scripts/campaign.sh" oracle_chain >> "$DIR/logs/oracle-chain.log" 2>&1 &
      echo "oracle chain: started (log $DIR/logs/oracle-chain.log)"
    fi
  fi
  if [ $# -gt 0 ] && [[ " $* " == *" deploy-"* ]] && [[ " $* " != *" deploy "* ]]; then start_score_loop; return 0; fi
  if [ $# -gt 0 ] && [[ " $* " != *" deploy "* ]]; then return 0; fi
  if pgrep -f "campaign.sh deploy_chain" > /dev/null; then
    echo "deploy chain: already running"
  else
    setsid nohup bash "$REPO/scripts/campaign.sh" deploy_chain >> "$DIR/logs/deploy-chain.log" 2>&1 &
    echo "deploy chain: started (log $DIR/logs/deploy-chain.log)"
  fi
  start_score_loop
}

oracle_chain() { chain "${ORACLE_GRIDS[@]}" && oracle_score; }  # the oracle grids, then every candidate scored

oracle_score() {  # every finished oracle run without oracle.json, by the oracle scoring clone, against its committed twin
  local run exp
  use_code "$ORACLE_SCORING"
  setup > /dev/null
  (cd "$RUNS" && find . -path './oracle_*' -name result.json -printf '%h\n' | sort) | while read -r run; do
    [ -f "$RUNS/$run/oracle.json" ] && continue
    exp=${run#./}; exp=${exp%%/*}
    echo "oracle_score $run (code $tag)"
    (cd "$WT" && "$PY" scripts/oracle_capture.py score "$RUNS/$run" --committed "$REPO/docs/results/campaign/deploy_${exp#oracle_}" > /dev/null) \
      || echo "oracle_score failed: $run"
  done
}

unscored_scale() {  # finished 1M runs whose policies are here and that lack a score file
  (cd "$RUNS" && find ./scale_mujoco_ddpg_1m -name selection.json -printf '%h\n' 2>/dev/null | sort) | while read -r run; do
    [ -f "$RUNS/$run/policy.safetensors" ] || continue  # restored from the repository: nothing to score
    if [ ! -f "$RUNS/$run/oracle.json" ] || { [[ $run == */baseline/* ]] && [ ! -f "$RUNS/$run/checkpoint_selection.json" ]; }; then
      echo "$run"
    fi
  done
}

scale_score() {  # oracle.json of every unscored 1M run, checkpoint_selection.json of a baseline run, by the scoring clone
  local run todo
  todo=$(unscored_scale)
  [ -n "$todo" ] || return 0
  use_code "$SCALE_SCORING"
  setup > /dev/null
  for run in $todo; do
    echo "scale_score $run (code $tag)"
    [ -f "$RUNS/$run/oracle.json" ] || (cd "$WT" && "$PY" scripts/oracle_capture.py score "$RUNS/$run" > /dev/null) \
      || echo "oracle_capture failed: $run"
    if [[ $run == */baseline/* ]] && [ ! -f "$RUNS/$run/checkpoint_selection.json" ]; then
      (cd "$WT" && "$PY" scripts/checkpoint_averages.py score "$RUNS/$run" > /dev/null) || echo "checkpoint_averages failed: $run"
    fi
  done
}

scale_loop() {  # scale_score every 10 minutes while the 1M grid runs, and once after it
  sleep 5
  while running scale-mujoco; do scale_score || true; sleep 600; done
  scale_score || true
}

start_score_loop() {
  if ! pgrep -f "campaign.sh score_loop" > /dev/null; then
    setsid nohup bash "$REPO/scripts/campaign.sh" score_loop >> "$DIR/logs/deploy_score.log" 2>&1 &
    echo "scoring loop: started (log $DIR/logs/deploy_score.log)"
  fi
}

deploying() {  # the deployment chain or a deployment grid started on its own is running
  local line
  pgrep -f "campaign.sh deploy_chain" > /dev/null && return 0
  for line in "${DEPLOY_GRIDS[@]}"; do running "${line%%|*}" && return 0; done
  return 1
}

score_loop() {  # deploy_score every 10 minutes while the deployment chain runs, and once after it: a finished
  # run is scored while its policies are on this machine (they are not committed)
  sleep 5
  while deploying; do deploy_score || true; sleep 600; done
  deploy_score || true
}

stop() {  # the running jobs write a checkpoint, then the drivers exit (code 3); `start` resumes
  local name alive
  pkill -f "campaign.sh oracle_chain" || true  # before its grid's driver exits: the chain would start the next
  pkill -f "campaign.sh scale_loop" || true
  pkill -f "scripts/oracle_capture.py" || true  # its oracle.json is written whole or not at all: a rerun scores again
  pkill -f "scripts/checkpoint_averages.py" || true  # likewise checkpoint_selection.json
  for line in "${ALL_GRIDS[@]}"; do  # the driver passes the signal on to its running jobs
    name=${line%%|*}
    if running "$name"; then kill -TERM "$(cat "$DIR/logs/$name.pid")"; echo "$name: asked to stop"; fi
  done
  # a job still loading when the signal came ignores it, and the frozen drivers ask once: ask the
  # drivers' workers again until the drivers have exited (a checkpoint takes seconds)
  for _ in $(seq 90); do
    alive=0
    for line in "${ALL_GRIDS[@]}"; do
      name=${line%%|*}
      if running "$name"; then alive=1; pkill -INT -P "$(cat "$DIR/logs/$name.pid")" || true; fi
    done
    [ "$alive" = 0 ] && { echo "all grids stopped"; return 0; }
    sleep 2
  done
  for line in "${ALL_GRIDS[@]}"; do name=${line%%|*}; running "$name" && echo "$name: still running after 3 min"; done
  return 1
}

status() {
  for exp in "$RUNS"/*/; do
    [ -d "$exp" ] || continue
    echo "$(basename "$exp"): $(find "$exp" -name result.json | wc -l) runs finished"
    awaiting "$(basename "$exp")" | while read -r run; do echo "  awaits post-hoc: $run (campaign.sh posthoc $(basename "$exp"))"; done
  done
  pgrep -af "scripts/compare.py" | sed 's/--set.*//' || echo "no grid running"
  for log in "$DIR"/logs/*.log; do [ -f "$log" ] && { echo "== $log"; tail -n 3 "$log"; }; done
}

collect() {
  local dest=$REPO/docs/results/campaign
  (cd "$RUNS" && find . -name result.json -printf '%h\n') | while read -r run; do
    mkdir -p "$dest/$run"
    for f in result.json eval.csv config.yaml command.txt posthoc.json selection.json oracle.json checkpoint_selection.json; do
      [ -f "$RUNS/$run/$f" ] && cp "$RUNS/$run/$f" "$dest/$run/$f"
    done
    prefix=$(dirname "$(dirname "$run")")/prefix/$(basename "$run")
    if [ -f "$RUNS/$prefix/prefix.json" ]; then  # an `if`: a false test last in the loop would end the script (set -e, pipefail)
      mkdir -p "$dest/$prefix" && cp "$RUNS/$prefix/"{prefix.json,config.yaml} "$dest/$prefix/"
    fi
  done
  (cd "$RUNS" && find . -maxdepth 2 -name 'ensemble_*.json') | while read -r f; do cp "$RUNS/$f" "$dest/$f"; done  # scripts/ensemble.py
  echo "copied into $dest"
}

awaiting() {  # finished runs of experiment $1 without a post-hoc choice (./EXP/...); their saved points
  # (posthoc.pt, ~200 MB an Atari run) are not committed: a replaced machine loses them
  (cd "$RUNS" && find "./$1" -name posthoc.pt -printf '%h\n' | sort) | while read -r run; do
    if [ -f "$RUNS/$run/result.json" ] && [ ! -f "$RUNS/$run/posthoc.json" ]; then echo "$run"; fi
  done
}

posthoc() {  # scripts/posthoc.py on every finished run without posthoc.json, run by the clone of the run's own
  # commit, or by the one SCORING names for the run's experiment
  local run want line scoring args
  for exp in "${@:-}"; do
    awaiting "$exp" | while read -r run; do
      scoring=""; args=""
      for line in "${SCORING[@]}"; do [[ $run == "./${line%%|*}/"* ]] && IFS='|' read -r _ scoring args <<< "$line"; done
      if [ -n "$scoring" ]; then
        use_code "$scoring"
        setup > /dev/null
      else
        want=$(sed -n 's/.*"code": "\([0-9a-f]*\)".*/\1/p' "$RUNS/$run/result.json")
        for line in "${ALL_GRIDS[@]}"; do grid "$line"; [[ $commit == "$want"* ]] && break; done
        [[ $commit == "$want"* ]] || { echo "posthoc: no grid has code $want ($run)"; continue; }
      fi
      echo "posthoc $run (code $tag)"
      # shellcheck disable=SC2086
      (cd "$WT" && "$PY" scripts/posthoc.py "$RUNS/$run" $args > /dev/null) || echo "posthoc failed: $run"
    done
  done
}

deploy_score() {  # _deploy_score, one at a time (the loop and a hand call would score the same run at once)
  mkdir -p "$DIR/logs"
  (flock -n 9 || { echo "deploy_score: already running"; exit 0; }; _deploy_score) 9> "$DIR/logs/deploy_score.lock"
}

_deploy_score() {  # every finished deployment run without selection.json, by the scoring clone: the exhaustive
  # post-hoc choice (scripts/posthoc.py, compared against), then rl-swa select with 50 test episodes. Their inputs
  # (posthoc.pt, the policies) are not committed: score each run in the session it finishes, then `collect`.
  local run
  use_code "$DEPLOY_SCORING"
  setup > /dev/null
  (cd "$RUNS" && find . -path './deploy_*' -name result.json -printf '%h\n' | sort) | while read -r run; do
    # scored: selection.json with the exhaustive post-hoc choice among its test policies (a run selected
    # before its post-hoc choice was made is selected again after it: the same choice, all five scored)
    grep -q '"posthoc choice"' "$RUNS/$run/selection.json" 2>/dev/null && continue
    [ -f "$RUNS/$run/posthoc.pt" ] || { echo "deploy_score: $run has no posthoc.pt (a replaced machine?); retrain it"; continue; }
    echo "deploy_score $run (code $tag)"
    if [ ! -f "$RUNS/$run/posthoc.json" ]; then
      (cd "$WT" && "$PY" scripts/posthoc.py "$RUNS/$run" --together > /dev/null) || { echo "posthoc failed: $run"; continue; }
    fi
    (cd "$WT" && "$PY" scripts/select_policy.py "$RUNS/$run" --test-episodes 50) || echo "select failed: $run"
  done
  # MultiSWA (the seeds' fixed-start averages as one ensemble) against the seeds' online weights as one, 50 test
  # episodes; made again whenever more seeds have finished here, policies at hand, than the ensemble file holds
  # (runs restored on a replaced machine have no policies: they are left out, not retried every round)
  local exp env done have
  for exp in "$RUNS"/deploy_*/; do
    for env in "$exp"*/baseline; do
      [ -d "$env" ] || continue
      done=$(find "$env" -maxdepth 2 -name swa_policy.safetensors -execdir test -f result.json \; -print | wc -l)
      have=$({ grep -o '"seed[0-9]*"' "$exp/ensemble_$(basename "$(dirname "$env")")_baseline.json" 2>/dev/null || true; } | wc -l)
      if [ "$done" -ge 2 ] && [ "$done" != "$have" ]; then
        echo "deploy_score ensemble $env ($done seeds)"
        (cd "$WT" && "$PY" scripts/ensemble.py "$exp" --env "$(sed -n 's/^env: //p' "$(find "$env" -name config.yaml | head -1)")" \
            --test-episodes 50 > /dev/null) || echo "ensemble failed: $env"
      fi
    done
  done
}

cmd=${1:-status}; shift || true
"$cmd" "$@"
