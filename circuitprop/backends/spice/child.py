"""Child process of :func:`circuitprop.backends.spice.operating_point_isolated`.

Reads a pickled ``(circuit, options)`` from standard input, solves the operating point with
ngspice and writes a pickled ``("ok", {node: volts})`` or ``("error", kind, message)`` to
standard output.  If ngspice crashes, this process dies and the parent reports it.
"""
import os
import pickle
import sys

from .analyses import operating_point


def main() -> int:
    circuit, options = pickle.load(sys.stdin.buffer)
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # ngspice and PySpice may print; keep standard output for the result
    try:
        message = ("ok", operating_point(circuit, options))
    except Exception as exc:
        message = ("error", type(exc).__name__, str(exc))
    out.write(pickle.dumps(message))
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
