#!/usr/bin/env bash
# float32 vs float64 end to end on the Kendall-size circuit (1568-100-20: 784-100-10 with doubled inputs and
# outputs), MNIST, 10 epochs, train defaults otherwise, seeds 0-3 (training is chaotic: a last-bit change in
# one update moves the final accuracy by about 0.1 point, so dtypes are compared over seeds).
# Writes experiments/results/dtype/{float64,float32}-seed<k>.{npz,log.jsonl,curve.png}. Usage: [SEEDS="0 1"]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ -z "${CIRCUITPROP_DATA:-}" ] && [ -d ../shared/data/mnist ]; then export CIRCUITPROP_DATA="$(cd ../shared/data && pwd)"; fi
for seed in ${SEEDS:-0 1 2 3}; do
    for dtype in float64 float32; do
        .venv/bin/circuitprop train --dataset mnist --layers 784-100-10 --epochs 10 --seed "$seed" --dtype "$dtype" \
            --overwrite -o "experiments/results/dtype/$dtype-seed$seed.npz" "$@"
    done
done
