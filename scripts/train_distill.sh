#!/usr/bin/env bash
# Reproduce the chapter-13 students in diffedu/checkpoints/distill (weights + manifest + PNG).
#
#   bash scripts/train_distill.sh          # all of them (about 15 min on 2 busy CPU cores)
#   bash scripts/train_distill.sh pd       # only those whose method starts with the word
#
# Each line is exactly the command recorded in the students' manifests ("command"). The teacher
# is the exact denoiser of data.toy.toy_gmm, so nothing else needs training first.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PY=${PYTHON:-python}
only=${1:-}
run() {  # run METHOD ARGS...
  [[ -z "$only" || "$1" == "$only"* ]] || return 0
  echo "== $1 ($(date +%T))"
  $PY -m diffedu.distill "$@"
}

run pd --steps 1000 --batch-size 256 --seed 0     # progressive: 64 -> 32 -> ... -> 1 (ships 8, 4, 2, 1)
run cd --steps 3000 --batch-size 256 --seed 0     # consistency distillation, Heun teacher, 18 Karras levels
run ct --steps 3000 --batch-size 256 --seed 0 --s1 20   # consistency training, N(k) curriculum (2 -> 21 levels in 3000 steps), adaptive EMA
run ict --steps 3000 --batch-size 256 --seed 0    # improved consistency training
run gd --steps 2000 --batch-size 256 --seed 0     # guidance distillation, then 16 -> ... -> 1 steps
run add --steps 1500 --batch-size 256 --seed 0   # adversarial diffusion distillation from pd_gmm_1 (after pd)
run pnp --steps 2000 --batch-size 512 --seed 0     # plug-and-play distillation: base, guide (base frozen), fine-tuned copy
