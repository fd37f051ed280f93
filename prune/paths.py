"""Effective weights: the kept weights that lie on some path from the network's input to its output.

Why: at high sparsity magnitude-like scores leave many neurons with no incoming or no outgoing weight, and every
weight into or out of such a neuron is kept for nothing (Vysogorets & Kempe, "Connectivity matters: neural network
pruning through the lens of effective sparsity", JMLR 2023). On lava-dl's ``mnist-mlp-128`` at 98 % GMP keeps 2,184
weights of which 685 (31 %) touch one of 87 such neurons (docs/prune.md "Ineffective weights"). Moving them to
positions on live paths keeps the sparsity and gives the fine-tuning more to work with.

A weight ``pre -> post`` is effective when ``pre`` is reached from the input (forward-live) and ``post`` reaches
the output (backward-live). Layers are the dependency graph's synapse blocks in order; a layer the engine does not
prune counts as dense, a neuron with a non-zero bias counts as reached.
"""

from __future__ import annotations

import torch
from torch import nn

from snndeploy.prune.graph import DependencyGraph


def connectivity(mask: torch.Tensor) -> torch.Tensor:
    """``[out, in]`` bool: does any kept kernel entry join input channel ``in`` to output channel ``out``."""
    return mask.reshape(mask.shape[0], mask.shape[1], -1).ne(0).any(-1)


def _has_bias(block: nn.Module) -> torch.Tensor | None:
    """Per output channel: a non-zero bias that drives the neuron without any input (None: no bias). The bias sits
    on the neuron (sigma-delta) or on its ``norm`` hook (snndeploy.models.build.NeuronBias)."""
    neuron = getattr(block, "neuron", None)
    for owner in (getattr(neuron, "norm", None), neuron):
        bias = getattr(owner, "bias", None)
        if isinstance(bias, torch.Tensor) and bias.numel() > 0:
            return bias.detach().reshape(-1).ne(0)
    return None


def _channels_to_columns(graph: DependencyGraph, producer: int, channels: torch.Tensor) -> torch.Tensor:
    """Per input column of the producer's consumer: fed by a channel that is set in ``channels``."""
    group = graph.group(producer)
    columns = torch.zeros(group.channels * group.per_channel_inputs, dtype=torch.bool)
    columns[graph.consumer_columns(group, torch.nonzero(channels).view(-1))] = True
    return columns


def live_channels(net: nn.Module, graph: DependencyGraph, masks: dict[int, torch.Tensor]
                  ) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """Forward-live and backward-live output channels of every graph layer (``masks``: block index -> weight mask;
    a layer missing from it is dense)."""
    conn = {layer.index: connectivity(masks[layer.index]) if layer.index in masks
            else torch.ones(layer.shape[0], layer.shape[1], dtype=torch.bool) for layer in graph.layers}
    feeds = {g.consumer: g.producer for g in graph.groups}
    forward: dict[int, torch.Tensor] = {}
    for layer in graph.layers:
        i = layer.index
        inputs = _input_columns(graph, feeds, forward, i, conn[i].shape[1])
        reached = (conn[i] & inputs.view(1, -1)).any(1)
        bias = _has_bias(net.blocks[i])
        if bias is not None and bias.numel() == 1:  # one bias shared by the layer
            bias = bias.expand_as(reached)
        forward[i] = reached | bias if bias is not None and bias.numel() == reached.numel() else reached
    backward: dict[int, torch.Tensor] = {}
    for layer in reversed(graph.layers):
        i = layer.index
        group = graph.group(i)
        if group is None:  # the network's output (or a layer whose consumer the graph does not follow)
            backward[i] = torch.ones(conn[i].shape[0], dtype=torch.bool)
            continue
        used = conn[group.consumer][backward[group.consumer]].any(0)  # consumer columns read by a live row
        per_channel = graph.consumer_columns(group, torch.arange(group.channels))  # channel-major
        backward[i] = used[per_channel].view(group.channels, group.per_channel_inputs).any(1)
    return forward, backward


def _input_columns(graph: DependencyGraph, feeds: dict[int, int], forward: dict[int, torch.Tensor], index: int,
                   columns: int) -> torch.Tensor:
    producer = feeds.get(index)
    if producer is None:  # fed by the network's input
        return torch.ones(columns, dtype=torch.bool)
    return _channels_to_columns(graph, producer, forward[producer])


def effective(net: nn.Module, graph: DependencyGraph, masks: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    """Per layer in ``masks``: bool tensor of the mask's shape, true where a kept weight there would be effective
    (pre forward-live, post backward-live)."""
    forward, backward = live_channels(net, graph, masks)
    return _positions(graph, masks, forward, backward)


def effective_and_open(net: nn.Module, graph: DependencyGraph, masks: dict[int, torch.Tensor]
                       ) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """:func:`effective`, and the positions where a new weight is effective once the ineffective ones are gone: a
    hidden neuron keeps weights then only if it is both forward- and backward-live, so only positions between such
    neurons (or the network's inputs and outputs) qualify. One liveness pass for both."""
    forward, backward = live_channels(net, graph, masks)
    alive = {i: forward[i] & backward[i] for i in forward}
    outputs = {i for i in forward if graph.group(i) is None}
    open_after = _positions(graph, masks, alive, {i: backward[i] if i in outputs else alive[i] for i in alive})
    return _positions(graph, masks, forward, backward), open_after


def _positions(graph: DependencyGraph, masks: dict[int, torch.Tensor], forward: dict[int, torch.Tensor],
               backward: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    feeds = {g.consumer: g.producer for g in graph.groups}
    out = {}
    for index, mask in masks.items():
        inputs = _input_columns(graph, feeds, forward, index, mask.shape[1])
        on_path = backward[index].view(-1, 1) & inputs.view(1, -1)
        out[index] = on_path.view(*on_path.shape, *([1] * (mask.dim() - 2))).expand_as(mask)
    return out
