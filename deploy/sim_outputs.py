"""What a simulation leaves behind: the JSON summary, ``output.npy`` / ``layers.npz`` in lava-dl's golden layout,
probe files, ``activity.json`` and the ``simulate.png`` plot, written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from snndeploy.atomic import atomic_dir, write_json
from snndeploy.sim_files import golden, layers_arrays
from snndeploy.sim_inputs import Inputs
from snndeploy.simulate import SimResult


def summarize(result: SimResult, inputs: Inputs, model: str) -> dict[str, Any]:
    """The JSON-able summary of a simulation (also written as ``result.json``)."""
    out: dict[str, Any] = {
        "model": model, "network": result.net.name, "precision": result.mode, "backend": "lava-cpu (Loihi2SimCfg)",
        "input": inputs.source, "samples": result.samples, "steps_per_sample": result.steps,
        "output_shape": list(result.net.output_shape), "output_spikes": int(np.count_nonzero(result.output)),
        "layers": [{"index": i, "name": layer.name, "op": layer.op, "neurons": layer.size,
                    "spikes": result.activity.layers[i].spikes} for i, layer in enumerate(result.net.layers)],
        "sample_runs": result.plan.describe(),
        "input_layout": inputs.layout or None,
        "copies": result.plan.copies, "samples_per_copy": result.plan.per_copy,
        "timing": result.timing.to_dict(),
    }
    wall = result.timing.wall_s
    out["workers"] = result.timing.workers
    out["samples_per_s"] = result.samples / wall if wall > 0 else None
    if inputs.labels is not None:
        pred = result.predictions()
        out["accuracy"] = float(np.mean(pred == inputs.labels))
        out["correct"] = int(np.sum(pred == inputs.labels))
    return out


def write_outputs(out: Path, result: SimResult, inputs: Inputs, summary: dict[str, Any], *, force: bool,
                  record_all: bool = False, probe_files: tuple[int, ...] | None = None) -> Path:
    """``output.npy`` and (``record_all``) ``layers.npz`` in lava-dl's golden layout (:mod:`snndeploy.sim_files`),
    ``probe_<layer>_{spikes,u,v}.npy`` (IR order, one row per sample), labels/predictions, ``activity.json``,
    ``simulate.png``, ``result.json``. ``probe_files``: the layers to write probe files for (default: all probed)."""

    with atomic_dir(out, force=force) as tmp:
        np.save(tmp / "output.npy", golden(result.output, inputs.batched))
        if record_all:
            names = [layer.name for layer in result.net.layers]
            np.savez(tmp / "layers.npz", **layers_arrays(names, result.layer_spikes, result.probes, inputs.batched))
        for i, values in result.probes.items():
            if probe_files is not None and i not in probe_files:
                continue
            for key, arr in values.items():
                np.save(tmp / f"probe_{result.net.layers[i].name}_{key}.npy", arr)
        if inputs.labels is not None:
            np.save(tmp / "labels.npy", inputs.labels)
            np.save(tmp / "predictions.npy", result.predictions())
        activity = activity_dict(result, summary["model"])
        write_json(tmp / "activity.json", activity)
        plot(result, activity, tmp / "simulate.png")
        write_json(tmp / "result.json", {**summary, "files": sorted(p.name for p in tmp.iterdir())
                                         + ["result.json"]})
    return out


def plot(result: SimResult, activity: dict[str, Any], path: Path) -> Path:
    """Output raster of the first sample(s) and per-layer spikes and synaptic operations per sample."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (raster, bars) = plt.subplots(1, 2, figsize=(11, 3.8))
    shown = min(result.samples, 4)
    out = result.output[:shown].reshape(shown, -1, result.steps)
    for k in range(shown):
        neuron, step = np.nonzero(out[k])
        raster.scatter(step + k * result.steps, neuron, s=4, marker="|")
        if k:
            raster.axvline(k * result.steps - 0.5, color="grey", lw=0.5)
    raster.set_xlabel(f"step ({shown} sample(s) back to back)")
    raster.set_ylabel("output neuron")
    raster.set_title("output spikes")
    names = [row["name"] for row in activity["layers"]]
    x = np.arange(len(names))
    bars.bar(x - 0.2, [max(row["spikes"], 1e-9) for row in activity["layers"]], width=0.4, label="spikes")
    bars.bar(x + 0.2, [max(row["synops"], 1e-9) for row in activity["layers"]], width=0.4, label="synaptic ops")
    bars.set_yscale("log")
    bars.set_xticks(x, names, rotation=15)
    bars.set_title("per sample (mean)")
    bars.legend()
    fig.suptitle(f"{result.net.name}: Lava CPU {result.mode}, {result.samples} sample(s) x {result.steps} steps")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def activity_dict(result: SimResult, model: str) -> dict[str, Any]:
    return result.activity.to_dict(samples=result.samples, steps_per_sample=result.steps, model=model,
                                   precision=result.mode)
