#!/usr/bin/env bash
# The main job: set up, then run circuitprop's headline command (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/circuitprop demo --output-dir out "$@"
