#!/usr/bin/env bash
# The main job: set up, train a small MNIST circuit on the defaults with the fast solver, check it in
# ngspice on 200 test images, and write the model, training curve, metrics log and ngspice netlist to out/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ -z "${CIRCUITPROP_DATA:-}" ] && [ -d ../shared/data/mnist ]; then
    export CIRCUITPROP_DATA="$(cd ../shared/data && pwd)"
fi
# Running the main job again starts afresh (--overwrite) unless you ask to continue a killed run (--resume).
fresh=--overwrite
for arg in "$@"; do [ "$arg" = "--resume" ] && fresh=""; done
exec .venv/bin/circuitprop train --dataset mnist --check-spice 200 --export ngspice -o out/mnist-784-100-10.npz \
    $fresh "$@"
