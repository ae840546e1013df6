#!/usr/bin/env bash
# Reproduce the chapter-14b models in diffedu/checkpoints/domains (manifold_* and egnn_*).
#
#   bash scripts/train_domains_geometry.sh            # all six (about 6 CPU-minutes on one idle core)
#   bash scripts/train_domains_geometry.sh manifold   # only those whose name starts with the word
#
# Each line is exactly the command recorded in the checkpoint's manifest ("command"); each trains on
# freshly drawn data from the chapter's exact distributions, so nothing else needs training first.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PY=${PYTHON:-python}
only=${1:-}
run() {  # run NAME MODULE ARGS...
  [[ -z "$only" || "$1" == "$only"* ]] || return 0
  echo "== $1 ($(date +%T))"
  shift
  $PY -m "$@"
}

run manifold_sphere       diffedu.domains.manifold --manifold sphere --steps 6000 --seed 0
run manifold_sphere_naive diffedu.domains.manifold --manifold sphere --naive --steps 6000 --seed 0
run manifold_torus        diffedu.domains.manifold --manifold torus --steps 6000 --seed 0
run manifold_torus_naive  diffedu.domains.manifold --manifold torus --naive --steps 6000 --seed 0
run egnn_polygons         diffedu.domains.equivariant --kind egnn --steps 3000 --seed 0
run egnn_polygons_mlp     diffedu.domains.equivariant --kind mlp --steps 3000 --seed 0
