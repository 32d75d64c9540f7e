"""Files written by release 0.1 (before the settings were declared in configuration dataclasses) still load,
and a checkpoint of that release resumes bit for bit as that release resumed it.

``tests/golden/release-0.1/make.py`` wrote the files with release 0.1: a checkpoint stopped in the middle of
epoch 2, the model at that point, and what resuming the checkpoint to the end of epoch 2 gave (conductances,
class scores of ``Xt``).
"""
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import fit_run

from circuitprop import Network
from circuitprop.learning import EPTrainer

GOLDEN = Path(__file__).parent / "golden" / "release-0.1"
#: the settings make.py trained each case with (``train --resume`` passes them again)
CASES = {
    "default": dict(layers="16-6-3", epochs=2, batch_size=4, verbose=False, learning_rate=3e4),
    "noisy": dict(layers="16-6-3", epochs=2, batch_size=4, verbose=False, estimator="random-sign",
                  noise_sigma=1e-4, noise_samples=2, learning_rate=[2e4, 1e4], diode="1n4148", input_gain=30.0,
                  target=1.0, g_max=1e-5, solver_sweeps=6, seed=3),
}


@pytest.mark.parametrize("case", ["default", "noisy"])
def test_release_checkpoint_resumes_bit_for_bit(case, tmp_path):
    expected = np.load(GOLDEN / f"{case}.expected.npz")
    ckpt = tmp_path / "run.ckpt.npz"
    shutil.copy(GOLDEN / f"{case}.ckpt.npz", ckpt)
    restored = EPTrainer.from_checkpoint(ckpt, verbose=False)
    np.testing.assert_array_equal(restored.decision_function(expected["Xt"]), expected["scores_at_checkpoint"])
    trainer = fit_run(EPTrainer(**CASES[case]), expected["X"], expected["y"], checkpoint=ckpt, resume=True)
    for (a, b), g in trainer.network_.conductances.items():
        np.testing.assert_array_equal(g, expected[f"g_{a}_{b}"], err_msg=f"crossbar {a}-{b}")
    np.testing.assert_array_equal(trainer.decision_function(expected["Xt"]), expected["final_scores"])


@pytest.mark.parametrize("case", ["default", "noisy"])
def test_release_model_loads(case):
    expected = np.load(GOLDEN / f"{case}.expected.npz")
    net = Network.load(GOLDEN / f"{case}.model.npz")
    trainer = EPTrainer.from_checkpoint(GOLDEN / f"{case}.ckpt.npz", verbose=False)
    assert net.architecture == trainer.network_.architecture
    for key, g in net.conductances.items():
        np.testing.assert_array_equal(g, trainer.network_.conductances[key])
