"""Physical shrink after structured pruning: removed channels leave their layer, the next layer's inputs, and their
per-neuron parameters (decays, norm/bias, delay), giving a smaller SlayerNet with an updated spec."""

from __future__ import annotations

import dataclasses

import torch
from lava.lib.dl.slayer.block.base import AbstractFlatten
from torch import nn

from snndeploy.prune import masks as masklib
from snndeploy.prune.graph import DependencyGraph, input_shape_of, trace_shapes


def _slice_param(module: nn.Module, name: str, keep: torch.Tensor, dim: int = 0) -> None:
    param = getattr(module, name)
    new = param.detach().index_select(dim, keep).clone()
    if isinstance(param, nn.Parameter):
        setattr(module, name, nn.Parameter(new, requires_grad=param.requires_grad))
    else:
        setattr(module, name, new)


def _shrink_part(module: nn.Module, old: int, keep: torch.Tensor) -> None:
    """One part of a neuron (the neuron, its norm, a sigma-delta neuron's sigma and delta units)."""
    for name, param in list(module.named_parameters(recurse=False)):
        if param.dim() >= 1 and param.shape[0] == old:
            _slice_param(module, name, keep)
    for name, buf in list(module.named_buffers(recurse=False)):
        if name.endswith("_state"):  # per-batch state ([N, C, ...] or a placeholder): rebuilt by the next pass
            setattr(module, name, torch.zeros(1, dtype=buf.dtype, device=buf.device))
        elif buf.dim() >= 1 and buf.shape[0] == old:
            setattr(module, name, buf.index_select(0, keep).clone())
    shape = getattr(module, "shape", None)
    if isinstance(shape, (tuple, torch.Size)) and len(shape) and shape[0] == old:
        module.shape = torch.Size([int(keep.numel()), *shape[1:]])
        if hasattr(module, "num_neurons"):
            module.num_neurons = int(torch.tensor(module.shape).prod().item())
    if hasattr(module, "num_features"):
        module.num_features = int(keep.numel())


def _shrink_neurons(block: nn.Module, old: int, keep: torch.Tensor) -> None:
    """Per-neuron parameters, shapes and state of a block whose output channels are cut to ``keep``."""
    neuron = getattr(block, "neuron", None)
    if neuron is not None:
        for part in neuron.modules():
            _shrink_part(part, old, keep)
    delay = getattr(block, "delay", None)
    if isinstance(delay, nn.Module) and delay.delay.shape[0] == old:
        _slice_param(delay, "delay", keep)


def _set_synapse_weight(synapse: nn.Module, weight: torch.Tensor) -> None:
    synapse.weight = nn.Parameter(weight.detach().clone(), requires_grad=synapse.weight.requires_grad)
    synapse.out_channels, synapse.in_channels = int(weight.shape[0]), int(weight.shape[1])


def shrink(net: nn.Module, graph: DependencyGraph, keep: dict[int, torch.Tensor],
           input_shape: tuple[int, ...] | None = None) -> None:
    """Cut every producer ``i`` in ``keep`` to the channels ``keep[i]`` (sorted indices), in place.

    The network must be plain (masks baked: :meth:`PruningEngine.finalize`). ``net.spec`` is updated when present.
    """
    for index, kept in keep.items():
        group = graph.group(index)
        if group is None:
            raise ValueError(f"blocks.{index} feeds no later layer; its outputs cannot be removed")
        kept = torch.sort(kept.to(torch.long)).values
        producer = net.blocks[index]
        if masklib.stored_weight(producer.synapse) is not producer.synapse.weight:
            raise ValueError("bake the masks first (PruningEngine.finalize)")
        _set_synapse_weight(producer.synapse, producer.synapse.weight.index_select(0, kept))
        _shrink_neurons(producer, group.channels, kept)
        for j in group.passthrough:
            _shrink_neurons(net.blocks[j], group.channels, kept)
        consumer = net.blocks[group.consumer].synapse
        columns = graph.consumer_columns(group, kept)
        _set_synapse_weight(consumer, consumer.weight.index_select(1, columns))
    for block in net.blocks:  # flatten blocks carry their output shape: recomputed by the trace below
        if isinstance(block, AbstractFlatten):
            block.shape = None
    spec = getattr(net, "spec", None)
    if spec is not None and dataclasses.is_dataclass(spec):
        blocks = list(spec.blocks)
        for index, kept in keep.items():
            blocks[index] = dataclasses.replace(blocks[index], out=int(kept.numel()))
        net.spec = dataclasses.replace(spec, blocks=tuple(blocks))
    trace_shapes(net, input_shape or input_shape_of(net))
