#!/usr/bin/env bash
# Every evidence experiment of docs/results.md, in priority order, resumable: run it again (each
# session, after a reboot) until every grid is done. Finished runs are skipped, cut-off runs continue
# from their last checkpoint, every finished run's CSVs land in results/<experiment>/runs/ (commit
# them as they come). The authors' code runs beside it when its checkout and venv are given.
# Starting it while an earlier one still runs is safe: every run (ours and the authors') is held by
# one invocation, and the other skips it.
# Usage (repository root): orchestrator/experiments/run_evidence.sh [RUNS_DIR [AUTHORS_CHECKOUT AUTHORS_PYTHON]]
#   RUNS_DIR: where run folders and checkpoints go (default runs/; keep it outside the checkout if
#   the checkout may be laid anew between sessions).
set -euo pipefail
cd "$(dirname "$0")/../.."  # the repository root: the paths below are relative to it
# Low priority against interactive work on the machine: with autogroup scheduling niceness counts only
# inside a session, so this session's autogroup gets it too (a no-op where the kernel has none).
echo 10 > /proc/self/autogroup 2>/dev/null || true
runs=${1:-runs}
peerlearn=${PEERLEARN:-.venv/bin/peerlearn}
if [ $# -ge 3 ]; then
  EXACT_EVERY=10000 nice -n 10 benchmarks/authors_code/run.sh "$2" "$3" "$runs/authors-120k" 1 120000 "0 1 2 3 4" &
  authors=$!
fi
for grid in room21-120k room21-compat room21-av-rate room21-adversary-60k room21-group-size-30k pendulum-10k hopper-20k; do
  "$peerlearn" sweep --grid "configs/experiments/$grid.toml" --jobs 2 --nice 10 --out "$runs/$grid" || true
done
if [ -n "${authors:-}" ]; then
  wait "$authors" || true
  .venv/bin/python benchmarks/authors_code/to_runs.py "$runs/authors-120k" results/authors-120k 120000
fi
.venv/bin/python -m orchestrator.experiments.page
