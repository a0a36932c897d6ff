#!/usr/bin/env bash
# The authors' code (kramerlab/PeerLearning, commit cc4d51d) on Room-21: peer learning and single
# agent, the arguments of their Experiments.md except --steps (1,000,000 -> STEPS), --wandb disabled
# and the output folder. Budgets of 10,000 steps and more keep their default 10,000-step turns
# (--min-epoch-length 10000); below that a turn would be longer than the budget and nothing would
# train (silently), so smaller budgets use --min-epoch-length 0 (one turn per peer).
# Usage: benchmarks/authors_code/run.sh AUTHORS_CHECKOUT AUTHORS_VENV_PYTHON OUT_DIR [JOBS [STEPS [SEEDS]]]
#   STEPS: env steps per peer (default 5000); SEEDS: e.g. "0 1 2" (default "0 1 2 3 4").
#   The exact evaluation runs every EXACT_EVERY own steps (environment, default 1000).
set -euo pipefail
# One torch thread per run (as peerlearn's peers): two OpenMP threads per run on a shared 2-core
# machine spin against each other and against the other jobs.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
authors=$1; python=$2; out=$3; jobs=${4:-2}; steps=${5:-5000}; seeds=${6:-0 1 2 3 4}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
# Provenance, so that a reader can audit that the numbers came from the authors' code: the checkout's
# commit as git reads it (and whether it was modified), and the venv's packages. to_runs.py copies
# these, each run's exact command line and its raw CSV next to the converted run.
{ echo "commit $(git -C "$authors" rev-parse HEAD)"; echo "remote $(git -C "$authors" remote get-url origin 2>/dev/null || echo none)"
  echo "modified files: $(git -C "$authors" status --porcelain | wc -l)"; } > "$out/checkout.txt"
"$python" -m pip freeze > "$out/pip-freeze.txt"
if [ "$steps" -ge 10000 ]; then min_epoch=10000; else min_epoch=0; fi
common=(--env Room-v21 --env_args --batch-size 256 --buffer-size 300000 --steps "$steps" --buffer-start-size 100
        --gamma 0.99 --gradient_steps 8 --tau 0.02 --train_freq 8 --net-arch 256 256 --follow-steps 10
        --learning_rate "lambda x: 5e-4" --agents_to_store 0 --T-decay 0 --mix-agents DQN --switch-ratio 0
        --epsilon 0.2 --min-epoch-length "$min_epoch" --peers-sample-with-noise True --only-follow-peers False
        --max-peer-epochs 100000000 --wandb disabled --save-dir "$out/runs")
peer=(--agent-count 2 --use-advantage True --T 1 --sample-from-suggestions True --use-critic True
      --use-agent-value True --use-trust True)
single=(--agent-count 1 --use-advantage False --T 0 --sample-from-suggestions False --use-critic False
        --use-agent-value False --use-trust False)
run() {  # condition seed
  local condition=$1 seed=$2 extra
  if [ "$condition" = peer ]; then extra=("${peer[@]}"); else extra=("${single[@]}"); fi
  [ -s "$out/$condition-s$seed.csv" ] && return 0   # resumable: finished runs are skipped,
  # and runs another live invocation holds: a kernel lock (flock, as peerlearn sweep's), held by this
  # subshell and inherited by the run; it dies with its holder, so a killed session leaves no stale lock
  # and its run starts again from scratch (the authors' code cannot resume).
  exec 9>"$out/.$condition-s$seed.lock"
  flock -n 9 || return 0
  [ -s "$out/$condition-s$seed.csv" ] && return 0   # finished while this one waited for the lock
  rm -f "$out/$condition-s$seed.csv.part"
  local cmd=("$python" "$here/run_exact_eval.py" "$authors" "$out/$condition-s$seed.csv.part" --
             --save-name "room21-$condition" --job_id "$seed" --seed "$seed" "${common[@]}" "${extra[@]}")
  printf '%q ' "${cmd[@]}" > "$out/$condition-s$seed.cmd"
  "${cmd[@]}" > "$out/$condition-s$seed.log" 2>&1
  mv "$out/$condition-s$seed.csv.part" "$out/$condition-s$seed.csv"
}
# Seed-major order, so that a budget cut short leaves as many peer runs as single runs.
for seed in $seeds; do
  for condition in peer single; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
    run "$condition" "$seed" &
  done
done
wait
