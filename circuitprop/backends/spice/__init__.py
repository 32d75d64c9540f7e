"""ngspice through PySpice (shared-library mode).

==============  ============================================================================================
module          what it holds
==============  ============================================================================================
``ngspice``     the shared library (one instance per process), its options and errors
``backend``     :class:`SpiceBackend`: batches solved by ``op`` or one DC sweep per phase, KCL-checked
``pool``        worker processes, each with its own ngspice, for ``workers > 1``
``worker``      the worker process's main loop (``python -m circuitprop.backends.spice.worker``)
``analyses``    netlist operating points (in a crash-proof child process: ``child``), source power, settling
                time and transient energy, an independent ngspice run of a netlist file
==============  ============================================================================================
"""
from .analyses import operating_point, operating_point_isolated, run_ngspice_batch, settling_time, source_power
from .backend import SpiceBackend, check_solution, simulated_network
from .ngspice import NgSpiceSession, SpiceError, SpiceOptions

__all__ = ["NgSpiceSession", "SpiceBackend", "SpiceError", "SpiceOptions", "check_solution", "operating_point",
           "operating_point_isolated", "run_ngspice_batch", "settling_time", "simulated_network", "source_power"]
