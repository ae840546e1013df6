#!/usr/bin/env bash
# Reproduce the shipped checkpoints of chapter 12b (diffedu/checkpoints/segmentation/).
# Each network trains in under 5 minutes of one CPU core (the CPU seconds are in each manifest).
# Run from the repository root:  bash scripts/train_segmentation.sh
set -euo pipefail
PY=${PYTHON:-.venv/bin/python}
OUT=diffedu/checkpoints/segmentation
export OMP_NUM_THREADS=1
$PY -m diffedu.segmentation.train --method sup  --steps 300  --out $OUT/sup_unet.safetensors
$PY -m diffedu.segmentation.train --method diff --steps 600  --out $OUT/diff_onehot.safetensors
$PY -m diffedu.segmentation.train --method bits --steps 400  --out $OUT/diff_bits.safetensors
# recursive noise diffusion: the one-hot network fine-tuned on its own predictions
$PY -m diffedu.segmentation.train --method rnd  --steps 150 --lr 5e-4 --init diff_onehot --out $OUT/diff_rnd.safetensors
