"""Per-layer description of a spiking network, extracted from a NIR graph, with sparse-aware counts.

A *layer* is one synapse stage (Affine/Linear, Conv2d, SumPool2d/AvgPool2d, Scale) followed by its neuron
stage (CubaLIF, LIF, IF, ...). Counts follow the NIR weights: a synapse exists where a weight is non-zero.
Dense weights may be numpy arrays or scipy.sparse matrices; convolutions are counted per kernel tap and
per valid output position without unrolling them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from snndeploy.errors import UserError
from snndeploy.export.ir import Layer, LoihiNet
from snndeploy.hardware.weightbits import WeightBits, weight_bits
from snndeploy.loihi import DECAY_UNITY

DENSE_NODES = ("Affine", "Linear")
POOL_NODES = ("SumPool2d", "AvgPool2d")
NEURON_NODES = ("CubaLIF", "LIF", "IF", "CubaLI", "LI", "I", "Threshold")
PASS_NODES = ("Input", "Output", "Flatten", "Delay")
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
    raise UserError(f"NIR {name} must be one or two integers, got {value!r}")


def _valid_taps(size_in: int, size_out: int, k: int, stride: int, pad: int, dil: int) -> np.ndarray:
    """For each kernel offset, how many output positions read an in-bounds input through it."""
    out = np.arange(size_out)[:, None] * stride - pad + np.arange(k)[None, :] * dil
    return ((out >= 0) & (out < size_in)).sum(axis=0)


def _out_size(size: int, k: int, stride: int, pad: int, dil: int) -> int:
    return (size + 2 * pad - dil * (k - 1) - 1) // stride + 1


def _conv_padding(padding, kernel: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int]:
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0
        if padding == "same":
            return tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation, strict=True))  # type: ignore[return-value]
        raise UserError(f"NIR Conv2d padding {padding!r} is not supported (use integers, 'same' or 'valid')")
    return _pair(padding, "padding")


def _column_counts(csr) -> np.ndarray:
    """Entries per column of a CSR matrix: a ones-row times its structure (scipy's C++ scatter-add, about twice
    as fast as ``np.bincount``, which first widens the int32 indices)."""
    import scipy.sparse as sp

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
            raise UserError(f"NIR node {name!r}: dense weight must be 2-D (out, in), got shape {w.shape}")
        n_out, n_in = w.shape
        mask = w != 0
        row_nz = np.add.reduce(mask, axis=1, dtype=np.int64)
        col_nz = np.add.reduce(mask, axis=0, dtype=np.int64)
        nonzero = int(row_nz.sum())
    if int(np.prod(in_shape)) != n_in:
        raise UserError(f"NIR node {name!r}: weight takes {n_in} inputs but receives shape {in_shape}")
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
        raise UserError(f"NIR node {name!r}: Conv2d needs a (out, in/groups, kh, kw) weight and a (C, H, W) input")
    c_out, c_in_g, kh, kw = w.shape
    groups = int(groups)
    if c_in_g * groups != in_shape[0]:
        raise UserError(f"NIR node {name!r}: Conv2d expects {c_in_g * groups} input channels, gets {in_shape[0]}")
    stride, dil = _pair(stride, "stride"), _pair(dilation, "dilation")
    pad = _conv_padding(padding, (kh, kw), dil)
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


def _pool(name: str, kernel_size, stride, padding, average: bool, in_shape: tuple[int, ...],
          neuron: str) -> LayerCount:
    if len(in_shape) != 3:
        raise UserError(f"NIR node {name!r}: pooling needs a (C, H, W) input, gets {in_shape}")
    kernel, stride = _pair(kernel_size, "kernel_size"), _pair(stride, "stride")
    pad = _pair(padding, "padding")
    h_out = _out_size(in_shape[1], kernel[0], stride[0], pad[0], 1)
    w_out = _out_size(in_shape[2], kernel[1], stride[1], pad[1], 1)
    rows = _valid_taps(in_shape[1], h_out, kernel[0], stride[0], pad[0], 1)
    cols = _valid_taps(in_shape[2], w_out, kernel[1], stride[1], pad[1], 1)
    synapses = int(in_shape[0] * rows.sum() * cols.sum())
    n_out = in_shape[0] * h_out * w_out
    fanout = int(np.ceil(kernel[0] / stride[0]) * np.ceil(kernel[1] / stride[1]))
    weight = np.ones(1) * float(np.prod(kernel)) ** (-1.0 if average else 0.0)
    return LayerCount(name, "pool", in_shape, (in_shape[0], h_out, w_out), neuron, synapses, synapses, 1, 1,
                 int(np.prod(kernel)), synapses / max(n_out, 1), fanout, synapses / max(int(np.prod(in_shape)), 1),
                 weight_bits(weight), kernel, stride, in_shape[0])


def _scale(name: str, scale, in_shape: tuple[int, ...], neuron: str) -> LayerCount:
    w = np.broadcast_to(np.asarray(scale, dtype=float), in_shape)
    nonzero = int(np.count_nonzero(w))
    n = int(np.prod(in_shape))
    return LayerCount(name, "input", in_shape, in_shape, neuron, n, nonzero, int(np.asarray(scale).size),
                      int(np.count_nonzero(scale)), 1, nonzero / max(n, 1), 1, nonzero / max(n, 1), weight_bits(w),
                      groups=int(in_shape[0]))


def _topological(graph) -> tuple[list[str], dict[str, str]]:
    """Node names from the input to the output, and {neuron node: its recurrent weight node}."""
    preds: dict[str, list[str]] = {name: [] for name in graph.nodes}
    succs: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for src, dst in graph.edges:
        # "node.port" names a node's port; snnTorch's flat graphs name nodes "lif1.lif" themselves
        src, dst = (name if name in preds else name.split(".")[0] for name in (src, dst))
        if src not in preds or dst not in preds:
            raise UserError(f"NIR edge {src} -> {dst} names a node that is not in the graph")
        preds[dst].append(src)
        succs[src].append(dst)
    recurrent: dict[str, str] = {}
    for name, node in graph.nodes.items():  # a dense node fed by a neuron node and feeding it back
        if type(node).__name__ in DENSE_NODES and len(preds[name]) == 1 and succs[name] == preds[name]:
            owner = preds[name][0]
            recurrent[owner] = name
            preds[owner].remove(name)
            succs[owner].remove(name)
            preds[name], succs[name] = [], []
    for name, p in preds.items():
        if len(p) > 1 or len(succs[name]) > 1:
            raise UserError(f"NIR node {name!r} has {len(p)} inputs and {len(succs[name])} outputs: the estimator "
                            "handles feed-forward chains (no branches, merges or recurrence) for now")
    order = [n for n, p in preds.items() if not p and n not in recurrent.values()]
    if len(order) != 1:
        raise UserError(f"NIR graph must have exactly one input node, found {len(order)}")
    while succs[order[-1]]:
        nxt = succs[order[-1]][0]
        if nxt in order:
            raise UserError(f"NIR graph has a recurrent connection into {nxt!r}: not supported by the estimator yet")
        order.append(nxt)
    if len(order) + len(recurrent) != len(graph.nodes):
        raise UserError("NIR graph is not one connected chain from its input to its output")
    return order, recurrent


def _with_synapses(layer: LayerCount, extra: LayerCount, **changes) -> LayerCount:
    """``layer`` with the synapses of ``extra`` (more inputs into the same neurons) added to its counts."""
    if extra.neurons != layer.neurons:
        raise UserError(f"NIR {extra.name!r} must have one row per neuron of {layer.name!r} ({layer.neurons})")
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


def _nir_syn_bias(graph, weight_node, neuron_node, rec_node) -> np.ndarray | None:
    """The synaptic bias ``from_nir`` maps to an always-on axon: the weight nodes' biases (the recurrent one's too)
    into a ``CubaLIF`` whose current has memory (``tau_syn`` != the graph's ``dt``; assumed when no ``dt``)."""
    biases = [np.asarray(b, dtype=np.float64).reshape(-1) for b in (getattr(weight_node, "bias", None),
                                                                    getattr(rec_node, "bias", None)) if b is not None]
    if type(neuron_node).__name__ != "CubaLIF" or not any(np.any(b) for b in biases):
        return None
    meta, dt = _snndeploy_meta(neuron_node), _snndeploy_meta(graph).get("dt")
    if "i_decay" in meta:
        memory = bool(np.any(np.asarray(meta["i_decay"]) != DECAY_UNITY))
    else:
        memory = dt is None or not np.allclose(np.asarray(neuron_node.tau_syn, dtype=np.float64), float(dt))
    return sum(biases) if memory else None


def _input_shape(node) -> tuple[int, ...]:
    shape = tuple(int(s) for s in np.atleast_1d(np.asarray(node.input_type["input"])).ravel())
    if not shape or any(s <= 0 for s in shape):
        raise UserError(f"NIR Input node has an unusable shape {shape}")
    return shape


def layers_from_nir(graph) -> tuple[LayerCount, ...]:
    """The network's layers in order, from a feed-forward ``nir.NIRGraph`` (self-recurrent layers allowed)."""
    order, recurrent = _topological(graph)
    shape: tuple[int, ...] | None = None
    pending: tuple[str, object, tuple[int, ...]] | None = None
    layers: list[LayerCount] = []

    def flush(neuron: str, label: str | None = None, owner: str = "") -> None:
        nonlocal pending, shape
        name, node, in_shape = pending  # type: ignore[misc]
        name = label or name
        kind = type(node).__name__
        if kind in DENSE_NODES:
            layer = _dense(name, node.weight, in_shape, neuron)
        elif kind == "Conv2d":
            layer = _conv(name, node.weight, node.groups, node.stride, node.padding, node.dilation, in_shape, neuron)
        elif kind in POOL_NODES:
            layer = _pool(name, node.kernel_size, node.stride, node.padding, kind == "AvgPool2d", in_shape, neuron)
        else:
            layer = _scale(name, node.scale, in_shape, neuron)
        rec_node = graph.nodes[recurrent[owner]] if owner in recurrent else None
        if rec_node is not None:
            layer = _with_recurrent(layer, rec_node.weight)
        if kind in DENSE_NODES and owner:
            bias = _nir_syn_bias(graph, node, graph.nodes[owner], rec_node)
            layer = layer if bias is None else _with_bias_axon(layer, bias)
        layers.append(layer)
        shape, pending = layer.out_shape, None

    for name in order:
        node = graph.nodes[name]
        kind = type(node).__name__
        if kind == "Input":
            shape = _input_shape(node)
        elif shape is None:
            raise UserError(f"NIR graph must start with an Input node (it starts with {kind} {name!r})")
        elif kind == "Flatten":
            if pending is not None:
                flush("none")
            shape = (int(np.prod(shape)),)
        elif kind in DENSE_NODES + POOL_NODES + ("Conv2d", "Scale"):
            if pending is not None:
                flush("none")
            pending = (name, node, shape)
        elif kind in NEURON_NODES:
            if pending is None:
                pending = (name, _Identity(), shape)
            flush(_sigma_delta_kind(node) or kind, _layer_label(node), name)
            if kind == "I" and _sigma_delta_kind(node):
                layers[-1] = replace(layers[-1], message_bits=int(_snndeploy_meta(node).get("message_bits", 0)))
        elif kind in ("Output", "Delay"):
            if kind == "Output" and pending is not None:
                flush("none")
        else:
            raise UserError(f"NIR node {name!r} of type {kind} is not supported by the estimator")
    if not layers:
        raise UserError("NIR graph has no synapse or neuron layers")
    return tuple(layers)


# The exporter writes every IR layer as one CubaLIF node (a voltage read-out gets an infinite threshold).
IR_NEURON = "CubaLIF"


def _ir_neuron(layer: Layer) -> str:
    """The neuron kind the NIR graph of an IR layer is counted as (:func:`_sigma_delta_kind` for sigma-delta)."""
    n = layer.neuron
    if n.kind != "sigma_delta":
        return IR_NEURON
    if layer.op == "input":
        return SD_ENCODER
    return "Sigma" if n.sigma_output else "SigmaDelta"


def _count_ir_layer(layer: Layer, in_shape: tuple[int, ...]) -> LayerCount:
    """One IR layer's counts, exactly as the NIR graph the exporter writes for it is counted."""
    neuron = _ir_neuron(layer)
    if layer.op == "dense":
        count = _dense(layer.name, layer.dense_weight().astype(np.float32), in_shape, neuron)
    elif layer.op == "conv":
        count = _conv(layer.name, np.asarray(layer.weight, dtype=np.float32), layer.groups, layer.stride,
                      layer.padding, layer.dilation, in_shape, neuron)
    elif layer.op == "pool":  # the pooling weight is a gain of the neuron, not a synapse
        count = _pool(layer.name, layer.kernel, layer.stride, layer.padding, False, in_shape, neuron)
    else:  # input: the scale is a gain of the neuron; its synapses are one-to-one
        count = _scale(layer.name, np.ones(1), in_shape, neuron)
    if layer.recurrent is not None:
        count = _with_recurrent(count, np.asarray(layer.recurrent, dtype=np.float32))
    if layer.syn_bias is not None:
        count = _with_bias_axon(count, layer.syn_bias)
    if layer.neuron.kind == "sigma_delta":
        count = replace(count, message_bits=int(layer.neuron.message_bits))
    return count


def layers_from_ir(net: LoihiNet) -> tuple[LayerCount, ...]:
    """The estimator's per-layer counts of the one IR (no detour through NIR)."""
    shape = tuple(net.input_shape)
    counts = []
    for layer in net.layers:
        if layer.op == "dense" and len(shape) > 1:
            shape = (int(np.prod(shape)),)
        counts.append(_count_ir_layer(layer, shape))
        shape = counts[-1].out_shape
    return tuple(counts)


def _snndeploy_meta(node) -> dict:
    meta = getattr(node, "metadata", None) or {}
    return meta.get("snndeploy") if isinstance(meta.get("snndeploy"), dict) else {}


def _layer_label(node) -> str | None:
    """The layer name snndeploy's exporter stores in a neuron node's metadata, if any."""
    label = _snndeploy_meta(node).get("layer")
    return None if label is None else str(label)


def _sigma_delta_kind(node) -> str | None:
    """``Delta`` (input encoder), ``Sigma`` (read-out) or ``SigmaDelta`` for snndeploy's sigma-delta ``I`` nodes."""
    meta = _snndeploy_meta(node)
    if meta.get("neuron") == "delta":
        return SD_ENCODER
    if meta.get("neuron") == "sigma_delta":
        return "Sigma" if meta.get("sigma_output") else "SigmaDelta"
    return None


class _Identity:
    """A neuron stage with no weight node before it: its inputs arrive one-to-one."""

    scale = np.ones(1)


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
