from pathlib import Path

import numpy as np
import pytest

from circuitprop.io.datasets import write_idx, write_two_class_mnist  # noqa: F401 (used by tests)
from circuitprop.model import Architecture, HiddenLayer, Network, make_architecture

GOLDEN = Path(__file__).parent / "golden"


def small_fixed_network(amplifier=True) -> Network:
    """A 2-2-1 network with hand-set conductances (used by golden files)."""
    arch = Architecture(n_features=2, hidden=(HiddenLayer(2, v_low=-0.1, v_high=0.4,
                                                          amplifier_gain=2.0 if amplifier else None),),
                        n_classes=1, crossbars=((0, 1), (1, 2)), name="golden 2-2-1")
    g01 = np.array([[1e-5, 2e-5], [3e-5, 4e-5], [5e-6, 6e-6], [7e-6, 8e-6]])
    g12 = np.array([[1.5e-5, 2.5e-5], [3.5e-5, 4.5e-5]])
    return Network(arch, {(0, 1): g01, (1, 2): g12})


def random_network(spec="5-4-3", seed=0, **kw):
    g_min = kw.pop("g_min", 1e-6)
    g_max = kw.pop("g_max", 1e-4)
    return Network.random(make_architecture(spec, **kw), g_min=g_min, g_max=g_max, seed=seed)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def fit_run(trainer, X, y, eval_set=None, stop_after_batches=None, **run_options):
    """``TrainingRun(trainer, **run_options).fit(...)``: a training with checkpoints, logs and resumes."""
    from circuitprop.learning import TrainingRun
    return TrainingRun(trainer, **run_options).fit(X, y, eval_set=eval_set, stop_after_batches=stop_after_batches)
