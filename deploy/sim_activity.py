"""Activity of a Lava run, counted per layer as the estimator reads it (``activity.json``, schema
``snndeploy-activity/1``, see docs/architecture.md), following the NeuroBench definitions in docs/hardware.md:
synaptic operations are effective accumulates, one per incoming spike and non-zero synapse; neuron updates are
every neuron at every step (Loihi updates all compartments)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from snndeploy.export.ir import Layer, LoihiNet

ACTIVITY_SCHEMA = "snndeploy-activity/1"  # snndeploy.hardware.activity.SCHEMA (checked by the tests)


def _valid_taps(size_in: int, size_out: int, k: int, stride: int, pad: int, dil: int) -> np.ndarray:
    """``(k, size_in)``: whether input position x reaches an output through kernel tap j."""
    x = np.arange(size_in)[None, :]
    j = np.arange(k)[:, None]
    num = x + pad - j * dil
    out = num // stride
    return (num % stride == 0) & (out >= 0) & (out < size_out)


def fan_out(layer: Layer) -> np.ndarray:
    """Non-zero synapses leaving each input neuron of ``layer`` (IR layout of its input, flattened)."""
    if layer.op == "dense":
        return np.count_nonzero(layer.dense_weight(), axis=0).astype(np.int64)
    if layer.op == "input":
        nonzero = int(np.count_nonzero(np.asarray(layer.weight)))
        return np.full(math.prod(layer.in_shape), nonzero, dtype=np.int64)
    c_in, h_in, w_in = layer.in_shape
    _, h_out, w_out = layer.out_shape
    if layer.op == "pool":
        kh, kw = layer.kernel
        per_tap = np.full((c_in, kh, kw), int(np.count_nonzero(np.asarray(layer.weight))), dtype=np.int64)
    else:  # conv: per input channel and tap, the output channels (of its group) with a non-zero weight
        w = np.asarray(layer.weight) != 0
        c_out, c_grp, kh, kw = w.shape
        per_tap = np.zeros((c_in, kh, kw), dtype=np.int64)
        out_per_group = c_out // layer.groups
        for g in range(layer.groups):
            block = w[g * out_per_group:(g + 1) * out_per_group].sum(axis=0)  # (c_grp, kh, kw)
            per_tap[g * c_grp:(g + 1) * c_grp] = block
    vy = _valid_taps(h_in, h_out, kh, layer.stride[0], layer.padding[0], layer.dilation[0]).astype(np.int64)
    vx = _valid_taps(w_in, w_out, kw, layer.stride[1], layer.padding[1], layer.dilation[1]).astype(np.int64)
    return np.einsum("cij,iy,jx->cyx", per_tap, vy, vx).reshape(-1)


@dataclass
class LayerCounts:
    """Totals over the whole run: spikes per neuron, effective synaptic operations in, neuron updates."""

    name: str
    op: str
    neurons: int
    synapses: int
    per_neuron: np.ndarray
    synops: int = 0
    recurrent_synops: int = 0
    neuron_updates: int = 0

    @property
    def spikes(self) -> int:
        return int(self.per_neuron.sum())


class ActivityCounter:
    """Accumulates per-layer activity from per-neuron spike counts of each chunk."""

    def __init__(self, net: LoihiNet):
        self.net = net
        self.fan_out = [fan_out(layer) for layer in net.layers]
        self.rec_fan_out = [None if layer.recurrent is None else
                            np.count_nonzero(np.asarray(layer.recurrent), axis=0).astype(np.int64)
                            for layer in net.layers]
        # a synaptic bias's always-on axon spikes every step into its non-zero synapses (from step i of a sample
        # in layer i: counted from step 0, at most i steps per sample over)
        self.bias_fan_out = [0 if layer.syn_bias is None else int(np.count_nonzero(layer.syn_bias))
                             for layer in net.layers]
        self.layers = [LayerCounts(layer.name, layer.op, layer.size, int(self.fan_out[i].sum()),
                                   np.zeros(layer.size, dtype=np.int64)) for i, layer in enumerate(net.layers)]
        self.input_per_neuron = np.zeros(math.prod(net.input_shape), dtype=np.int64)
        self.steps = 0

    def add(self, input_counts: np.ndarray, layer_counts: list[np.ndarray], steps: int) -> None:
        """``input_counts``: spikes per input neuron; ``layer_counts[i]``: spikes per neuron of layer i (IR order)."""
        self.steps += steps
        incoming = input_counts.reshape(-1).astype(np.int64)
        self.input_per_neuron += incoming
        for i, counts in enumerate(layer_counts):
            act = self.layers[i]
            counts = counts.reshape(-1).astype(np.int64)
            act.synops += int(incoming @ self.fan_out[i]) + self.bias_fan_out[i] * steps
            if self.rec_fan_out[i] is not None:
                act.recurrent_synops += int(counts @ self.rec_fan_out[i])
            act.per_neuron += counts
            act.neuron_updates += act.neurons * steps
            incoming = counts

    def merge(self, other: ActivityCounter) -> None:
        """Add the counts of another run of the same network (another worker's samples)."""
        self.steps += other.steps
        self.input_per_neuron += other.input_per_neuron
        for mine, theirs in zip(self.layers, other.layers, strict=True):
            mine.per_neuron += theirs.per_neuron
            mine.synops += theirs.synops
            mine.recurrent_synops += theirs.recurrent_synops
            mine.neuron_updates += theirs.neuron_updates

    def to_dict(self, *, samples: int, steps_per_sample: int, model: str, precision: str) -> dict[str, Any]:
        """The activity file (schema of :mod:`snndeploy.hardware.activity`): means per sample, plus run totals."""
        per = max(samples, 1)
        layers = []
        for i, act in enumerate(self.layers):
            layer = self.net.layers[i]
            layers.append({
                "name": act.name, "neurons": act.neurons, "spikes": act.spikes / per, "graded": False,
                "spikes_per_neuron": (act.per_neuron / per).tolist(),
                "synops": (act.synops + act.recurrent_synops) / per,
                "neuron_updates": act.neuron_updates / per,
                "index": i, "op": act.op, "shape": list(layer.out_shape), "spiking": bool(layer.neuron.spiking),
                "synapses": act.synapses, "rate": act.spikes / max(act.neurons * self.steps, 1),
                "totals": {"spikes": act.spikes, "synops": act.synops, "recurrent_synops": act.recurrent_synops,
                           "neuron_updates": act.neuron_updates},
            })
        in_spikes = int(self.input_per_neuron.sum())
        return {"schema": ACTIVITY_SCHEMA, "source": "lava", "model": model, "network": self.net.name,
                "precision": precision, "backend": "lava-cpu (Loihi2SimCfg)", "samples": samples,
                "time_steps": steps_per_sample, "steps": self.steps,
                "counting": "means per sample; synops = incoming spikes x non-zero synapses (effective ACs), "
                            "neuron_updates = neurons x steps; counted over the whole back-to-back run",
                "input": {"name": "input", "neurons": int(self.input_per_neuron.size), "spikes": in_spikes / per,
                          "graded": False, "spikes_per_neuron": (self.input_per_neuron / per).tolist(),
                          "shape": list(self.net.input_shape)},
                "layers": layers,
                "totals": {"spikes": sum(a.spikes for a in self.layers) / per,
                           "synops": sum(a.synops + a.recurrent_synops for a in self.layers) / per,
                           "neuron_updates": sum(a.neuron_updates for a in self.layers) / per}}

