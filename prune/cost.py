"""What a pruned model costs to run: synaptic operations per sample, live weights, neurons and channels."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from snndeploy.prune.graph import reset_state, synapse_kind


def _live(weight: torch.Tensor) -> torch.Tensor:
    return (weight.detach() != 0).to(torch.float32)


def layer_synops(synapse: nn.Module, x: torch.Tensor) -> float:
    """Synaptic events of one synapse on input spikes ``x``: sum over spikes of their live outgoing synapses."""
    spikes = (x.detach() != 0).to(torch.float32)
    live = _live(synapse.weight)
    if spikes.dim() == 3:  # dense: [N, C, T]
        return float((spikes.sum(dim=(0, 2)) @ live.reshape(live.shape[0], -1).sum(0)).item())
    if spikes.dim() == 5 and live.shape[2:] == (1, 1, 1) and spikes.shape[1] * spikes.shape[2] * spikes.shape[3] \
            == live.shape[1]:  # dense on an image-shaped input
        flat = spikes.reshape(spikes.shape[0], -1, spikes.shape[-1])
        return float((flat.sum(dim=(0, 2)) @ live.reshape(live.shape[0], -1).sum(0)).item())
    return float(F.conv3d(spikes, live, stride=synapse.stride, padding=synapse.padding, dilation=synapse.dilation,
                          groups=synapse.groups).sum().item())


@contextlib.contextmanager
def count_synops(net: nn.Module) -> Iterator[dict]:
    """Accumulate synaptic events per synapse block (``counts[name]``) and samples (``counts['_samples']``)."""
    counts: dict = {"_samples": 0}
    handles = []
    for i, block in enumerate(net.blocks):
        if synapse_kind(block) is None:
            continue
        name = f"blocks.{i}"
        counts[name] = 0.0

        def hook(module, args, name=name):
            counts[name] += layer_synops(module, args[0])

        handles.append(block.synapse.register_forward_pre_hook(hook))
    first = net.blocks[0]

    def count_samples(_m, args):
        counts["_samples"] += int(args[0].shape[0])

    handles.append(first.register_forward_pre_hook(count_samples))
    try:
        yield counts
    finally:
        for h in handles:
            h.remove()


def synops_per_sample(net: nn.Module, inputs: Iterable[torch.Tensor]) -> dict:
    """Mean synaptic events per sample (whole time window) over the given input batches, total and per layer."""
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad(), count_synops(net) as counts:
            for x in inputs:
                net(x)
                reset_state(net)
    finally:
        net.train(was_training)
    n = max(counts.pop("_samples"), 1)
    per_layer = {k: v / n for k, v in counts.items()}
    return {"total": sum(per_layer.values()), "per_layer": per_layer, "samples": n}


def model_stats(net: nn.Module) -> dict:
    """Weights, live (non-zero) weights, neurons and live channels (output channels with any live weight)."""
    layers = []
    for i, block in enumerate(net.blocks):
        kind = synapse_kind(block)
        if kind is None:
            continue
        w = block.synapse.weight.detach()
        live_rows = (w.reshape(w.shape[0], -1) != 0).any(1)
        neurons = int(torch.tensor(tuple(block.neuron.shape)).prod().item()) if getattr(block, "neuron", None) \
            is not None and block.neuron.shape is not None else int(w.shape[0])
        layers.append({"layer": f"blocks.{i}", "kind": kind, "weights": w.numel(), "live_weights": int((w != 0).sum()),
                       "sparsity": 1.0 - float((w != 0).float().mean()), "channels": int(w.shape[0]),
                       "live_channels": int(live_rows.sum()), "neurons": neurons})
    weights = sum(layer["weights"] for layer in layers)
    live = sum(layer["live_weights"] for layer in layers)
    return {"layers": layers, "weights": weights, "live_weights": live, "sparsity": 1.0 - live / max(weights, 1),
            "neurons": sum(layer["neurons"] for layer in layers),
            "channels": sum(layer["channels"] for layer in layers),
            "live_channels": sum(layer["live_channels"] for layer in layers)}


@dataclass
class CostMeter:
    """Pruning cost: epochs, optimizer steps, forward-only calibration batches and wall time."""

    epochs: float = 0  # fractions where a method's rounds train on part of an epoch
    optimizer_steps: int = 0
    calibration_batches: int = 0
    wall_s: float = 0.0
    phases: dict = field(default_factory=dict)
    _t0: float | None = None

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def stop(self) -> None:
        if self._t0 is not None:
            self.wall_s += time.perf_counter() - self._t0
            self._t0 = None

    def to_dict(self) -> dict:
        return {"epochs": self.epochs, "optimizer_steps": self.optimizer_steps,
                "calibration_batches": self.calibration_batches, "wall_s": self.wall_s}

    @classmethod
    def from_dict(cls, data: dict) -> CostMeter:
        return cls(data["epochs"], int(data["optimizer_steps"]), int(data["calibration_batches"]),
                   float(data["wall_s"]))
