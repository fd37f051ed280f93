"""How far beyond threshold a layer's neurons are driven, and scaling a network driven too far back down.

Why: a trained network whose spiking neurons sit far from threshold (lava-dl's ``mnist-mlp-128``: median
``|v - theta|`` of 108 and 55 thresholds; bootstrap MNIST 2.9 and 2.1; a fresh lava-dl init 1.3) hardly changes
its spikes under small weight changes, and the surrogate gradient, peaked at the threshold, barely reaches it:
once pruned it recovers very slowly (docs/prune.md "drive_limit and rescale"). Scaling its weights down brings the
neurons back towards threshold. It is not an exact rescaling (the threshold stays), so it is done once, after the
first pruning step, while distillation from the dense network pulls the outputs back.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from snndeploy.prune.criticality import is_graded, replay
from snndeploy.prune.engine import PruningEngine
from snndeploy.train import distributed

SAMPLES_PER_BATCH = 1 << 16  # voltages kept per layer and batch for the median (a uniform random subsample)


def median_drives(net: nn.Module, indices: Sequence[int], batches: Sequence[torch.Tensor]) -> dict[int, float]:
    """Median of ``|v - theta| / theta`` over the neurons, time steps and inputs of each ``net.blocks[i]``, one
    forward pass per batch; blocks without a membrane threshold (sigma-delta neurons, neuron-less read-outs) are
    left out."""
    thresholds = {}
    for i in indices:
        neuron = getattr(net.blocks[i], "neuron", None)
        value = getattr(neuron, "threshold", None)
        threshold = torch.as_tensor(0.0 if value is None else value, dtype=torch.float64)
        if not is_graded(neuron) and threshold.numel() == 1 and float(threshold) > 0:  # one threshold per layer
            thresholds[i] = float(threshold)
    generator = torch.Generator().manual_seed(0)
    kept: dict[int, list[torch.Tensor]] = {i: [] for i in thresholds}

    def on_voltage(i: int, v: torch.Tensor) -> None:
        flat = ((v - thresholds[i]).abs() / thresholds[i]).reshape(-1)
        if flat.numel() > SAMPLES_PER_BATCH:
            flat = flat[torch.randint(flat.numel(), (SAMPLES_PER_BATCH,), generator=generator)]
        kept[i].append(flat)

    replay(net, list(thresholds), batches, on_voltage)
    medians = {i: torch.cat(values).median().reshape(1).to(torch.float64) for i, values in kept.items() if values}
    # under torchrun each rank measured its own batches: the ranks' mean, so every rank scales by the same factor
    return {i: float(distributed.all_reduce_sum(m)) / distributed.world_size() for i, m in medians.items()}


def limit_drive(engine: PruningEngine, net: nn.Module, batches: Sequence[torch.Tensor],
                limit: float) -> dict[str, float]:
    """When a pruned layer's median drive exceeds ``limit`` thresholds, scale every pruned layer's weights by
    ``limit / largest drive``; returns ``{"largest": drive, "factor": factor}`` (factor 1: nothing scaled).

    Why one factor for all layers: scaling each layer to the limit on its own (measured layer by layer, in order)
    recovered far less on lava-dl's ``mnist-mlp-128`` (criticality to 90 %: 79.6 % at limit 10, 85.5 % at 4) than
    one factor for all (92.3 % at 0.1): it leaves the later layers' balance with the first one as trained.
    """
    drives = median_drives(net, [layer.info.index for layer in engine.layers], batches)
    largest = max(drives.values(), default=0.0)
    factor = limit / largest if largest > limit else 1.0
    if factor < 1.0:
        engine.scale_weights(factor)
    return {"largest": largest, "factor": factor}
