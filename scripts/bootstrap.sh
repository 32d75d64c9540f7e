#!/usr/bin/env bash
# Set up everything circuitprop needs on a Debian machine: ngspice (shared library) and a
# virtual environment in .venv with the package installed. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

have_libngspice() {
    ldconfig -p 2>/dev/null | grep -q 'libngspice\.so\b' || ls /usr/lib/*/libngspice.so >/dev/null 2>&1
}
# ngspice 40 or later: its KLU solver factors the dense crossbar between two hidden layers in seconds, where
# ngspice 39's Sparse 1.3 (Debian 12's own package) needs tens of minutes per Newton iteration at 1024 x 1024.
ngspice_major() { dpkg-query -W -f='${Version}' libngspice0 2>/dev/null | sed 's/[^0-9].*//'; }
ngspice_ok() {
    have_libngspice && command -v ngspice >/dev/null 2>&1 || return 1
    command -v dpkg-query >/dev/null 2>&1 || return 0   # not Debian: take what is installed
    local major; major=$(ngspice_major); [ -n "$major" ] && [ "$major" -ge 40 ]
}

if ! ngspice_ok; then
    echo "[bootstrap] installing ngspice (40 or later) and libngspice0-dev from Debian's packages" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo"; else
        echo "[bootstrap] error: ngspice >= 40 is missing and I cannot install it (not root, no sudo)." >&2
        echo "[bootstrap] on Debian 12 run:  sudo apt-get install -y -t bookworm-backports ngspice libngspice0-dev" >&2
        exit 1
    fi
    target=()
    if [ "$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")" = bookworm ]; then
        # Debian 12 ships ngspice 39; bookworm-backports has 46 (built for Debian 12's libraries)
        if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
            printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
                | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
        fi
        target=(-t bookworm-backports)
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${target[@]}" ngspice libngspice0-dev >/dev/null
    ngspice_ok || { echo "[bootstrap] error: ngspice $(ngspice_major) installed; circuitprop needs 40 or later" >&2; exit 1; }
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
