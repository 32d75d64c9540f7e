#!/usr/bin/env bash
# The noise study of the uncertainty paper, reduced for a 2-core machine (about 35 minutes here):
# accuracy vs noise (MNIST, Fashion-MNIST, 10 seeds), critical level vs N (MNIST), (beta, eta/beta) maps.
# Interrupt it at any time and run it again: finished runs are kept and skipped.
# On a cluster: DASK_SCHEDULER_ADDRESS=tcp://host:8786 bash experiments/run_noise_study.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ -z "${CIRCUITPROP_DATA:-}" ] && [ -d ../shared/data/mnist ]; then export CIRCUITPROP_DATA="$(cd ../shared/data && pwd)"; fi
CP=.venv/bin/circuitprop
$CP sweep experiments/sweeps/noise_curve.toml --results experiments/results/noise
$CP sweep experiments/sweeps/critical_vs_samples.toml --results experiments/results/noise
$CP sweep experiments/sweeps/beta_lr_maps.toml --results experiments/results/beta_lr_maps
$CP sweep-report experiments/results/noise
$CP sweep-report experiments/results/beta_lr_maps
.venv/bin/python experiments/table1.py experiments/results/noise
