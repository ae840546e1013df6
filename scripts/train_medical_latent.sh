#!/usr/bin/env bash
# Reproduce chapter 11b's checkpoints in diffedu/checkpoints/medical (latent_*, xmod_*, patch_*).
#
#   bash scripts/train_medical_latent.sh              # all of them (about 10 CPU minutes on one idle core)
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
# Cross-modality translation: the image-conditioned diffusion model and the regression network.
run xmod_diffusion 800
run xmod_regression 400
# The patch prior: 16 x 16 crops of 32 x 32 phantoms.
run patch_prior16 600
