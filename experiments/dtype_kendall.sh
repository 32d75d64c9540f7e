#!/usr/bin/env bash
# float32 vs float64 end to end on the Kendall-size circuit (1568-100-20: 784-100-10 with doubled inputs and
# outputs), MNIST, 10 epochs, train defaults otherwise. Writes experiments/results/dtype/{float64,float32}.*
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ -z "${CIRCUITPROP_DATA:-}" ] && [ -d ../shared/data/mnist ]; then export CIRCUITPROP_DATA="$(cd ../shared/data && pwd)"; fi
for dtype in float64 float32; do
    .venv/bin/circuitprop train --dataset mnist --layers 784-100-10 --epochs 10 --seed 0 --dtype "$dtype" \
        --overwrite -o "experiments/results/dtype/$dtype.npz" "$@"
done
