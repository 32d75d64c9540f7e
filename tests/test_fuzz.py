"""A short fuzz campaign of the netlist reader on every test run (the full one: tests/fuzz_netlist.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from fuzz_netlist import campaign  # noqa: E402


def test_mutated_netlists_are_read_or_refused_cleanly():
    result = campaign(3000, seed=0)
    counts = result["counts"]
    assert counts["accepted"] > 100 and counts["refused"] > 1000  # the mutations reach both outcomes
    assert (counts["tracebacks"], counts["hangs"], counts["breaches"], counts["round_trip_failures"]) == (0, 0, 0, 0), \
        result["failures"][:3]
