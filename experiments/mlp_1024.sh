#!/usr/bin/env bash
# Result 2 of the trainer issue: 1568-1024-10 (784-1024-10 with doubled inputs and outputs) on MNIST and
# Fashion-MNIST (25 and 30 epochs), fast backend, train defaults (target 0.02 V, cosine-annealed rate) except a
# 10x larger rate on the input crossbar. Writes experiments/results/{mnist,fashion}_1024/*.
# A killed run continues from its checkpoint when the script is run again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ -z "${CIRCUITPROP_DATA:-}" ] && [ -d ../shared/data/mnist ]; then export CIRCUITPROP_DATA="$(cd ../shared/data && pwd)"; fi
for run in mnist:mnist_1024:25 fashion-mnist:fashion_1024:30; do
    IFS=: read -r dataset folder epochs <<< "$run"
    .venv/bin/circuitprop train --dataset "$dataset" --layers 784-1024-10 --lr 3e6 3e5 --epochs "$epochs" --seed 0 \
        --resume -o "experiments/results/$folder/model.npz" "$@"
done
