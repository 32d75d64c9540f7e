"""Figures (matplotlib, Agg backend: works without a display).

Every function writes the format its path names: ``.png`` (200 dpi), ``.pdf`` or ``.svg`` (vector, for papers).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .sweep import converged, fit_power_law


def plot_training_curve(history, path, title="training") -> Path:
    """Train loss and test accuracy per epoch, written to ``path`` (``.png``, ``.pdf`` or ``.svg``)."""
    from matplotlib.ticker import MaxNLocator
    plt, fig, ax = _figure((6.4, 3.6))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], "o-", color="tab:blue", label="train loss (V$^2$)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss (V$^2$, mean of ½|error|²)", color="tab:blue")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if history and history[-1].get("train_loss") is not None:
        ax.annotate(f"{history[-1]['train_loss']:.3g} V²", (epochs[-1], history[-1]["train_loss"]),
                    textcoords="offset points", xytext=(4, -14), color="tab:blue", fontsize=8)
    if len(epochs) == 1:  # one point: a readable axis around it, not 0.96-1.04
        ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
    if any("test_accuracy" in h for h in history):
        ax2 = ax.twinx()
        accuracy = [100 * h.get("test_accuracy", float("nan")) for h in history]
        ax2.plot(epochs, accuracy, "s-", color="tab:red")
        ax2.set_ylabel("test accuracy (%)", color="tab:red")
        for e, a in zip(epochs[-1:], accuracy[-1:]):
            ax2.annotate(f"{a:.2f} %", (e, a), textcoords="offset points", xytext=(4, 6), color="tab:red", fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    return _save(plt, fig, path)


#: File formats the figures can be written in (by the path's suffix).
FORMATS = ("png", "pdf", "svg")


def _figure(figsize=(6, 4)):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt, *plt.subplots(figsize=figsize)


def _save(plt, fig, path, tight=True) -> Path:
    """Write ``fig`` to ``path`` atomically (temporary file, then rename) in the format its suffix names, and
    close it."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        plt.close(fig)
        raise ValueError(f"{path}: figures are written as {', '.join('.' + f for f in FORMATS)}, not {path.suffix!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.{fmt}")
    if tight:
        fig.tight_layout()
    fig.savefig(tmp, format=fmt, dpi=200, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def plot_accuracy_vs_noise(df, path, noise_samples=None) -> Path:
    """Mean +- std (over seeds) test accuracy versus noise sigma per dataset, with the converged share."""
    plt, fig, ax = _figure()
    ax2 = ax.twinx()
    data = df[df["status"] == "ok"] if noise_samples is None else df[(df["status"] == "ok")
                                                                      & (df["noise_samples"] == noise_samples)]
    conv = df.assign(converged=converged(df))
    for i, (dataset, g) in enumerate(data.groupby("dataset")):
        stats = g.groupby("noise_sigma")["test_accuracy"].agg(["mean", "std"]).reset_index()
        line = ax.errorbar(stats["noise_sigma"], 100 * stats["mean"], yerr=100 * stats["std"].fillna(0),
                           marker="o", capsize=3, label=dataset)
        share = conv[conv["dataset"] == dataset].groupby("noise_sigma")["converged"].mean()
        ax2.plot(share.index, 100 * share.values, ls=":", marker="s", ms=4, alpha=0.6, color=line[0].get_color())
    ax.set_xscale("symlog", linthresh=max(1e-6, float(df["noise_sigma"][df["noise_sigma"] > 0].min() or 1e-6)))
    ax.set_xlabel("measurement noise sigma (V, standard deviation)")
    ax.set_ylabel("test accuracy (%)")
    ax2.set_ylabel("converged runs (%, dotted)")
    ax2.set_ylim(0, 105)
    ax.legend(loc="lower left")
    ax.set_title("accuracy vs measurement noise" + (f" (N = {noise_samples})" if noise_samples else ""))
    return _save(plt, fig, path)


def plot_critical_vs_samples(levels, path) -> Path:
    """Critical noise level versus samples N (mean +- std over seeds) with fitted power laws."""
    plt, fig, ax = _figure()
    for dataset, g in levels.groupby("dataset"):
        stats = g.groupby("noise_samples")["sigma_c"].agg(["mean", "std"]).reset_index()
        eb = ax.errorbar(stats["noise_samples"], stats["mean"], yerr=stats["std"].fillna(0), marker="o",
                         capsize=3, linestyle="none", label=dataset)
        a, k, k_err = fit_power_law(g["noise_samples"], g["sigma_c"])
        if np.isfinite(k):
            n = np.geomspace(stats["noise_samples"].min(), stats["noise_samples"].max(), 50)
            ax.plot(n, a * n ** k, color=eb[0].get_color(), label=f"{dataset} fit: N^{k:.2f} (+-{k_err:.2f})")
    ref = levels.groupby("noise_samples")["sigma_c"].mean()
    _finish_critical_axes(ax, float(max(1, ref.index[0])), float(ref.iloc[0]), levels["noise_samples"].max(),
                          "critical noise level vs samples")
    ax.set_xscale("log")
    return _save(plt, fig, path)


def _finish_critical_axes(ax, n0, sigma0, n_max, title):
    """The sqrt(N) reference from ``(n0, sigma0)`` (when finite), log axes, labels, legend and title."""
    if np.isfinite(sigma0):
        n = np.geomspace(n0, n_max, 50)
        ax.plot(n, sigma0 * (n / n0) ** 0.5, "k--", lw=1, label="N^0.5 (central limit)")
    ax.set_yscale("log")
    ax.set_xlabel("measurements per phase N")
    ax.set_ylabel("critical noise sigma_c (V)")
    ax.legend(fontsize=8)
    ax.set_title(title)


def plot_beta_lr_maps(df, path) -> Path:
    """Mean test accuracy over (beta, effective learning rate eta/beta), one panel per noise level."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ok = df[df["status"] == "ok"]
    sigmas = sorted(ok["noise_sigma"].unique())
    n_beta, n_lr = ok["beta"].nunique(), ok["effective_learning_rate"].nunique()
    width = max(2.2, 0.55 * n_beta + 1.0)
    fig, axes = plt.subplots(1, len(sigmas), figsize=(width * len(sigmas) + 1.6, max(3.0, 0.45 * n_lr + 2.0)),
                             squeeze=False, layout="constrained")
    for ax, sigma in zip(axes[0], sigmas):
        g = ok[ok["noise_sigma"] == sigma]
        table = g.pivot_table(index="effective_learning_rate", columns="beta", values="test_accuracy",
                              aggfunc="mean")
        im = ax.imshow(100 * table.values, origin="lower", vmin=10, vmax=100, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(table.columns)), [f"{b:.0e}" for b in table.columns], rotation=45, fontsize=7)
        ax.set_yticks(range(len(table.index)), [f"{e:.0e}" for e in table.index], fontsize=7)
        for (r, c), v in np.ndenumerate(table.values):
            ax.text(c, r, f"{100 * v:.0f}", ha="center", va="center", fontsize=7, color="w")
        ax.set_xlabel("beta (S)")
        ax.set_title(f"sigma = {sigma:g} V", fontsize=9)
    axes[0][0].set_ylabel("eta / beta")
    datasets = ", ".join(sorted(ok["dataset"].unique())) if "dataset" in ok else "?"
    layers = ", ".join(sorted(ok["layers"].unique())) if "layers" in ok else ""
    fig.suptitle(f"test accuracy (%) over (beta, eta/beta): {datasets}" + (f", {layers}" if layers else ""), fontsize=10)
    fig.colorbar(im, ax=axes[0].tolist(), label="test accuracy (%)", fraction=0.05)
    return _save(plt, fig, path, tight=False)


def plot_device_study(table, path) -> Path:
    """Test accuracy versus number of states, step asymmetry and device-to-device spread (three panels).

    ``table`` has columns axis ("states", "asymmetry", "spread"), x, variant, status, test_accuracy.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    panels = [("states", "conductance states between g_min and g_max", True),
              ("asymmetry", "step asymmetry a (up x (1+a), down x (1-a))", False),
              ("spread", "device-to-device spread of the step (relative std)", False)]
    for ax, (axis, label, log) in zip(axes, panels):
        part = table[(table.axis == axis) & (table.status == "ok")]
        for variant, g in part.groupby("variant"):
            mean = g.groupby("x")["test_accuracy"].mean()
            ax.plot(mean.index, 100 * mean.values, "o-", label=variant or None)
        if log:
            ax.set_xscale("log", base=2)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
        if axis == "states" and len(part):
            ax.legend(fontsize=8)
    axes[0].set_ylabel("MNIST test accuracy (%)")
    fig.suptitle("784-100-10 (1570-100-20 circuit nodes), device range [1e-8, 1e-5] S, train defaults")
    return _save(plt, fig, path)


def plot_noise_curves_by_samples(curves, critical, path) -> Path:
    """Mean test accuracy (+- std over seeds) versus noise sigma, one panel per dataset, one line per N, the
    critical threshold dotted and each critical level marked with its bootstrap interval
    (:func:`circuitprop.studies.noise.critical_analysis`)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    datasets = sorted(curves["dataset"].unique())
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.2 * len(datasets), 4), squeeze=False, sharey=True)
    for ax, dataset in zip(axes[0], datasets):
        g = curves[curves["dataset"] == dataset]
        noisy = g[g["noise_sigma"] > 0]
        floor = noisy["noise_sigma"].min()
        zero = g[g["noise_sigma"] == 0].head(1)
        if len(zero):  # the noiseless accuracy, shared by every N, drawn left of the grid
            ax.errorbar([floor / 3], 100 * zero["mean"], yerr=100 * zero["std"].fillna(0), marker="*", ms=9,
                        color="k", capsize=2, ls="none", label="sigma = 0")
        for n, gn in noisy.groupby("noise_samples"):
            gn = gn.sort_values("noise_sigma")
            line = ax.errorbar(gn["noise_sigma"], 100 * gn["mean"], yerr=100 * gn["std"].fillna(0), marker="o",
                               ms=3, capsize=2, lw=1.2, label=f"N = {n}")
            c = critical[(critical["dataset"] == dataset) & (critical["noise_samples"] == n)]
            if len(c) and np.isfinite(c["sigma_c"].iloc[0]):
                row = c.iloc[0]
                err = [[row.sigma_c - row.sigma_c_low], [row.sigma_c_high - row.sigma_c]] \
                    if np.isfinite(row.sigma_c_low) else None
                ax.errorbar([row.sigma_c], [100 * row.threshold], xerr=err, marker="D", ms=6, capsize=3,
                            color=line[0].get_color(), markeredgecolor="k")
        thr = critical[critical["dataset"] == dataset]["threshold"]
        if len(thr):
            ax.axhline(100 * thr.iloc[0], color="k", ls=":", lw=1, label="threshold (sigma_c)")
        ax.axvline(floor / 1.7, color="0.6", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("measurement noise sigma (V); left of the grey line: sigma = 0")
        ax.set_title(dataset)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("test accuracy (%), mean +- std over seeds")
    axes[0][0].legend(fontsize=8, loc="lower left")
    return _save(plt, fig, path)


def plot_critical_power_law(critical, power_law, path) -> Path:
    """sigma_c versus N per dataset with bootstrap intervals, the fitted power law, and sqrt(N)."""
    plt, fig, ax = _figure((6, 4.2))
    for dataset, g in critical.groupby("dataset"):
        g = g.sort_values("noise_samples")
        low = (g["sigma_c"] - g["sigma_c_low"]).clip(lower=0).fillna(0)
        high = (g["sigma_c_high"] - g["sigma_c"]).clip(lower=0).fillna(0)
        eb = ax.errorbar(g["noise_samples"], g["sigma_c"], yerr=[low, high], marker="o", capsize=3, ls="none",
                         label=dataset)
        law = power_law[power_law["dataset"] == dataset]
        if len(law) and np.isfinite(law["exponent"].iloc[0]):
            r = law.iloc[0]
            n = np.geomspace(g["noise_samples"].min(), g["noise_samples"].max(), 50)
            ax.plot(n, r.prefactor * n ** r.exponent, color=eb[0].get_color(),
                    label=f"{dataset}: N^{r.exponent:.3f} [{r.exponent_low:.3f}, {r.exponent_high:.3f}]")
    first = critical.sort_values("noise_samples").groupby("dataset").first()
    sigma0 = float(np.nanmean(first["sigma_c"])) if np.isfinite(first["sigma_c"]).any() else np.nan
    _finish_critical_axes(ax, float(first["noise_samples"].min()), sigma0, critical["noise_samples"].max(),
                          "critical noise level vs samples (95 % bootstrap intervals)")
    ax.set_xscale("log", base=2)
    return _save(plt, fig, path)
