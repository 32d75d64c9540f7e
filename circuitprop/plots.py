"""Figures (matplotlib, Agg backend: works without a display)."""
from __future__ import annotations

from pathlib import Path


def plot_training_curve(history, path, title="training") -> Path:
    """Train loss and test accuracy per epoch, written to ``path`` (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(epochs, [h["train_loss"] for h in history], "o-", color="tab:blue", label="train loss (V$^2$)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss (V$^2$)", color="tab:blue")
    if any("test_accuracy" in h for h in history):
        ax2 = ax.twinx()
        ax2.plot(epochs, [100 * h.get("test_accuracy", float("nan")) for h in history], "s-", color="tab:red")
        ax2.set_ylabel("test accuracy (%)", color="tab:red")
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path
