#!/usr/bin/env bash
# Result 1 of the trainer issue: Kendall-size network 1568-100-20 (784-100-10 with doubled inputs and
# outputs) on MNIST, 10 epochs, fast backend. Writes experiments/results/kendall/*.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ -z "${CIRCUITPROP_DATA:-}" ] && [ -d ../shared/data/mnist ]; then export CIRCUITPROP_DATA="$(cd ../shared/data && pwd)"; fi
exec .venv/bin/circuitprop train --dataset mnist --layers 784-100-10 --epochs 10 --check-spice 200 \
    --target 0.02 --lr 3e5 --lr-schedule cosine --batch-size 16 --seed 0 \
    -o experiments/results/kendall/model.npz "$@"
