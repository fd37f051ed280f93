"""``prune_report.json`` and its plot: accuracy against sparsity over the rounds, and per-layer sparsity."""

from __future__ import annotations

from pathlib import Path

from snndeploy.atomic import atomic_path, write_json
from snndeploy.prune.gradr import plot_connectivity


def write_report(report: dict, out: Path) -> dict[str, Path]:
    """Write ``OUT/prune_report.json`` and ``OUT/prune_report.png``; returns their paths."""
    out = Path(out)
    json_path = write_json(out / "prune_report.json", report)
    png_path = plot_report(report, out / "prune_report.png")
    return {"report": json_path, "plot": png_path}


def plot_report(report: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    over_time = [h for h in report["history"] if "live_channels" in h]  # methods that change width during training
    rewiring = [h for h in report["history"] if "connectivity" in h]  # gradr, deepr: connectivity over training
    layered = [h for h in report["history"] if "layers" in h]  # pq, fixed, set, rigl: per-layer density, PQ index
    panels = 2 + bool(over_time) + bool(rewiring) + 2 * bool(layered)
    fig, axes = plt.subplots(1, panels, figsize=(16 if panels == 3 else 5.5 * panels, 4))
    ax1, ax2 = axes[0], axes[1]
    if over_time:
        _plot_channels(axes[2], over_time)
    if rewiring:
        plot_connectivity(axes[-1], rewiring)
    if layered:
        first = 2 + bool(over_time)
        plot_layers(axes[first], axes[first + 1], layered)
    points = [(0.0, report["accuracy_before"])] + [(h["sparsity"], h["accuracy"]) for h in report["history"]
                                                   if "accuracy" in h]
    ax1.plot([p[0] for p in points], [p[1] for p in points], "o-")
    for n, (s, a) in enumerate(points):
        ax1.annotate(str(n), (s, a), textcoords="offset points", xytext=(3, 3), fontsize=7)
    kind = "channel" if report["structured"] else "weight"
    ax1.set_xlabel(f"{kind} sparsity")
    ax1.set_ylabel("test accuracy")
    ax1.set_title(f"{report['method']}: accuracy per round (0 = dense)")
    ax1.grid(alpha=0.3)
    layers = report["sparsity"]["per_layer"]
    names = [layer["layer"] for layer in layers]
    ax2.bar(names, [layer["sparsity"] for layer in layers], label="weights")
    if report["structured"]:
        ax2.plot(names, [1 - layer["live_channels"] / layer["channels"] for layer in layers], "ro", label="channels")
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("sparsity")
    ax2.set_title(f"per layer (overall {report['sparsity']['weights']:.3f})")
    ax2.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)


def _plot_channels(ax, history: list[dict]) -> None:
    """Live channels of every layer over training (a step per round, from the epoch the round starts)."""
    xs = [h.get("epoch", h["round"]) for h in history]
    end = xs[-1] + max(history[-1].get("epochs", 1), 1)
    for name in history[0]["live_channels"]:
        ys = [h["live_channels"][name] for h in history]
        ax.step(xs + [end], ys + [ys[-1]], where="post", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("live channels")
    ax.set_title("channels per layer over training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def plot_layers(ax_density, ax_index, history: list[dict]) -> None:
    """Density and PQ index of every layer over the rewiring iterations (the ``layers`` rows of the history)."""
    rows = [h for h in history if h.get("step") != "select"]
    xs = [h["round"] + 1 for h in rows]
    for name in [row["layer"] for row in rows[0]["layers"]]:
        dens = [next(r["density"] for r in h["layers"] if r["layer"] == name) for h in rows]
        index = [next(r["pq_index"] for r in h["layers"] if r["layer"] == name) for h in rows]
        ax_density.plot(xs, dens, "o-", ms=3, label=name)
        ax_index.plot(xs, index, "o-", ms=3, label=name)
    ax_density.plot(xs, [h["density"] for h in rows], "k--", lw=1, label="all")
    selected = next((h["selected_iteration"] for h in history if h.get("step") == "select"), None)
    for ax in (ax_density, ax_index):
        if selected is not None and selected >= 0:
            ax.axvline(selected + 1, color="grey", ls=":", lw=1, label="selected")
        ax.set_xlabel("iteration (mask trained in it)")
        ax.set_xticks(xs)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ax_density.set_ylabel("density")
    ax_density.set_title("density per layer")
    ax_index.set_ylabel("PQ index (active weights)")
    ax_index.set_title("PQ index per layer")
