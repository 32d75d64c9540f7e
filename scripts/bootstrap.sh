#!/usr/bin/env bash
# Set up everything circuitprop needs on a Debian machine: ngspice (shared library) and a
# virtual environment in .venv with the package installed. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

have_libngspice() {
    ldconfig -p 2>/dev/null | grep -q 'libngspice\.so\b' || ls /usr/lib/*/libngspice.so >/dev/null 2>&1
}

if ! have_libngspice || ! command -v ngspice >/dev/null 2>&1; then
    echo "[bootstrap] installing ngspice and libngspice0-dev from Debian's packages" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo"; else
        echo "[bootstrap] error: ngspice is missing and I cannot install it (not root, no sudo)." >&2
        echo "[bootstrap] run:  sudo apt-get update && sudo apt-get install -y ngspice libngspice0-dev" >&2
        exit 1
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ngspice libngspice0-dev >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "[bootstrap] creating .venv" >&2
    "$PY" -m venv .venv
fi
stamp=.venv/.circuitprop-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "[bootstrap] installing circuitprop and its dependencies into .venv" >&2
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    .venv/bin/python -m pip install -q -e '.[test,sweep,docs]' 2>&1 | grep -v -i 'warning' >&2 || true
    .venv/bin/python -c 'import circuitprop, PySpice, numpy, scipy' || { echo "[bootstrap] error: install failed" >&2; exit 1; }
    touch "$stamp"
fi
