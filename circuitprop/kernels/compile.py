"""``python -m circuitprop.kernels.compile``: compile one kernel for one signature and save it to numba's disk
cache (see :class:`circuitprop.kernels.fused.CacheConsistent`).  Reads a pickled ``(key, signature)`` on
standard input, written by circuitprop itself."""
import pickle
import sys

from .fused import _numba_available, kernel_by_key


def main() -> int:
    key, signature = pickle.loads(sys.stdin.buffer.read())  # written by CacheConsistent in the parent
    if not _numba_available():
        return 1
    kernel_by_key(key)._make().compile(signature)
    return 0


if __name__ == "__main__":
    sys.exit(main())
