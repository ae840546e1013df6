#!/usr/bin/env bash
# Reproduce every shipped checkpoint in diffedu/checkpoints (weights + manifest + PNG figure).
#
#   bash scripts/train_checkpoints.sh              # all of them (about 45 min on 2 busy CPU cores)
#   bash scripts/train_checkpoints.sh dit_digits   # only those whose name starts with the word
#
# Each line is exactly the command recorded in the checkpoint's manifest ("command"), run from
# the repository root, followed by --overwrite (the CLI refuses to replace an existing checkpoint
# without it; the flag does not change the weights, so manifests do not record it). One thread: the networks are tiny, so threads only add synchronisation.
# Class-conditional models drop labels to the null class themselves (class_dropout_prob=0.1,
# the default of UNet and DiT), which trains the unconditional model used by classifier-free
# guidance; so --label-dropout stays 0 (a non-zero value would drop a second time).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PY=${PYTHON:-python}
only=${1:-}
run() {  # run NAME ARGS...: train diffedu/checkpoints/NAME.safetensors unless filtered out
  local name=$1; shift
  [[ -z "$only" || "$name" == "$only"* ]] || return 0
  echo "== $name ($(date +%T))"
  $PY -m diffedu.train "$@" --out "diffedu/checkpoints/$name.safetensors" --overwrite
}

# Class-conditional U-Net on 16x16 digits (chapters 05 guidance, 08/09 posterior sampling); trained on
# the train split (1,437 digits), so the 360 test digits stay unseen.
run unet_digits --model unet_tiny --model-kw num_classes=10 --data digits --data-kw size=16 --data-kw split=train \
  --steps 2000 --batch-size 128 --lr 2e-3 --prediction eps --seed 0

# The four DiT conditioning variants (chapter 06), one budget: same size, steps, batch, lr, seed.
for variant in adaln_zero adaln cross_attention in_context; do
  run "dit_digits_$variant" --model dit_tiny --model-kw conditioning=$variant --model-kw patch_size=2 \
    --data digits --data-kw size=16 --steps 2000 --batch-size 64 --lr 2e-3 --prediction eps --seed 0
done

# MMDiT (joint attention) at the same budget, for chapter 06's attention maps.
run mmdit_digits --model mmdit_tiny --model-kw patch_size=2 \
  --data digits --data-kw size=16 --steps 2000 --batch-size 64 --lr 2e-3 --prediction eps --seed 0

# Unconditional U-Net on 32x32 head phantoms (medical-imaging chapters).
run unet_phantoms --model unet_tiny --data phantoms --data-kw size=32 --num-examples 2000 \
  --steps 1000 --batch-size 64 --lr 2e-3 --prediction eps --seed 0
