"""Critical noise levels, their bootstrap intervals and the power law, on synthetic noise curves."""
import numpy as np
import pandas as pd
import pytest

from circuitprop.studies.noise import critical_analysis, critical_sigma, noise_curves, table_one


def test_critical_sigma_interpolates_in_log_sigma():
    # accuracy linear in log sigma between the two points around the crossing: the crossing is exact
    s = [1e-6, 1e-5]
    assert critical_sigma(s, [0.9, 0.1], 0.5) == pytest.approx(10 ** -5.5)
    assert np.isnan(critical_sigma(s, [0.9, 0.8], 0.5))  # never falls below: outside the grid
    assert np.isnan(critical_sigma(s, [0.4, 0.1], 0.5))  # starts below


def synthetic_runs(exponent=0.5, seeds=4, spread=0.05, rng=None):
    """Runs whose accuracy falls from 0.95 to chance around sigma_c(N) = 2e-6 N**exponent V (logistic in log
    sigma), each seed's crossing shifted by a random factor of about ``spread``."""
    rng = rng or np.random.default_rng(0)
    rows = []
    lattice = 1e-6 * 10 ** (np.arange(-4, 16) / 8)
    for dataset in ("mnist", "fashion-mnist"):
        for seed in range(seeds):
            rows.append(dict(dataset=dataset, noise_samples=1, noise_sigma=0.0, seed=seed, status="ok",
                             test_accuracy=0.95 + rng.normal(0, 0.002)))
            for n in (1, 2, 4, 8, 16):
                centre = 2e-6 * n ** exponent * np.exp(rng.normal(0, spread))
                for s in lattice:
                    acc = 0.1 + 0.85 / (1 + (s / centre) ** 4)
                    rows.append(dict(dataset=dataset, noise_samples=n, noise_sigma=s, seed=seed, status="ok",
                                     test_accuracy=acc))
    return pd.DataFrame(rows)


def test_bootstrap_recovers_the_exponent_and_its_interval_covers_it():
    df = synthetic_runs(exponent=0.5)
    critical, law = critical_analysis(df, n_boot=300)
    assert len(critical) == 10 and set(law["dataset"]) == {"mnist", "fashion-mnist"}
    for r in law.itertuples():
        assert r.exponent == pytest.approx(0.5, abs=0.05)
        assert r.exponent_low < 0.5 < r.exponent_high and r.exponent_high - r.exponent_low < 0.2
        assert r.n_values == 5
    # the threshold is halfway between chance and the noiseless accuracy, so sigma_c is the logistic centre
    one = critical[(critical["dataset"] == "mnist") & (critical["noise_samples"] == 1)].iloc[0]
    assert one.sigma_c == pytest.approx(2e-6, rel=0.1) and one.sigma_c_low < one.sigma_c < one.sigma_c_high
    # a point run for one seed only (a pilot's extra level) leaves the other seeds in the cell
    extra = pd.DataFrame([dict(dataset="mnist", noise_samples=1, noise_sigma=3e-4, seed=0, status="ok",
                               test_accuracy=0.1)])
    again, _ = critical_analysis(pd.concat([df, extra]), n_boot=50)
    assert (again["seeds"] == 4).all()
    # a different law is told apart
    _, law_one = critical_analysis(synthetic_runs(exponent=1.0), n_boot=300)
    assert (law_one["exponent_low"] > 0.8).all()


def test_curves_and_table_one():
    df = synthetic_runs(seeds=3)
    curves = noise_curves(df)
    zero = curves[(curves["noise_sigma"] == 0)]
    assert len(zero) == 10 and (zero["seeds"] == 3).all()  # the noiseless point belongs to every N
    table = table_one(df)
    mnist = table[table["dataset"] == "mnist"].set_index("noise")
    assert mnist.loc["zero", "runs"] == 3 and mnist.loc["zero", "best_of"] == 3
    assert mnist.loc["zero", "converged_percent"] == 100
    assert mnist.loc["zero", "paper_max_accuracy_percent"] == 98.05
    assert mnist.loc["optimal", "sigma_V"] == pytest.approx(1e-6 * 10 ** (-4 / 8))  # the smallest noise wins here
