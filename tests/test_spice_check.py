"""experiments/spice_check.py: an ngspice operating point started from the fast solver's state (.nodeset) is
ngspice's own answer, the same as a cold DC sweep of the same circuit; ``--only`` picks images or names the
ones out of range."""
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import random_network

from circuitprop.backends import FastBackend
from circuitprop.backends.spice import SpiceBackend

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
from spice_check import chosen_images, nodeset_solve  # noqa: E402


def test_nodeset_start_gives_ngspices_own_answer(rng):
    # deep, with skip crossbars and an unamplified layer; ideal diodes (near-ideal ones in ngspice)
    net = random_network("6-5-5-5-2", amplifier_gain=(2.0, None, 3.0), skip=((0, 2), (1, 3), (2, 4)),
                         v_low=0.0, v_high=1.0)
    x = rng.uniform(0, 1, (3, 6))
    fast = FastBackend(tol=1e-12).solve(net, x)
    assert fast.converged
    # the start is the ideal-diode state; a wrong start (all nodes at 0.9 V) must land on the same answer
    started = nodeset_solve(net, x, fast.voltages)
    wrong = nodeset_solve(net, x, [np.full_like(v, 0.9) for v in fast.voltages])
    cold = SpiceBackend(fold_inputs=True).solve(net, x).outputs
    np.testing.assert_allclose(started, cold, atol=1e-7)
    np.testing.assert_allclose(wrong, cold, atol=1e-7)
    # near-ideal SPICE diodes (N = 0.001) against exact clips: within a millivolt, and some neurons clip
    assert np.max(np.abs(started - fast.outputs)) < 1e-3
    hidden = np.concatenate([v.ravel() for v in fast.voltages[1:-1]])
    assert np.any(hidden <= 1e-9) and np.any((hidden > 1e-3) & (hidden < 1 - 1e-3))


def test_only_chooses_images_and_names_the_ones_outside():
    assert chosen_images(4) == [0, 1, 2, 3]
    assert chosen_images(200, [66, 3, 66]) == [3, 66]
    with pytest.raises(SystemExit, match=r"--only 200 -1: images are numbered 0 to 199 \(--images 200\)"):
        chosen_images(200, [5, 200, -1])
