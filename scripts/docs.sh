#!/usr/bin/env bash
# Build the documentation site (Sphinx, warnings as errors) into build/docs and check it in a real headless
# browser (Debian's chromium through chromedriver): no broken link, the home page, an API page and a page with a
# figure render. Installs chromium and chromium-driver from Debian's packages when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    echo "[docs] installing chromium and chromium-driver from Debian's packages" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi
rm -rf build/docs
.venv/bin/sphinx-build -W --keep-going -q -b html docs build/docs
.venv/bin/python scripts/check_docs.py build/docs
echo "[docs] built build/docs and checked it in chromium"
