"""The command line (``circuitprop COMMAND``): options derived from the configuration declarations."""
from .main import build_parser, main

__all__ = ["build_parser", "main"]
