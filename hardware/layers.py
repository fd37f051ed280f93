"""Per-layer counts of a spiking network, read from the one IR (:class:`~snndeploy.export.ir.LoihiNet`).

A *layer* is one IR layer: a synapse stage (dense, conv, pool, input) and its neuron group. Counts follow the
weights: a synapse exists where a weight is non-zero. Dense weights may be numpy arrays or scipy.sparse matrices
(other tools' large NIR graphs, read with ``from_nir(structure_only=True)``); convolutions are counted per kernel
tap and per valid output position without unrolling them. A new layer kind needs one branch in
:func:`_count_ir_layer`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from snndeploy.errors import UserError
from snndeploy.export.ir import Layer, LoihiNet
from snndeploy.hardware.weightbits import WeightBits, weight_bits

SD_ENCODER = "Delta"  # a sigma-delta network's input encoder (lava-dl deploys it off the neurocores)


@dataclass(frozen=True)
class LayerCount:
    """One synapse + neuron stage and what it needs, independent of any hardware."""

    name: str
    op: str  # dense | conv | pool | input (one synapse per neuron)
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    neuron: str  # NIR neuron node type, or "none" for a non-spiking read-out
    synapses: int  # connections, zero weights included
    synapses_nonzero: int
    weights_stored: int  # parameters held (shared conv kernels count once)
    weights_nonzero: int
    fan_in_max: int  # non-zero inputs of the most-connected neuron
    fan_in_mean: float
    in_fanout_max: int  # non-zero targets of the most-connected input neuron
    in_fanout_mean: float
    bits: WeightBits
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    groups: int = 1
    in_fanout: np.ndarray | None = field(default=None, repr=False, compare=False)  # per input neuron (dense)
    recurrent: bool = False  # the layer's own spikes come back through recurrent synapses (counted above)
    recurrent_fanout: np.ndarray | None = field(default=None, repr=False, compare=False)  # per own neuron
    message_bits: int = 0  # graded payload of each output spike (sigma-delta); 0 for binary spikes
    # a synaptic bias into a neuron with current memory (ir.Layer.syn_bias): one always-on input axon spiking
    # every step, its synapses (counted above) carrying the bias; bias_fanout = its non-zero synapses
    bias_axons: int = 0
    bias_fanout: int = 0

    @property
    def neurons(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def in_neurons(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def axons_in(self) -> int:
        """Distinct presynaptic neurons: the inputs, the layer's own neurons when it is recurrent, and the
        always-on axon of a synaptic bias."""
        return self.in_neurons + (self.neurons if self.recurrent else 0) + self.bias_axons

    @property
    def in_channels(self) -> int:
        return int(self.in_shape[0])

    @property
    def out_channels(self) -> int:
        return int(self.out_shape[0])


def _pair(value, name: str) -> tuple[int, int]:
    arr = np.atleast_1d(np.asarray(value)).astype(int).ravel()
    if arr.size == 1:
        return int(arr[0]), int(arr[0])
    if arr.size == 2:
        return int(arr[0]), int(arr[1])
    raise UserError(f"{name} must be one or two integers, got {value!r}")


def _valid_taps(size_in: int, size_out: int, k: int, stride: int, pad: int, dil: int) -> np.ndarray:
    """For each kernel offset, how many output positions read an in-bounds input through it."""
    out = np.arange(size_out)[:, None] * stride - pad + np.arange(k)[None, :] * dil
    return ((out >= 0) & (out < size_in)).sum(axis=0)


def _out_size(size: int, k: int, stride: int, pad: int, dil: int) -> int:
    return (size + 2 * pad - dil * (k - 1) - 1) // stride + 1


def _column_counts(csr) -> np.ndarray:
    """Entries per column of a CSR matrix: a ones-row times its structure (scipy's C++ scatter-add, about twice
    as fast as ``np.bincount``, which first widens the int32 indices)."""
    dtype = np.float32 if csr.shape[0] < 2**24 else np.float64  # exact integer counts
    structure = sp.csr_matrix((np.ones(csr.nnz, dtype=dtype), csr.indices, csr.indptr), shape=csr.shape)
    return np.rint(np.ones(csr.shape[0], dtype=dtype) @ structure).astype(np.int64)


def _dense(name: str, weight, in_shape: tuple[int, ...], neuron: str) -> LayerCount:
    if hasattr(weight, "tocsr"):
        csr = weight.tocsr()
        n_out, n_in = csr.shape
        stored = csr.data != 0
        if stored.all():  # the usual case: no explicit zeros, so the structure alone gives the counts
            row_nz, col_nz = np.diff(csr.indptr), _column_counts(csr)
        else:
            rows = np.repeat(np.arange(n_out), np.diff(csr.indptr))
            row_nz = np.bincount(rows[stored], minlength=n_out)
            col_nz = np.bincount(csr.indices[stored], minlength=n_in)
        nonzero = int(row_nz.sum())
    else:
        w = np.asarray(weight)
        if w.ndim != 2:
            raise UserError(f"layer {name!r}: dense weight must be 2-D (out, in), got shape {w.shape}")
        n_out, n_in = w.shape
        mask = w != 0
        row_nz = np.add.reduce(mask, axis=1, dtype=np.int64)
        col_nz = np.add.reduce(mask, axis=0, dtype=np.int64)
        nonzero = int(row_nz.sum())
    if int(np.prod(in_shape)) != n_in:
        raise UserError(f"layer {name!r}: weight takes {n_in} inputs but receives shape {in_shape}")
    return LayerCount(name, "dense", in_shape, (n_out,), neuron, n_out * n_in, nonzero, n_out * n_in, nonzero,
                 int(row_nz.max(initial=0)), nonzero / max(n_out, 1), int(col_nz.max(initial=0)),
                 nonzero / max(n_in, 1), weight_bits(weight), in_fanout=col_nz.astype(np.int64))


def _conv_fanout_max(mask: np.ndarray, groups: int, stride: tuple[int, int], dil: tuple[int, int]) -> int:
    """Targets of the most-connected interior input neuron: with stride s, an input position is reached only
    by the taps whose offset has its residue modulo s, so take the best residue class per input channel."""
    c_out, c_in_g, kh, kw = mask.shape
    grouped = mask.reshape(groups, c_out // groups, c_in_g, kh, kw).sum(axis=1)  # (groups, c_in/g, kh, kw)
    rows, cols = (np.arange(kh) * dil[0]) % stride[0], (np.arange(kw) * dil[1]) % stride[1]
    best = 0
    for ry in np.unique(rows):
        for rx in np.unique(cols):
            taps = grouped[:, :, rows == ry][:, :, :, cols == rx]
            best = max(best, int(taps.sum(axis=(2, 3)).max(initial=0)))
    return best


def _conv(name: str, weight, groups, stride, padding, dilation, in_shape: tuple[int, ...],
          neuron: str) -> LayerCount:
    w = np.asarray(weight)
    if w.ndim != 4 or len(in_shape) != 3:
        raise UserError(f"layer {name!r}: Conv2d needs a (out, in/groups, kh, kw) weight and a (C, H, W) input")
    c_out, c_in_g, kh, kw = w.shape
    groups = int(groups)
    if c_in_g * groups != in_shape[0]:
        raise UserError(f"layer {name!r}: Conv2d expects {c_in_g * groups} input channels, gets {in_shape[0]}")
    stride, dil = _pair(stride, "stride"), _pair(dilation, "dilation")
    pad = _pair(padding, "padding")
    h_out = _out_size(in_shape[1], kh, stride[0], pad[0], dil[0])
    w_out = _out_size(in_shape[2], kw, stride[1], pad[1], dil[1])
    rows = _valid_taps(in_shape[1], h_out, kh, stride[0], pad[0], dil[0])
    cols = _valid_taps(in_shape[2], w_out, kw, stride[1], pad[1], dil[1])
    positions = np.outer(rows, cols)  # output positions served by each kernel tap
    mask = w != 0
    nonzero = int((mask.sum(axis=(0, 1)) * positions).sum())
    synapses = int(c_out * c_in_g * positions.sum())
    n_out, n_in = c_out * h_out * w_out, int(np.prod(in_shape))
    per_out = mask.sum(axis=(1, 2, 3))  # interior neurons of each output channel
    fanout_max = _conv_fanout_max(mask, groups, stride, dil)
    return LayerCount(name, "conv", in_shape, (c_out, h_out, w_out), neuron, synapses, nonzero, int(w.size),
                 int(mask.sum()), int(per_out.max(initial=0)), nonzero / max(n_out, 1), fanout_max,
                 nonzero / max(n_in, 1), weight_bits(w), (kh, kw), stride, groups)


def _pool(name: str, kernel_size, stride, padding, in_shape: tuple[int, ...], neuron: str) -> LayerCount:
    """Sum pooling: one shared unit weight (the IR's pooling weight is a gain of the neuron, not a synapse)."""
    if len(in_shape) != 3:
        raise UserError(f"layer {name!r}: pooling needs a (C, H, W) input, gets {in_shape}")
    kernel, stride = _pair(kernel_size, "kernel_size"), _pair(stride, "stride")
    pad = _pair(padding, "padding")
    h_out = _out_size(in_shape[1], kernel[0], stride[0], pad[0], 1)
    w_out = _out_size(in_shape[2], kernel[1], stride[1], pad[1], 1)
    rows = _valid_taps(in_shape[1], h_out, kernel[0], stride[0], pad[0], 1)
    cols = _valid_taps(in_shape[2], w_out, kernel[1], stride[1], pad[1], 1)
    synapses = int(in_shape[0] * rows.sum() * cols.sum())
    n_out = in_shape[0] * h_out * w_out
    fanout = int(np.ceil(kernel[0] / stride[0]) * np.ceil(kernel[1] / stride[1]))
    return LayerCount(name, "pool", in_shape, (in_shape[0], h_out, w_out), neuron, synapses, synapses, 1, 1,
                 int(np.prod(kernel)), synapses / max(n_out, 1), fanout, synapses / max(int(np.prod(in_shape)), 1),
                 weight_bits(np.ones(1)), kernel, stride, in_shape[0])


def _one_to_one(name: str, in_shape: tuple[int, ...], neuron: str) -> LayerCount:
    """An input layer: one unit synapse per neuron (the IR's input scale is a gain of the neuron)."""
    n = int(np.prod(in_shape))
    return LayerCount(name, "input", in_shape, in_shape, neuron, n, n, 1, 1, 1, 1.0, 1, 1.0, weight_bits(np.ones(1)),
                      groups=int(in_shape[0]))


def _with_synapses(layer: LayerCount, extra: LayerCount, **changes) -> LayerCount:
    """``layer`` with the synapses of ``extra`` (more inputs into the same neurons) added to its counts."""
    if extra.neurons != layer.neurons:
        raise UserError(f"{extra.name!r} must have one row per neuron of {layer.name!r} ({layer.neurons})")
    bits = max(layer.bits, extra.bits, key=lambda b: (b.bits + int(b.signed)))
    return replace(layer, synapses=layer.synapses + extra.synapses,
                   synapses_nonzero=layer.synapses_nonzero + extra.synapses_nonzero,
                   weights_stored=layer.weights_stored + extra.weights_stored,
                   weights_nonzero=layer.weights_nonzero + extra.weights_nonzero,
                   fan_in_max=layer.fan_in_max + extra.fan_in_max,
                   fan_in_mean=layer.fan_in_mean + extra.fan_in_mean, bits=bits, **changes)


def _with_recurrent(layer: LayerCount, weight) -> LayerCount:
    """Add a layer's recurrent (neurons x neurons) synapses to its counts."""
    rec = _dense(f"{layer.name} (recurrent)", weight, (layer.neurons,), layer.neuron)
    return _with_synapses(layer, rec, recurrent=True, recurrent_fanout=rec.in_fanout)


def _with_bias_axon(layer: LayerCount, bias) -> LayerCount:
    """Add the always-on input axon of a synaptic bias: one synapse per neuron, weighted by its bias."""
    values = np.asarray(bias, dtype=np.float32).reshape(-1)
    if not np.any(values):
        return layer
    column = _dense(f"{layer.name} (synaptic bias)", values.reshape(-1, 1), (1,), layer.neuron)
    return _with_synapses(layer, column, bias_axons=1, bias_fanout=column.synapses_nonzero)


# The exporter writes every IR layer as one CubaLIF node (a voltage read-out gets an infinite threshold).
IR_NEURON = "CubaLIF"


def _ir_neuron(layer: Layer) -> str:
    """The neuron kind a layer is reported as: the CUBA neuron, or lava-dl's sigma-delta units."""
    n = layer.neuron
    if n.kind != "sigma_delta":
        return str(layer.meta.get("source_neuron", IR_NEURON))  # other tools' graphs: their neuron node type
    if layer.op == "input":
        return SD_ENCODER
    return "Sigma" if n.sigma_output else "SigmaDelta"


def _count_ir_layer(layer: Layer, in_shape: tuple[int, ...]) -> LayerCount:
    """One IR layer's counts."""
    neuron = _ir_neuron(layer)
    if layer.op == "dense":
        weight = layer.weight if sp.issparse(layer.weight) else np.asarray(layer.weight).reshape(layer.size, -1)
        count = _dense(layer.name, weight, in_shape, neuron)
    elif layer.op == "conv":
        count = _conv(layer.name, np.asarray(layer.weight, dtype=np.float32), layer.groups, layer.stride,
                      layer.padding, layer.dilation, in_shape, neuron)
    elif layer.op == "pool":  # the pooling weight is a gain of the neuron, not a synapse
        count = _pool(layer.name, layer.kernel, layer.stride, layer.padding, in_shape, neuron)
    else:  # input: the scale is a gain of the neuron; its synapses are one-to-one
        count = _one_to_one(layer.name, in_shape, neuron)
    if layer.recurrent is not None:
        count = _with_recurrent(count, layer.recurrent)
    if layer.syn_bias is not None:
        count = _with_bias_axon(count, layer.syn_bias)
    if layer.neuron.kind == "sigma_delta":
        count = replace(count, message_bits=int(layer.neuron.message_bits))
    return count


def layers_from_ir(net: LoihiNet) -> tuple[LayerCount, ...]:
    """The estimator's per-layer counts of the one IR."""
    shape = tuple(net.input_shape)
    counts = []
    for layer in net.layers:
        if layer.op == "dense" and len(shape) > 1:
            shape = (int(np.prod(shape)),)
        counts.append(_count_ir_layer(layer, shape))
        shape = counts[-1].out_shape
    return tuple(counts)


def totals(layers: Iterable[LayerCount]) -> dict[str, int]:
    layers = tuple(layers)
    return {
        "layers": len(layers),
        "neurons": sum(lay.neurons for lay in layers),
        "synapses": sum(lay.synapses for lay in layers),
        "synapses_nonzero": sum(lay.synapses_nonzero for lay in layers),
        "weights_stored": sum(lay.weights_stored for lay in layers),
        "weights_nonzero": sum(lay.weights_nonzero for lay in layers),
    }
