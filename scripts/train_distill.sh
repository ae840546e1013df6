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

# Chapter 13b: progressive students of the digit teacher unet_digits (64 -> 32 -> 16 -> 8 -> 4 -> 2 -> 1 steps,
# about 10 CPU-minutes in all, each halving under 3). It writes the 8-, 4-, 2- and 1-step students to
# diffedu/checkpoints/distill/digits and keeps every stage's weights in build/distill_digits; only the 4- and
# 1-step students are shipped (size budget), so the other two are removed.
if [[ -z "$only" || "digits" == "$only"* ]]; then
  echo "== digits ($(date +%T))"
  $PY -m diffedu.distill.images --steps 500 250 250 400 400 600 --ship 8 4 2 1 --keep build/distill_digits
  rm -f diffedu/checkpoints/distill/digits/pd_digits_8.* diffedu/checkpoints/distill/digits/pd_digits_2.*
fi

# Chapter 13b, CoDi: a zero-initialised ControlNet adapter on the frozen unet_digits (null class), trained with the
# conditional consistency loss for 4x digit super-resolution (about 4 CPU-minutes).
if [[ -z "$only" || "codi" == "$only"* ]]; then
  echo "== codi ($(date +%T))"
  $PY -m diffedu.distill.codi --steps 1500 --seed 0
fi
