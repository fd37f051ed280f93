"""Training curves (loss, accuracy, spike rate per epoch) from metrics.json history, as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from snndeploy.atomic import atomic_path


def plot_history(history: list[dict[str, Any]], path: str | Path, title: str = "") -> Path | None:
    """Write loss / accuracy / spike-rate curves; None when there is nothing to plot."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    epochs = [m["epoch"] for m in history]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, key, label in zip(axes, ("loss", "accuracy", "spike_rate"), ("loss", "accuracy", "mean spike rate"),
                              strict=True):
        for split, style in (("train", "-o"), ("val", "--s")):
            values = [m.get(f"{split}_{key}") for m in history]
            if all(v is not None for v in values):
                ax.plot(epochs, values, style, label=split, markersize=3)
        ax.set_xlabel("epoch")
        ax.set_title(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path
