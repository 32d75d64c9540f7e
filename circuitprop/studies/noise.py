"""Measurement-noise studies: noise curves, critical levels with bootstrap intervals, the sigma_c-N power law.

The input is the tidy table of :func:`circuitprop.studies.sweep.load_results` (one row per run, with
``dataset``, ``noise_samples``, ``noise_sigma`` (volts), ``seed`` and ``test_accuracy``).

Definitions
-----------
noise curve
    Mean test accuracy over seeds at each noise level ``sigma`` (standard deviation of one measurement, V),
    per dataset and number ``N`` of measurements per phase.
critical level ``sigma_c``
    The noise level at which the mean curve first falls below a threshold, interpolated linearly in
    ``log sigma`` between the two grid points around the crossing.  Default threshold: halfway between
    chance (0.1) and the dataset's mean noiseless accuracy.
uncertainty
    A bootstrap over seeds: each draw resamples, with replacement, the seeds of every (dataset, N) cell
    (whole curves, since runs of one seed share their initial conductances and example order) and the
    noiseless runs that set the threshold; ``sigma_c`` and the power-law exponent are recomputed per draw.
    The interval is the central ``level`` range of the draws; it is ``nan`` when a cell has one seed, or when
    more than a tenth of the draws have no crossing on the grid.
power law
    ``sigma_c = a N**k`` fitted by least squares in log-log over the N values of a dataset; the central-limit
    argument predicts ``k = 1/2``.
"""
from __future__ import annotations

import numpy as np

CHANCE = 0.1


def _ok(df):
    return df[df["status"] == "ok"]


def noise_curves(df):
    """Mean, standard deviation and count over seeds of the test accuracy per (dataset, N, sigma).

    The noiseless runs (``sigma = 0``, whatever their N) are the ``sigma = 0`` point of every N.  Noise
    levels run for fewer seeds than the others of their cell are left out (see :func:`critical_analysis`).
    """
    import pandas as pd
    ok = _ok(df)
    rows = []
    zero = ok[ok["noise_sigma"] == 0]
    for (dataset, n), g in ok[ok["noise_sigma"] > 0].groupby(["dataset", "noise_samples"]):
        seeds = g.groupby("noise_sigma")["seed"].nunique()
        g = g[g["noise_sigma"].isin(seeds.index[seeds == seeds.max()])]  # as in critical_analysis
        g = pd.concat([zero[zero["dataset"] == dataset], g])
        for sigma, cell in g.groupby("noise_sigma"):
            acc = cell["test_accuracy"].to_numpy(float)
            rows.append({"dataset": dataset, "noise_samples": int(n), "noise_sigma": float(sigma),
                         "mean": acc.mean(), "std": acc.std(ddof=1) if acc.size > 1 else np.nan,
                         "seeds": int(acc.size)})
    return pd.DataFrame(rows, columns=["dataset", "noise_samples", "noise_sigma", "mean", "std", "seeds"])


def critical_sigma(sigmas, accuracies, threshold) -> float:
    """First noise level (V) at which ``accuracies`` fall below ``threshold``, interpolated in log sigma.

    ``sigmas`` increasing and > 0.  ``nan`` when the curve starts below the threshold or never falls below
    it on the grid (the crossing is then outside the grid: the grid must be extended, not the value guessed).
    """
    s = np.asarray(sigmas, float)
    a = np.asarray(accuracies, float)
    if a.size == 0 or not a[0] >= threshold or np.any(s <= 0):
        return float("nan")
    below = np.nonzero(a < threshold)[0]
    if below.size == 0:
        return float("nan")
    j = below[0]
    x0, x1 = np.log(s[j - 1]), np.log(s[j])
    return float(np.exp(x0 + (a[j - 1] - threshold) / (a[j - 1] - a[j]) * (x1 - x0)))


def _matrix(g):
    """Accuracy as an array (seeds, sigmas) of one (dataset, N) cell, sigma > 0 increasing.  Noise levels run
    for fewer seeds than the cell's others (e.g. a pilot's extra points) are left out, then seeds still
    missing a point (runs in progress)."""
    table = g.pivot_table(index="seed", columns="noise_sigma", values="test_accuracy", aggfunc="mean")
    counts = table.notna().sum(axis=0)
    table = table.loc[:, counts == counts.max()].dropna(axis=0, how="any")
    return table.columns.to_numpy(float), table.to_numpy(float)


def _fit(n, sigma_c):
    n, s = np.asarray(n, float), np.asarray(sigma_c, float)
    keep = np.isfinite(s) & (s > 0)
    if np.unique(n[keep]).size < 2:
        return np.nan, np.nan
    k, log_a = np.polyfit(np.log(n[keep]), np.log(s[keep]), 1)
    return float(k), float(np.exp(log_a))


