#!/usr/bin/env bash
# Issue 25: the uncertainty paper's noise study at full scale (784-1024-10, i.e. 1568 input nodes, 1024
# hidden neurons, full training sets, test set), MNIST and Fashion-MNIST.  On this 2-core machine the grid
# takes about 2 hours and the (beta, eta/beta) maps about 15 minutes: RESULTS.md, "Noise study at full scale".
# Interrupt it at any time (even kill -9) and run it again: every finished run is a file in
# experiments/results/full_scale/*/runs/ and is skipped; the rest are done.
# On a Dask cluster: DASK_SCHEDULER_ADDRESS=tcp://host:8786 bash experiments/run_full_scale_noise.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ -z "${CIRCUITPROP_DATA:-}" ] && [ -d ../shared/data/mnist ]; then export CIRCUITPROP_DATA="$(cd ../shared/data && pwd)"; fi
CP=.venv/bin/circuitprop
GRID=experiments/results/full_scale/noise
for n in 1 2 4 8 16; do  # cheapest first: a run with N = 16 costs about 1.6 runs with N = 1
  $CP sweep experiments/sweeps/full_scale/noise_grid_N$n.toml --results $GRID
done
$CP sweep experiments/sweeps/full_scale/beta_lr_maps.toml --results experiments/results/full_scale/beta_lr_maps
.venv/bin/python experiments/full_scale_noise.py
