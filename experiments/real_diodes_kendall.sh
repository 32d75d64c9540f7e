#!/usr/bin/env bash
# Kendall-size circuit (784-100-10 features/hidden/classes = 1568-100-20 nodes) with 1N4148 diode neurons,
# 10 epochs on MNIST, fast solver; inputs x30 and target 1 V so that the diodes clip (RESULTS.md,
# "From ideal to real"). Writes experiments/results/real_diodes/*.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ -z "${CIRCUITPROP_DATA:-}" ] && [ -d ../shared/data/mnist ]; then export CIRCUITPROP_DATA="$(cd ../shared/data && pwd)"; fi
.venv/bin/circuitprop train --epochs 10 --g-max 1e-5 --seed 0 --diode-model 1n4148 --input-gain 30 --lr 300 \
  --target 1.0 --check-spice 200 "$@" -o experiments/results/real_diodes/kendall-1n4148.npz