def critical_analysis(df, threshold=None, n_boot=2000, level=0.95, seed=0):
    """Critical levels per (dataset, N) and the power law per dataset, each with a bootstrap interval.

    Parameters
    ----------
    df : DataFrame
        Runs (see the module docstring); must hold noiseless runs (``sigma = 0``) per dataset when
        ``threshold`` is None.
    threshold : float, optional
        Absolute accuracy defining ``sigma_c`` (e.g. 0.9, the paper's sampling figure); default halfway
        between chance and the dataset's mean noiseless accuracy.
    n_boot : int
        Bootstrap draws.
    level : float
        Coverage of the percentile intervals.

    Returns
    -------
    critical : DataFrame
        ``dataset, noise_samples, threshold, sigma_c, sigma_c_low, sigma_c_high, seeds, sigmas,
        seed_sigma_c`` (volts; ``seed_sigma_c`` lists each seed's own crossing).
    power_law : DataFrame
        ``dataset, exponent, exponent_low, exponent_high, exponent_stderr, prefactor, n_values``: the fit to
        the point estimates, its bootstrap interval, and the least-squares standard error.
    """
    import pandas as pd
    ok = _ok(df)
    rng = np.random.default_rng(seed)
    alpha = (1 - level) / 2
    crit_rows, law_rows = [], []
    for dataset, gd in ok.groupby("dataset"):
        zero = gd[gd["noise_sigma"] == 0]["test_accuracy"].to_numpy(float)
        if threshold is None and zero.size == 0:
            raise ValueError(f"{dataset}: no noiseless run (noise_sigma = 0) to set the threshold; give threshold")
        cells = {int(n): _matrix(g) for n, g in gd[gd["noise_sigma"] > 0].groupby("noise_samples")}
        thr = 0.5 * (CHANCE + zero.mean()) if threshold is None else float(threshold)
        point = {n: critical_sigma(s, m.mean(axis=0), thr) if m.size else np.nan for n, (s, m) in cells.items()}
        draws = {n: np.full(n_boot, np.nan) for n in cells}
        slopes = np.full(n_boot, np.nan)
        for b in range(n_boot):
            t = thr if threshold is not None else 0.5 * (CHANCE + rng.choice(zero, zero.size).mean())
            for n, (s, m) in cells.items():
                if m.shape[0]:
                    draws[n][b] = critical_sigma(s, m[rng.integers(0, m.shape[0], m.shape[0])].mean(axis=0), t)
            slopes[b] = _fit(list(draws), [draws[n][b] for n in draws])[0]
        for n, (s, m) in cells.items():
            d = draws[n][np.isfinite(draws[n])]
            enough = m.shape[0] >= 2 and d.size >= 0.9 * n_boot  # one seed has no spread to resample
            lo, hi = np.quantile(d, [alpha, 1 - alpha]) if enough else (np.nan, np.nan)
            crit_rows.append({"dataset": dataset, "noise_samples": n, "threshold": thr, "sigma_c": point[n],
                              "sigma_c_low": float(lo), "sigma_c_high": float(hi), "seeds": int(m.shape[0]),
                              "sigmas": int(s.size),
                              "seed_sigma_c": [critical_sigma(s, row, thr) for row in m]})
        ns = sorted(point)
        k, a = _fit(ns, [point[n] for n in ns])
        finite = [n for n in ns if np.isfinite(point[n])]
        stderr = np.nan
        if len(finite) > 2:
            _, cov = np.polyfit(np.log(finite), np.log([point[n] for n in finite]), 1, cov=True)
            stderr = float(np.sqrt(cov[0, 0]))
        d = slopes[np.isfinite(slopes)]
        enough = min((m.shape[0] for _, m in cells.values()), default=0) >= 2 and d.size >= 0.9 * n_boot
        lo, hi = np.quantile(d, [alpha, 1 - alpha]) if enough else (np.nan, np.nan)
        law_rows.append({"dataset": dataset, "exponent": k, "exponent_low": float(lo), "exponent_high": float(hi),
                         "exponent_stderr": stderr, "prefactor": a, "n_values": len(finite)})
    return pd.DataFrame(crit_rows), pd.DataFrame(law_rows)


#: Table I of the uncertainty paper (../shared/papers/harnessing-uncertainty-ep.txt): converged runs (%) and
#: the maximum test accuracy (%, mean +- error of the five best runs) without noise and at the optimal noise.
PAPER_TABLE_I = {
    "mnist": {"zero": (100, 98.05, 0.04), "optimal": (100, 98.18, 0.06)},
    "kmnist": {"zero": (77, 87.28, 0.21), "optimal": (97, 87.59, 0.15)},
    "fashion-mnist": {"zero": (26, 85.92, 0.44), "optimal": (93, 86.92, 0.16)},
}


def table_one(df, noise_samples=1, converged_at=0.5, top=5):
    """Table I rebuilt: per dataset, without noise and at the optimal noise level (the sigma > 0 with the
    highest mean accuracy), the share of converged runs (final accuracy >= ``converged_at``) and the maximum
    accuracy as the paper computes it (mean and standard error of the ``top`` best runs, or of all when a
    cell has fewer), beside the paper's numbers.
    """
    import pandas as pd
    ok = _ok(df)
    ok = ok[(ok["noise_sigma"] == 0) | (ok["noise_samples"] == noise_samples)]
    rows = []
    for dataset, g in ok.groupby("dataset"):
        means = g[g["noise_sigma"] > 0].groupby("noise_sigma")["test_accuracy"].mean()
        cells = [("zero", 0.0)] + ([("optimal", float(means.idxmax()))] if len(means) else [])
        for label, sigma in cells:
            acc = np.sort(g[g["noise_sigma"] == sigma]["test_accuracy"].to_numpy(float))[::-1]
            best = acc[:top]
            paper = PAPER_TABLE_I.get(dataset, {}).get(label, (np.nan, np.nan, np.nan))
            rows.append({"dataset": dataset, "noise": label, "sigma_V": sigma, "runs": int(acc.size),
                         "converged_percent": 100 * float(np.mean(acc >= converged_at)),
                         "max_accuracy_percent": 100 * best.mean(),
                         "max_accuracy_error": 100 * (best.std(ddof=1) / np.sqrt(best.size) if best.size > 1
                                                      else np.nan),
                         "best_of": int(best.size), "mean_accuracy_percent": 100 * acc.mean(),
                         "paper_converged_percent": paper[0], "paper_max_accuracy_percent": paper[1],
                         "paper_max_accuracy_error": paper[2]})
    return pd.DataFrame(rows)
