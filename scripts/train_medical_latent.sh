#!/usr/bin/env bash
# Reproduce chapter 11b's checkpoints in diffedu/checkpoints/medical (latent_*, xmod_*, prior64, patch_prior64).
#
#   bash scripts/train_medical_latent.sh              # all of them (about 25 CPU minutes on one idle core)
#   bash scripts/train_medical_latent.sh xmod         # only those whose name starts with the word
#
# Each line runs exactly the command recorded in the checkpoint's manifest ("command"). One thread:
# the networks are tiny. latent_prior32 encodes the phantoms with latent_ae32, so it runs after it.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PY=${PYTHON:-python}
only=${1:-}
run() {  # run NAME STEPS
  local name=$1 steps=$2
  [[ -z "$only" || "$name" == "$only"* ]] || return 0
  echo "== $name ($(date +%T))"
  $PY -m diffedu.medical.train "$name" --steps "$steps" --seed 0
}

# Latent diffusion (ReSample): the KL autoencoder, then the prior on its scaled latents.
run latent_ae32 2000
run latent_prior32 2500
# Cross-modality translation: the image-conditioned diffusion model (x0-prediction: it collapses, kept to show
# why), the same network with v-prediction and the regression network, both with the v model's 2000 steps.
run xmod_diffusion 800
run xmod_diffusion_v 2000
run xmod_regression 2000
# The equal-budget pair at 64 x 64: one U-Net layout, 1500 steps, 16384 pixels per batch, whole images or 32 x 32 crops.
run prior64 1500
run patch_prior64 1500
