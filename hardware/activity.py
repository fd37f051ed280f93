"""Recorded activity (an *activity file*) and the NeuroBench-style metrics computed from it.

Activity file, JSON, schema ``snndeploy-activity/1`` (written by a torch run here and by ``simulate``)::
    {"schema": "snndeploy-activity/1", "source": "torch" | "lava" | ..., "model": "name",
     "samples": 25, "time_steps": 16,
     "input":  {"neurons": 784, "spikes": 1234.5, "graded": false, "spikes_per_neuron": [...]},
     "layers": [{"name": "0", "neurons": 128, "spikes": 456.7, "graded": false,
                 "spikes_per_neuron": [...], "synops": 9876.0}, ...]}

All counts are means per inference (per sample). ``spikes`` counts non-zero outputs (graded spikes
included); ``spikes_per_neuron`` (optional, C-major order) makes synaptic operations exact for dense layers;
``synops`` (optional) is a measured count (e.g. Lava's ``syn_ops`` profiler counter) that overrides the
computed one. Layers are matched to the model's layers in order.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from snndeploy.atomic import write_json
from snndeploy.errors import UserError
from snndeploy.hardware.layers import LayerCount

SCHEMA = "snndeploy-activity/1"


@dataclass(frozen=True)
class LayerActivity:
    name: str
    neurons: int
    spikes: float
    graded: bool = False
    spikes_per_neuron: tuple[float, ...] | None = None
    synops: float | None = None


@dataclass(frozen=True)
class Activity:
    source: str
    model: str
    samples: int
    time_steps: int
    input: LayerActivity
    layers: tuple[LayerActivity, ...]

    def to_dict(self) -> dict[str, Any]:
        def one(a: LayerActivity) -> dict[str, Any]:
            out: dict[str, Any] = {"name": a.name, "neurons": a.neurons, "spikes": a.spikes, "graded": a.graded}
            if a.spikes_per_neuron is not None:
                out["spikes_per_neuron"] = list(a.spikes_per_neuron)
            if a.synops is not None:
                out["synops"] = a.synops
            return out

        return {"schema": SCHEMA, "source": self.source, "model": self.model, "samples": self.samples,
                "time_steps": self.time_steps, "input": one(self.input), "layers": [one(a) for a in self.layers]}


def _number(raw: dict, key: str, where: str, path, required: bool = True, integer: bool = False):
    value = raw.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise UserError(f"activity {where}.{key} must be a non-negative number, got {value!r}", path)
    if integer and (not float(value).is_integer() or value <= 0):
        raise UserError(f"activity {where}.{key} must be a positive integer, got {value!r}", path)
    return int(value) if integer else float(value)


def _layer(raw: Any, where: str, path) -> LayerActivity:
    if not isinstance(raw, dict):
        raise UserError(f"activity {where} must be an object", path)
    neurons = _number(raw, "neurons", where, path, integer=True)
    per = raw.get("spikes_per_neuron")
    if per is not None:
        arr = np.asarray(per, dtype=float)
        if arr.shape != (neurons,) or not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise UserError(f"activity {where}.spikes_per_neuron must be {neurons} non-negative numbers", path)
        per = tuple(float(v) for v in arr)
    return LayerActivity(str(raw.get("name", where)), neurons, _number(raw, "spikes", where, path),
                         bool(raw.get("graded", False)), per, _number(raw, "synops", where, path, required=False))


def activity_from_dict(raw: Any, path: str | Path | None = None) -> Activity:
    if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
        raise UserError(f"not an activity file (schema must be {SCHEMA!r})", path)
    layers = raw.get("layers")
    if not isinstance(layers, list) or not layers:
        raise UserError("activity 'layers' must be a non-empty list", path)
    return Activity(str(raw.get("source", "unknown")), str(raw.get("model", "")),
                    _number(raw, "samples", "file", path, integer=True),
                    _number(raw, "time_steps", "file", path, integer=True),
                    _layer(raw.get("input"), "input", path),
                    tuple(_layer(item, f"layers[{i}]", path) for i, item in enumerate(layers)))


def read_activity(path: str | Path) -> Activity:
    path = Path(path)
    if not path.is_file():
        raise UserError("activity file not found", path)
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"activity file is not JSON: {exc}", path) from None
    return activity_from_dict(raw, path)


def write_activity(activity: Activity, path: str | Path, *, force: bool = True) -> Path:
    return write_json(path, activity.to_dict(), force=force)


def record_layer(name: str, spikes) -> LayerActivity:
    """Mean activity per inference of one layer from its outputs ``[N, *shape, T]`` (numpy or torch)."""
    x = np.asarray(spikes.detach().cpu().numpy() if hasattr(spikes, "detach") else spikes)
    samples = x.shape[0]
    flat = x.reshape(samples, -1, x.shape[-1])
    nonzero = flat != 0
    per = nonzero.sum(axis=(0, 2), dtype=np.float64) / samples
    graded = bool(np.any(nonzero & (flat != 1)))
    return LayerActivity(name, int(per.size), float(per.sum()), graded, tuple(per.tolist()))


def activity_from_spikes(inputs, layer_outputs: list, *, names: list[str] | None = None, source: str = "lava",
                         model: str = "") -> Activity:
    """An :class:`Activity` from recorded arrays ``[N, *shape, T]``: the input and every neuron layer's output
    (what ``simulate`` records from a Lava run, or a torch run's ``return_all`` outputs)."""
    shape = np.shape(inputs)
    names = names or [str(i) for i in range(len(layer_outputs))]
    return Activity(source, model, int(shape[0]), int(shape[-1]), record_layer("input", inputs),
                    tuple(record_layer(n, out) for n, out in zip(names, layer_outputs, strict=True)))


def activity_from_torch(net, inputs, *, model: str = "", source: str = "torch") -> Activity:
    """Run ``net(inputs, return_all=True)`` (a SlayerNet) and record mean spikes per inference per layer.

    ``inputs``: spikes ``[N, *input_shape, T]``. Blocks without neurons (flatten) are skipped.
    """
    import torch

    with torch.no_grad():
        _, outputs = net(inputs, return_all=True)
    kept = [(str(i), out) for i, (block, out) in enumerate(zip(net.blocks, outputs, strict=True))
            if getattr(block, "neuron", None) is not None]
    return activity_from_spikes(inputs, [out for _, out in kept], names=[n for n, _ in kept], source=source,
                                model=model or getattr(getattr(net, "spec", None), "name", ""))


def static_metrics(layers: tuple[LayerCount, ...]) -> dict[str, Any]:
    """NeuroBench static metrics from the weights (footprint, parameters, connection sparsity)."""
    stored = sum(lay.weights_stored for lay in layers)
    nonzero = sum(lay.weights_nonzero for lay in layers)
    target_bits = sum(lay.weights_stored * (lay.bits.bits + int(lay.bits.signed)) for lay in layers)
    return {
        "parameters": stored,
        "footprint_bytes_float32": 4 * stored,
        "footprint_bytes_at_weight_bits": math.ceil(target_bits / 8),
        "connection_sparsity": 1.0 - nonzero / stored if stored else 0.0,
    }


def _in_synops(layer: LayerCount, source: LayerActivity) -> float:
    if layer.in_fanout is not None and source.spikes_per_neuron is not None \
            and len(source.spikes_per_neuron) == layer.in_fanout.size:
        return float(np.dot(np.asarray(source.spikes_per_neuron), layer.in_fanout))
    return source.spikes * layer.in_fanout_mean


def _own_synops(layer: LayerCount, own: LayerActivity) -> float:
    """Synaptic operations of a recurrent layer's own spikes arriving back at it."""
    if not layer.recurrent or layer.recurrent_fanout is None:
        return 0.0
    if own.spikes_per_neuron is not None and len(own.spikes_per_neuron) == layer.recurrent_fanout.size:
        return float(np.dot(np.asarray(own.spikes_per_neuron), layer.recurrent_fanout))
    return own.spikes * float(layer.recurrent_fanout.mean())


def workload_metrics(layers: tuple[LayerCount, ...], activity: Activity) -> dict[str, Any]:
    """Per-layer and total synaptic operations, neuron updates, spikes and activation sparsity per inference."""
    if len(activity.layers) != len(layers):
        raise UserError(f"activity file has {len(activity.layers)} layers, the model has {len(layers)}")
    steps = activity.time_steps
    rows = []
    for i, (layer, act) in enumerate(zip(layers, activity.layers, strict=True)):
        if act.neurons != layer.neurons:
            raise UserError(f"activity layer {i} ({act.name}) has {act.neurons} neurons, model layer "
                            f"{layer.name} has {layer.neurons}")
        source = activity.input if i == 0 else activity.layers[i - 1]
        # a synaptic bias's always-on axon spikes every step into its non-zero synapses
        effective = act.synops if act.synops is not None else \
            _in_synops(layer, source) + _own_synops(layer, act) + float(layer.bias_fanout * steps)
        rows.append({"layer": layer.name, "spikes_in": source.spikes, "spikes_out": act.spikes,
                     "synops_effective": effective, "synops_dense": float(layer.synapses * steps),
                     "input_graded": source.graded, "neuron_updates": float(layer.neurons * steps),
                     "payload_bits_out": act.spikes * layer.message_bits,
                     "synops_basis": "measured" if act.synops is not None else "spikes x non-zero fan-out"})
    neurons = sum(lay.neurons for lay in layers)
    spikes = sum(r["spikes_out"] for r in rows)
    return {
        "source": activity.source, "samples": activity.samples, "time_steps": steps, "layers": rows,
        "synops_effective": sum(r["synops_effective"] for r in rows),
        "eff_acs": sum(r["synops_effective"] for r in rows if not r["input_graded"]),
        "eff_macs": sum(r["synops_effective"] for r in rows if r["input_graded"]),
        "synops_dense": sum(r["synops_dense"] for r in rows),
        "neuron_updates": sum(r["neuron_updates"] for r in rows),
        "spikes": spikes,
        "payload_bits": sum(r["payload_bits_out"] for r in rows),  # graded spikes' message payloads
        "activation_sparsity": 1.0 - spikes / (neurons * steps) if neurons else 0.0,
    }
