"""ngspice through PySpice (shared-library mode): the backend, netlists from files solved in a child
process, a pool of worker processes, and transient analyses (settling time, energy)."""
from .backend import (NgSpiceSession, SpiceBackend, SpiceError, SpiceOptions, check_solution, operating_point,
                      operating_point_isolated, run_ngspice_batch, settling_time, simulated_network, source_power)

__all__ = ["NgSpiceSession", "SpiceBackend", "SpiceError", "SpiceOptions", "check_solution", "operating_point",
           "operating_point_isolated", "run_ngspice_batch", "settling_time", "simulated_network", "source_power"]
