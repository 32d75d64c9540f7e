"""circuitprop: simulate and train analog neural networks made of real circuit elements."""
import os as _os
import sys as _sys

if "numpy" not in _sys.modules:
    # OpenBLAS's idle threads spin for 2**28 cycles (~0.1 s) after each product by default, and then take
    # the cores the numba kernels run on: a batch of 256 Shockley solves took 50 ms instead of 34
    # (CHANGELOG.md, measurement history of 0.1.0).  2**16 cycles (~25 us) keeps them warm within a product sequence.  It
    # must be set before numpy loads OpenBLAS, so it applies to the CLI and to scripts that import
    # circuitprop first; it only changes timing, never results, and a value set by the user wins.
    _os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "16")
if "numba" not in _sys.modules:
    # numba's disk cache goes to a user cache folder, not into the installed package (read-only installs,
    # several Python environments, and a damaged cache that one `rm -r` clears); a value set by the user wins.
    _os.environ.setdefault("NUMBA_CACHE_DIR", _os.path.join(
        _os.environ.get("XDG_CACHE_HOME") or _os.path.join(_os.path.expanduser("~"), ".cache"), "circuitprop", "numba"))
from ._version import __version__
from .backends import ConvergenceError, FastBackend, FastSolverConfig, Solution, SpiceBackend, get_backend
from .config import CircuitConfig, DeviceConfig, EPConfig, NeuronConfig, OptimizerConfig, SolverConfig, TrainingConfig
from .errors import ConfigError, NetworkError
from .io.datasets import load_dataset
from .learning import EPTrainer, TrainingRun
from .model import Architecture, DiodeModel, HiddenLayer, Network, make_architecture
from .netlist import read_netlist, write_netlist

__all__ = ["Architecture", "DiodeModel", "HiddenLayer", "Network", "NetworkError", "ConfigError",
           "make_architecture", "FastBackend", "FastSolverConfig", "SpiceBackend", "Solution", "ConvergenceError",
           "get_backend", "EPTrainer", "TrainingRun", "CircuitConfig", "NeuronConfig", "EPConfig", "OptimizerConfig",
           "DeviceConfig", "SolverConfig", "TrainingConfig", "load_dataset", "read_netlist", "write_netlist",
           "__version__"]
