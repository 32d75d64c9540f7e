"""Redraw the committed figures from their committed data (logs, run records) with today's plotting code:
training curves titled with circuit, data, neurons and devices; the (beta, eta/beta) maps sized to their grid.
Nothing is trained again.

    .venv/bin/python experiments/redraw_figures.py [--format png|pdf|svg]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from circuitprop.studies.plots import plot_beta_lr_maps, plot_training_curve
from circuitprop.studies.sweep import load_results

RESULTS = Path(__file__).resolve().parent / "results"

#: Training curves: log -> what the run was (the settings of experiments/ideal_to_real.sh and
#: experiments/real_diodes_*.sh).
CURVES = {
    "ideal_to_real/ideal": "ideal diodes, ideal devices",
    "ideal_to_real/1n4148": "1N4148 diodes, ideal devices",
    "ideal_to_real/ideal-reram": "ideal diodes, ReRAM-like devices",
    "ideal_to_real/ideal-pcm": "ideal diodes, PCM-like devices",
    "ideal_to_real/ideal-ecram": "ideal diodes, ECRAM-like devices",
    "ideal_to_real/1n4148-reram": "1N4148 diodes, ReRAM-like devices",
    "ideal_to_real/1n4148-volt": "1N4148 diodes at the volt scale (inputs x30, target 1 V), ideal devices",
    "real_diodes/kendall-1n4148": "1N4148 diodes (inputs x30, target 1 V), fast solver",
    "real_diodes/kendall-1n4148-closedform": "1N4148 diodes (inputs x30, target 1 V), fast solver (closed form)",
    "real_diodes/kendall-1n4148-spice": "1N4148 diodes (inputs x30, target 1 V), ngspice solving every phase",
    "real_diodes/kendall-1n4148-t0.8": "1N4148 diodes (inputs x30, target 0.8 V), fast solver",
    "real_diodes/kendall-1n4148-t0.8-spice": "1N4148 diodes (inputs x30, target 0.8 V), ngspice every phase",
    "real_diodes/kendall-1n4148-fast-epoch1": "1N4148 diodes, 1 epoch, fast solver",
    "real_diodes/kendall-1n4148-spice-epoch1": "1N4148 diodes, 1 epoch, ngspice solving every phase",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", choices=("png", "pdf", "svg"), default="png")
    args = parser.parse_args()
    for stem, what in CURVES.items():
        log = RESULTS / f"{stem}.log.jsonl"
        if not log.exists():
            continue
        history = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        title = f"784-100-10 (1570-100-20 nodes) on MNIST\n{what}"
        print("wrote", plot_training_curve(history, RESULTS / f"{stem}.curve.{args.format}", title=title))
    maps = RESULTS / "beta_lr_maps"
    if (maps / "runs").exists():
        print("wrote", plot_beta_lr_maps(load_results(maps), maps / f"beta_lr_maps.{args.format}"))


if __name__ == "__main__":
    main()
