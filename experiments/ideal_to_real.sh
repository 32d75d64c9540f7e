#!/usr/bin/env bash
# "From ideal to real": 784-100-10 MNIST, 2 epochs, train defaults with a device range of [1e-8, 1e-5] S,
# fast solver, one step toward real hardware per row. Writes experiments/results/ideal_to_real/*.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ -z "${CIRCUITPROP_DATA:-}" ] && [ -d ../shared/data/mnist ]; then export CIRCUITPROP_DATA="$(cd ../shared/data && pwd)"; fi
out=experiments/results/ideal_to_real
run() { name=$1; shift; .venv/bin/circuitprop train --epochs 2 --g-max 1e-5 --seed 0 --overwrite -o "$out/$name.npz" "$@"; }
run ideal
run 1n4148 --diode-model 1n4148
run ideal-reram --device reram
run ideal-pcm --device pcm
run ideal-ecram --device ecram
run 1n4148-reram --diode-model 1n4148 --device reram
# 1N4148 neurons driven at the volt scale (inputs x30, target 1 V, learning rate scaled by 1/30**2), so that
# the hidden nodes swing over several N*V_T and the diodes clip instead of acting as small-signal conductances
run 1n4148-volt --diode-model 1n4148 --input-gain 30 --lr 300 --target 1.0
