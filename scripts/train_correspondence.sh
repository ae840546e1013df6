#!/usr/bin/env bash
# Reproduce chapter 15's networks in diffedu/checkpoints/correspondence (weights + manifest).
#
#   bash scripts/train_correspondence.sh              # all three (about 12 CPU-minutes on one core)
#   bash scripts/train_correspondence.sh classifier   # only the one named
#
# Each line is exactly the command recorded in the checkpoint's manifest ("command"); the data are
# correspondence.warps.warped_shapes(2000, size=32, seed=0) and data.scenes.scenes(4000, size=16, seed=0),
# generated, nothing to download.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PY=${PYTHON:-python}
OUT=diffedu/checkpoints/correspondence
only=${1:-}
run() {  # run WHAT ARGS...
  [[ -z "$only" || "$1" == "$only" ]] || return 0
  echo "== $1 ($(date +%T))"
  $PY -m diffedu.correspondence "$@" --overwrite
}

run diffusion --steps 900 --batch-size 32 --seed 0 --out $OUT/dift_unet.safetensors       # unet_tiny, 3 channels, eps, linear T=1000
run classifier --steps 1200 --batch-size 64 --seed 0 --out $OUT/shape_classifier.safetensors  # the supervised control
run text_attn --steps 1500 --batch-size 32 --seed 0 --out $OUT/text_attn.safetensors          # caption model whose word maps localise (section 6)
