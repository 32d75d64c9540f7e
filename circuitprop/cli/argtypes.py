"""argparse types that refuse bad values at parse time, with the option's meaning in the message.

Each factory returns a callable for ``add_argument(type=...)``; argparse turns its
``ArgumentTypeError`` into ``circuitprop CMD: error: argument --x: ...`` and exit status 2.
"""
from __future__ import annotations

import argparse
import math


def _number(text, kind):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r}: must be finite (not nan or inf)")
    return value


def integer(minimum=None, maximum=None):
    """An integer in ``[minimum, maximum]`` (either bound optional)."""
    def parse(text):
        value = _number(text, int)
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is too small: must be >= {minimum}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{value} is too large: must be <= {maximum}")
        return value
    parse.__name__ = "integer"
    return parse


def real(minimum=None, maximum=None, open_minimum=False, open_maximum=False):
    """A finite float in a range; ``open_*`` excludes the bound itself."""
    def parse(text):
        value = _number(text, float)
        if minimum is not None and (value < minimum or (open_minimum and value == minimum)):
            raise argparse.ArgumentTypeError(f"{value:g} is out of range: must be {'>' if open_minimum else '>='} "
                                             f"{minimum:g}")
        if maximum is not None and (value > maximum or (open_maximum and value == maximum)):
            raise argparse.ArgumentTypeError(f"{value:g} is out of range: must be {'<' if open_maximum else '<='} "
                                             f"{maximum:g}")
        return value
    parse.__name__ = "number"
    return parse


positive_int = integer(minimum=1)
nonnegative_int = integer(minimum=0)
positive = real(minimum=0.0, open_minimum=True)
nonnegative = real(minimum=0.0)
finite = real()
