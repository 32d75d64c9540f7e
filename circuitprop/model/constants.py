"""Physical constants and the limits circuitprop accepts for element values."""

#: Boltzmann constant (J/K) and elementary charge (C) as used by ngspice 39.
BOLTZMANN = 1.38064852e-23
CHARGE = 1.6021766208e-19
#: Nominal temperature of SPICE simulators (27 °C), kelvin.
TNOM_KELVIN = 300.15

#: Largest magnitude (volts) of any source voltage, bias or input voltage circuitprop accepts, and the
#: largest gain (V/V) of inputs and amplifiers: beyond it a "solution" is floating-point noise, not physics.
MAX_VOLTAGE = 1e6
MAX_GAIN = 1e6
#: Largest conductance (siemens) accepted: a 1 micro-ohm resistor.
MAX_CONDUCTANCE = 1e6
#: Range (ohms per cell) of a non-zero wire resistance: below 1 micro-ohm the line equations lose all
#: precision against the cell conductances; above 1 megaohm per cell the wire is not a wire.
MIN_WIRE_RESISTANCE = 1e-6
MAX_WIRE_RESISTANCE = 1e6
#: Physical orders of crossbar lines (see :func:`circuitprop.wires.line_orders`).
WIRE_LAYOUTS = ("interleaved", "node-order")
