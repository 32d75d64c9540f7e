#!/usr/bin/env bash
# Kendall's experiment with ngspice solving every phase: 784-100-10 features/hidden/classes (1568-100-20 nodes
# plus 2 bias inputs), 1N4148 neurons, full MNIST, the settings of real_diodes_kendall.sh (inputs x30, lr 300,
# TARGET volts: default 0.8, the validation-tuned value; TARGET=1.0 for the first run). The free and both
# nudged phases of every example are solved by ngspice (folded inputs: exact), on 2 ngspice worker processes.
# Resumable: run again with --resume after an interruption.
#   bash experiments/real_diodes_spice.sh            # 10 epochs, about 12 min per epoch on 2 cores
#   bash experiments/real_diodes_spice.sh epoch1     # 1-epoch runs with ngspice and with the fast solver
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ -z "${CIRCUITPROP_DATA:-}" ] && [ -d ../shared/data/mnist ]; then export CIRCUITPROP_DATA="$(cd ../shared/data && pwd)"; fi
target="${TARGET:-0.8}"
name=kendall-1n4148; [ "$target" = "1.0" ] || name="kendall-1n4148-t$target"
common=(--g-max 1e-5 --seed 0 --diode-model 1n4148 --input-gain 30 --lr 300 --target "$target")
out=experiments/results/real_diodes
if [ "${1:-}" = "epoch1" ]; then
  shift
  .venv/bin/circuitprop train --backend spice --spice-workers 2 --epochs 1 "${common[@]}" "$@" -o $out/$name-spice-epoch1.npz
  .venv/bin/circuitprop train --backend fast --epochs 1 "${common[@]}" "$@" -o $out/$name-fast-epoch1.npz
else
  .venv/bin/circuitprop train --backend spice --spice-workers 2 --epochs 10 "${common[@]}" "$@" -o $out/$name-spice.npz
fi
