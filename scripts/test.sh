#!/usr/bin/env bash
# Set up, then run the test suite (long trainings are behind the 'slow' marker and not run here).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest -q "$@"
