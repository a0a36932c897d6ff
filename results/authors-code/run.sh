#!/usr/bin/env bash
# The authors' code (kramerlab/PeerLearning, commit cc4d51d) on Room-21 with our Room-21 budget:
# 5,000 env steps per peer, seeds 0-4, peer learning and single agent, the arguments of their
# Experiments.md except --steps (1,000,000 -> 5,000), --min-epoch-length 0 (their default of 10,000
# would make 5,000 steps zero epochs: nothing trains), --wandb disabled and the output folder.
# Usage: results/authors-code/run.sh AUTHORS_CHECKOUT AUTHORS_VENV_PYTHON OUT_DIR [JOBS]
set -euo pipefail
authors=$1; python=$2; out=$3; jobs=${4:-2}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
common=(--env Room-v21 --env_args --batch-size 256 --buffer-size 300000 --steps 5000 --buffer-start-size 100
        --gamma 0.99 --gradient_steps 8 --tau 0.02 --train_freq 8 --net-arch 256 256 --follow-steps 10
        --learning_rate "lambda x: 5e-4" --agents_to_store 0 --T-decay 0 --mix-agents DQN --switch-ratio 0
        --epsilon 0.2 --min-epoch-length 0 --peers-sample-with-noise True --only-follow-peers False
        --max-peer-epochs 100000000 --wandb disabled --save-dir "$out/runs")
peer=(--agent-count 2 --use-advantage True --T 1 --sample-from-suggestions True --use-critic True
      --use-agent-value True --use-trust True)
single=(--agent-count 1 --use-advantage False --T 0 --sample-from-suggestions False --use-critic False
        --use-agent-value False --use-trust False)
run() {  # condition seed
  local condition=$1 seed=$2 extra
  if [ "$condition" = peer ]; then extra=("${peer[@]}"); else extra=("${single[@]}"); fi
  [ -s "$out/$condition-s$seed.csv" ] && return 0   # resumable: finished runs are skipped,
  mkdir "$out/$condition-s$seed.lock" 2>/dev/null || return 0   # and runs another invocation holds
  rm -f "$out/$condition-s$seed.csv.part"
  "$python" "$here/run_exact_eval.py" "$authors" "$out/$condition-s$seed.csv.part" -- \
    --save-name "room21-$condition" --job_id "$seed" --seed "$seed" "${common[@]}" "${extra[@]}" \
    > "$out/$condition-s$seed.log" 2>&1
  mv "$out/$condition-s$seed.csv.part" "$out/$condition-s$seed.csv"
  rmdir "$out/$condition-s$seed.lock"
}
for condition in peer single; do
  for seed in 0 1 2 3 4; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
    run "$condition" "$seed" &
  done
done
wait
