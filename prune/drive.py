"""How far beyond threshold a layer's neurons are driven, and scaling down the layers driven too far.

Why: a trained network whose spiking neurons sit far from threshold (lava-dl's ``mnist-mlp-128``: median
``|v - theta|`` of 108 and 55 thresholds; bootstrap MNIST 2.9 and 2.1; a fresh lava-dl init 1.3) hardly changes
its spikes under small weight changes, and the surrogate gradient, peaked at the threshold, barely reaches it: once
pruned it recovers very slowly (docs/prune.md "rescale"). Scaling such a layer's weights down brings its neurons
back towards threshold. It is not an exact rescaling (the threshold stays), so it is done once, after the first
pruning step, while distillation from the dense network pulls the outputs back.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from snndeploy.prune.criticality import is_graded, record_voltages
from snndeploy.prune.engine import PruningEngine
from snndeploy.prune.graph import reset_state
from snndeploy.train import distributed

SAMPLES_PER_BATCH = 1 << 16  # voltages kept per layer and batch for the median (a uniform random subsample)


def median_drive(net: nn.Module, index: int, batches: Sequence[torch.Tensor]) -> float | None:
    """Median of ``|v - theta| / theta`` over the neurons, time steps and inputs of ``net.blocks[index]`` (None
    for a layer without a membrane threshold: sigma-delta neurons, neuron-less read-outs)."""
    neuron = net.blocks[index].neuron
    threshold = float(getattr(neuron, "threshold", 0.0) or 0.0)
    if is_graded(neuron) or threshold <= 0:
        return None
    generator = torch.Generator().manual_seed(index)
    kept: list[torch.Tensor] = []

    def on_voltage(_i: int, v: torch.Tensor) -> None:
        flat = ((v - threshold).abs() / threshold).reshape(-1)
        if flat.numel() > SAMPLES_PER_BATCH:
            flat = flat[torch.randint(flat.numel(), (SAMPLES_PER_BATCH,), generator=generator)]
        kept.append(flat)

    was_training = net.training
    net.eval()
    try:
        with torch.no_grad(), record_voltages(net, [index], on_voltage):
            for x in batches:
                net(x)
                reset_state(net)
    finally:
        net.train(was_training)
    if not kept:
        return None
    median = torch.cat(kept).median().reshape(1).to(torch.float64)
    # under torchrun each rank measured its own batches: the ranks' mean, so every rank scales by the same factor
    return float(distributed.all_reduce_sum(median)) / distributed.world_size()


def limit_drive(engine: PruningEngine, net: nn.Module, batches: Sequence[torch.Tensor],
                limit: float) -> dict[str, float]:
    """Scale each pruned layer whose median drive exceeds ``limit`` thresholds by ``limit / drive``, in network
    order (each layer measured after the ones before it were scaled); returns ``{layer name: factor}``."""
    factors: dict[str, float] = {}
    for layer in sorted(engine.layers, key=lambda item: item.info.index):
        drive = median_drive(net, layer.info.index, batches)
        if drive is None or drive <= limit:
            continue
        factor = limit / drive
        with torch.no_grad():
            layer.weight.mul_(factor)
        factors[layer.info.name] = factor
    return factors
