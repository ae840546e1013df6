#!/usr/bin/env bash
# Reproduce chapter 10's checkpoints in diffedu/checkpoints/blind (weights + manifest).
#
#   bash scripts/train_blind.sh            # all of them, in dependency order (adapter needs stage1)
#   bash scripts/train_blind.sh stage1     # only the targets whose name starts with the word
#
# Each line is exactly the command recorded in that checkpoint's manifest ("command"). One thread.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PY=${PYTHON:-python}
only=${1:-}
run() {  # run TARGET ARGS...
  [[ -z "$only" || "$1" == "$only"* ]] || return 0
  echo "== $1 ($(date +%T))"
  $PY -m diffedu.inverse.blind.train "$@"
}

run kernel_prior --steps 3000 --seed 0   # MLP diffusion prior on 20,000 random 7x7 kernel images (Blind-DPS)
run classifier --steps 400 --seed 0      # clean-digit classifier: the perceptual-distance features
run stage1 --steps 1500 --seed 0         # DiffBIR stage 1: regression restorer on real-world degradations
run encoder --steps 400 --seed 0         # StableSR-style time-aware encoder, digits prior frozen
run adapter --steps 300 --seed 0         # DiffBIR stage 2: ControlNet on stage-1 outputs, digits prior frozen
