"""Dependency graph of prunable layers and channel groups of a SlayerNet (``net.blocks`` of lava-dl blocks).

Each synapse block (dense, conv, affine) is a :class:`PrunableLayer`. A :class:`ChannelGroup` ties one layer's output
channels to the blocks they pass through (pool: per channel; flatten: channel ``c`` owns inputs ``c*HW .. c*HW+HW-1``)
and to the input columns of the next synapse block that consumes them, so that a channel can be removed everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from lava.lib.dl.slayer import synapse
from lava.lib.dl.slayer.block import base, sigma_delta
from torch import nn

# lava-dl's sigma-delta read-out (``sigma_delta.Output``: a dense synapse into a sigma, no delta) derives from none of
# the abstract synapse blocks; it is the graded counterpart of CUBA's non-spiking ``Affine``, and the spec calls both
# ``affine``.
SYNAPSE_KINDS = ((base.AbstractConv, "conv"), (base.AbstractDense, "dense"), (base.AbstractAffine, "affine"),
                 (sigma_delta.Output, "affine"))
# Any other block that carries a lava-dl synapse is still a weight tensor the masks can act on.
SYNAPSE_MODULES = ((synapse.Conv, "conv"), (synapse.Dense, "dense"))


@dataclass(frozen=True)
class PrunableLayer:
    """One synapse tensor that masks act on."""

    index: int  # position in net.blocks
    name: str
    kind: str  # dense | conv | affine
    shape: tuple[int, ...]  # weight shape [out, in, kh, kw, 1]
    out_shape: tuple[int, ...]  # block output shape without batch and time, e.g. (C, H, W) or (N,)


@dataclass(frozen=True)
class ChannelGroup:
    """Output channels of ``producer`` with everything that depends on them."""

    producer: int  # block index of the synapse block whose channels are pruned
    passthrough: tuple[int, ...]  # pool blocks between producer and consumer (per-channel neurons)
    consumer: int  # block index of the next synapse block
    per_channel_inputs: int  # consumer input columns fed by one channel (H*W after a flatten, else 1)
    channels: int


@dataclass(frozen=True)
class DependencyGraph:
    layers: tuple[PrunableLayer, ...]
    groups: tuple[ChannelGroup, ...]

    def layer(self, index: int) -> PrunableLayer:
        return next(layer for layer in self.layers if layer.index == index)

    def group(self, producer: int) -> ChannelGroup | None:
        return next((g for g in self.groups if g.producer == producer), None)

    def consumer_columns(self, group: ChannelGroup, channels: torch.Tensor) -> torch.Tensor:
        """Consumer input columns fed by ``channels`` (C-major, as lava-dl's Flatten lays them out)."""
        k = group.per_channel_inputs
        return (channels.view(-1, 1) * k + torch.arange(k).view(1, -1)).reshape(-1)


def synapse_kind(block: nn.Module) -> str | None:
    """``conv``, ``dense`` or ``affine`` for a block whose synapse is a prunable weight tensor, else None."""
    for cls, kind in SYNAPSE_KINDS:
        if isinstance(block, cls):
            return kind
    for cls, kind in SYNAPSE_MODULES:
        if isinstance(getattr(block, "synapse", None), cls):
            return kind
    return None


def input_shape_of(net: nn.Module) -> tuple[int, ...]:
    spec = getattr(net, "spec", None)
    if spec is None or not getattr(spec, "input_shape", None):
        raise ValueError("the network has no spec.input_shape; pass input_shape explicitly")
    return tuple(int(v) for v in spec.input_shape)


def trace_shapes(net: nn.Module, input_shape: tuple[int, ...], time_steps: int = 2) -> list[tuple[int, ...]]:
    """Output shape (without batch and time) of every block, from one forward pass on zeros."""
    shapes: list[tuple[int, ...] | None] = [None] * len(net.blocks)
    handles = []
    for i, block in enumerate(net.blocks):
        def hook(_m, _inp, out, i=i):
            out = out[0] if isinstance(out, tuple) else out
            shapes[i] = tuple(out.shape[1:-1])
        handles.append(block.register_forward_hook(hook))
    device = next(net.parameters()).device
    try:
        with torch.no_grad():
            net(torch.zeros(1, *input_shape, time_steps, device=device))
    finally:
        for h in handles:
            h.remove()
        reset_state(net)
    return [s if s is not None else () for s in shapes]


def reset_state(net: nn.Module) -> None:
    """Forget lava-dl per-batch state (step-delay buffers) left by a forward pass."""
    for block in net.blocks:
        if hasattr(block, "delay_buffer"):
            block.delay_buffer = None


def build_graph(net: nn.Module, input_shape: tuple[int, ...] | None = None) -> DependencyGraph:
    """Find prunable layers and the channel groups between consecutive synapse blocks."""
    shape_in = input_shape or input_shape_of(net)
    shapes = trace_shapes(net, shape_in)
    layers = []
    for i, block in enumerate(net.blocks):
        kind = synapse_kind(block)
        if kind is not None:
            w = block.synapse.weight
            layers.append(PrunableLayer(i, f"blocks.{i}", kind, tuple(w.shape), shapes[i]))
    groups = []
    for layer in layers:
        group = _follow(net, layer, shapes)
        if group is not None:
            groups.append(group)
    return DependencyGraph(tuple(layers), tuple(groups))


def _follow(net: nn.Module, layer: PrunableLayer, shapes: list[tuple[int, ...]]) -> ChannelGroup | None:
    """Walk from a producer to the next synapse block; None when the producer's outputs are the network's."""
    passthrough: list[int] = []
    per_channel = 1
    channels = layer.shape[0]
    for j in range(layer.index + 1, len(net.blocks)):
        block = net.blocks[j]
        if synapse_kind(block) is not None:
            if block.synapse.weight.shape[1] != channels * per_channel:
                raise ValueError(f"blocks.{j}: {block.synapse.weight.shape[1]} inputs do not match "
                                 f"{channels} channels x {per_channel} of blocks.{layer.index}")
            return ChannelGroup(layer.index, tuple(passthrough), j, per_channel, channels)
        if isinstance(block, base.AbstractPool):
            passthrough.append(j)
        elif isinstance(block, base.AbstractFlatten):
            prev = shapes[j - 1]
            per_channel = int(torch.tensor(prev[1:]).prod().item()) if len(prev) > 1 else 1
        else:
            raise ValueError(f"blocks.{j}: {type(block).__name__} is not supported between pruned layers")
    return None
