#!/usr/bin/env bash
# Reproduce chapter 14's shipped files in diffedu/checkpoints/domains (discrete_* and lowrank_*).
#
#   bash scripts/train_domains.sh              # all of them (about 4 CPU-minutes on one thread)
#   bash scripts/train_domains.sh markov       # only those whose name starts with the word
#
# Each line is exactly the command recorded in the files' manifests ("command"). Nothing needs a
# download: the Markov chain is defined in diffedu/domains/discrete_train.py, the digits are
# scikit-learn's bundled 8x8 set, the low-rank mixture is drawn from seed 0 in diffedu/domains/lowrank.py.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PY=${PYTHON:-python}
only=${1:-}
run() {  # run NAME COMMAND...
  [[ -z "$only" || "$1" == "$only"* ]] || return 0
  echo "== $1 ($(date +%T))"
  shift
  $PY "$@"
}

run markov_mdlm    -m diffedu.domains.discrete_train markov_mdlm      # MDLM, 4000 steps, CategoricalMLP(L=16, K=4)
run markov_uniform -m diffedu.domains.discrete_train markov_uniform   # uniform D3PM, hybrid loss, T = 50, 3000 steps
run digits_mdlm    -m diffedu.domains.discrete_train digits_mdlm      # MDLM on binary 8x8 digits, 4000 steps
run lowrank        -m diffedu.domains.lowrank                         # the n-sweep (lowrank_sweep.json) + lowrank_mlp
