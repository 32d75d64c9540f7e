"""Worker process of :class:`circuitprop.backends.spice.SpiceBackend` with ``workers > 1``.

Run as ``python -m circuitprop.backends.spice.worker``.  The parent sends the backend's settings, then
one pickled ``(network, inputs, output_currents)`` per share of a batch on standard input; each gets a
pickled ``("ok", Solution)`` or ``("error", (kind, message))`` back on the original standard output.
Standard output is otherwise redirected to standard error, so that nothing ngspice prints can corrupt
the stream.  The worker ignores Ctrl-C (the parent stops between batches) and exits at end of input.
"""
import os
import pickle
import signal
import sys

from .backend import SpiceBackend


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    source = sys.stdin.buffer
    settings = pickle.load(source)  # written by SpiceBackend in the parent process
    backend = SpiceBackend(workers=1, **settings)
    while True:
        try:
            network, inputs, currents = pickle.load(source)
        except EOFError:
            return 0
        try:
            message = ("ok", backend.solve(network, inputs, currents))
        except Exception as exc:  # reported to the parent, which raises it
            message = ("error", (type(exc).__name__, str(exc)))
        pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()


if __name__ == "__main__":
    sys.exit(main())
