"""circuitprop: simulate and train analog neural networks made of real circuit elements."""
from .backends import ConvergenceError, FastBackend, FastSolverConfig, Solution, get_backend
from .network import (Architecture, DiodeModel, HiddenLayer, Network, NetworkError, make_architecture)

__version__ = "0.1.0"

__all__ = ["Architecture", "DiodeModel", "HiddenLayer", "Network", "NetworkError", "make_architecture",
           "FastBackend", "FastSolverConfig", "Solution", "ConvergenceError", "get_backend", "__version__"]
