#!/usr/bin/env bash
# Kendall-size circuit (784-100-10 features/hidden/classes = 1568-100-20 nodes) with 1N4148 diode neurons,
# 10 epochs on MNIST, fast solver; inputs x30 so that the diodes clip (RESULTS.md, "From ideal to real").
# TARGET (volts) defaults to 0.8, the best of experiments/real_diodes_tuning.py on the validation split;
# TARGET=1.0 reproduces the first run (kendall-1n4148.*). Writes experiments/results/real_diodes/*.
#   bash experiments/real_diodes_kendall.sh              # target 0.8 V -> kendall-1n4148-t0.8.*
#   TARGET=1.0 bash experiments/real_diodes_kendall.sh   # target 1 V   -> kendall-1n4148.*
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ -z "${CIRCUITPROP_DATA:-}" ] && [ -d ../shared/data/mnist ]; then export CIRCUITPROP_DATA="$(cd ../shared/data && pwd)"; fi
target="${TARGET:-0.8}"
name=kendall-1n4148; [ "$target" = "1.0" ] || name="kendall-1n4148-t$target"
.venv/bin/circuitprop train --epochs 10 --g-max 1e-5 --seed 0 --diode-model 1n4148 --input-gain 30 --lr 300 \
  --target "$target" --check-spice 200 "$@" -o "experiments/results/real_diodes/$name.npz"
