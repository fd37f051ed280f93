"""The export IR: a feed-forward chain of Loihi layers, the one shape every exporter reads and writes.

SLAYER models, NIR graphs and netx HDF5 files are all converted to a :class:`LoihiNet`; Lava processes,
netx files, NIR files, ONNX and the reference simulator are all produced from it. Numbers are kept in
SLAYER's float units (weights = Loihi integer weights / ``W_SCALE``, threshold = ``vThMant`` / ``W_SCALE``,
bias = Loihi bias mantissa (exponent 6) / ``W_SCALE``) while the decays are Loihi's 12-bit integers
(``iDecay``, ``vDecay`` out of 4096), exactly as SLAYER itself quantizes them.

Layer ops: ``input`` (an element-wise scale into a neuron layer, SLAYER's ``Input`` block), ``dense``,
``conv``, ``pool`` (sum pooling with one shared weight). Shapes are ``(C,)`` or ``(C, H, W)``. They hold data
only: like nir's nodes, a layer checks on creation that its shapes agree with its op and weights, and a net that
its layers chain; :func:`snndeploy.export.checks.check_net` checks the values where a net is read or written.

Neuron kinds: :class:`Neuron` (``kind == "cuba"``, binary spikes) and :class:`SigmaDelta` (``kind ==
"sigma_delta"``, lava-dl's SDNN: graded spikes). A sigma-delta ``input`` layer is the delta encoder alone (no
synapse, no sigma); see :class:`SigmaDelta` for the fixed-point units.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import ClassVar

import numpy as np
from scipy.sparse import issparse

from snndeploy.errors import UserError
from snndeploy.loihi import DECAY_UNITY, MAX_VTH_MANT, NETX_READOUT_DECAYS, W_SCALE  # noqa: F401  (the IR's units, imported from here)

OPS = ("input", "dense", "conv", "pool")
SD_ACTIVATIONS = ("relu", "identity")  # what Lava's SigmaDelta computes (ActivationMode RELU, UNIT)
SD_EXP = 6  # netx's spike_exp and state_exp (fixed-point fraction bits of graded spikes and of states)
SD_MESSAGE_BITS = 16  # netx's default graded payload of an SDNN layer


@dataclass(frozen=True)
class Neuron:
    """Loihi CUBA neuron group: current and voltage decays, threshold, bias; ``spiking=False`` = voltage read-out."""

    i_decay: np.ndarray  # int, 0..4096, shape () or per neuron
    v_decay: np.ndarray
    threshold: np.ndarray  # float (vThMant / 64); ignored when spiking is False
    bias: np.ndarray | None = None  # float, per neuron, per channel or scalar
    spiking: bool = True
    kind: ClassVar[str] = "cuba"
    graded: ClassVar[bool] = False

    @property
    def vth_mant(self) -> np.ndarray:
        return _mant(self.threshold)


def _mant(threshold) -> np.ndarray:
    return np.asarray(np.round(np.asarray(threshold, dtype=np.float64) * W_SCALE)).astype(np.int64)


@dataclass(frozen=True)
class SigmaDelta:
    """Loihi sigma-delta neuron group (lava-dl SDNN, Lava's ``lava.proc.sdn``): graded spikes.

    Per step: ``sigma += input``; ``act = activation(sigma + bias)``; ``delta = act - act_prev + residue``; send
    ``delta`` if ``|delta| >= threshold`` (with ``cum_error``: if the summed error reaches it) and keep the rest
    as ``residue``. ``sigma_output``: the layer sends its ``sigma`` every step (netx's read-out layer, Lava's
    ``Sigma``: no bias, activation or delta). In an ``input`` layer it is the delta encoder alone (Lava's
    ``Delta``): the network input is delta-encoded with ``threshold``.

    Units are SLAYER's floats (threshold = ``vThMant`` / 64, bias = bias / 64). On Loihi (fixed_pt) the states
    hold ``spike_exp + state_exp + 6`` fraction bits and a graded spike ``spike_exp + 6``: an input value ``x``
    is sent as ``x * 2**spike_exp``, a spike of value ``s`` as ``s * 2**(spike_exp + 6)`` in ``message_bits``.
    """

    threshold: np.ndarray
    bias: np.ndarray | None = None
    activation: str = "relu"
    cum_error: bool = False
    sigma_output: bool = False
    spike_exp: int = SD_EXP
    state_exp: int = SD_EXP
    message_bits: int = SD_MESSAGE_BITS
    kind: ClassVar[str] = "sigma_delta"
    graded: ClassVar[bool] = True

    @property
    def spiking(self) -> bool:
        """False for a ``sigma_output`` read-out (it sends its state, like a CUBA voltage read-out)."""
        return not self.sigma_output

    @property
    def vth_mant(self) -> np.ndarray:
        return _mant(self.threshold)


def is_sigma_delta(net: LoihiNet) -> bool:
    return any(layer.neuron.kind == "sigma_delta" for layer in net.layers)


def require_cuba(net: LoihiNet, what: str) -> None:
    """A one-line error where a converter handles CUBA layers only."""
    for layer in net.layers:
        if layer.neuron.kind != "cuba":
            raise UserError(f"{layer.name}: {what} does not support {layer.neuron.kind} neurons")


@dataclass(frozen=True)
class Layer:
    """One synapse + neuron stage; ``flatten`` means the previous output is flattened (C-major) first."""

    name: str
    op: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    neuron: Neuron | SigmaDelta
    # dense (out, in); conv (out, in/groups, kh, kw); input/pool: scalar. A dense weight may be a scipy.sparse
    # matrix where a reader keeps it sparse for counting (``from_nir(structure_only=True)``); back ends read
    # ``dense_weight()``
    weight: np.ndarray
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    kernel: tuple[int, int] = (1, 1)  # pool only
    flatten: bool = False
    recurrent: np.ndarray | None = None  # (out, out) weights from this layer's own spikes
    delay: np.ndarray | None = None  # per input neuron axonal delay (steps) on this layer's input
    # per output neuron: a constant added to the synaptic current every step from the layer's first input on (other
    # tools' synaptic bias into a neuron with current memory): one always-on input axon with these weights; dense
    # or conv (C-major, a conv's is its channel's bias for every neuron of the channel)
    syn_bias: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_layer_shapes(self)

    @property
    def size(self) -> int:
        return int(np.prod(self.out_shape))

    def dense_weight(self) -> np.ndarray:
        """The layer's full (out, in) weight as a dense matrix (only for ``dense``)."""
        weight = self.weight.toarray() if issparse(self.weight) else self.weight
        return np.asarray(weight, dtype=np.float64).reshape(self.size, -1)


@dataclass(frozen=True)
class LoihiNet:
    """A chain of layers fed by spikes of ``input_shape``; ``dt`` and ``reset`` are documented conventions."""

    name: str
    input_shape: tuple[int, ...]
    layers: tuple[Layer, ...]
    dt: float = 1.0
    reset: str = "zero"  # Loihi CUBA: v is set to 0 after a spike (no refractory period)
    time_steps: int | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_chain(self)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.layers[-1].out_shape

    def with_layers(self, layers) -> LoihiNet:
        return replace(self, layers=tuple(layers))


def _check_layer_shapes(layer: Layer) -> None:
    """A layer's shapes agree with its op, weights and recurrent connection (a one-line error otherwise)."""
    where = f"layer {layer.name}"
    if layer.op not in OPS:
        raise UserError(f"{where}: unknown op {layer.op!r} (expected one of {', '.join(OPS)})")
    if not layer.out_shape or 0 in layer.out_shape or not layer.in_shape or 0 in layer.in_shape:
        raise UserError(f"{where} has a zero-size shape {layer.in_shape} -> {layer.out_shape}")
    w = layer.weight if issparse(layer.weight) else np.asarray(layer.weight)
    if layer.op == "dense" and int(np.prod(w.shape)) != layer.size * int(np.prod(layer.in_shape)):
        raise UserError(f"{where} weight of shape {w.shape} does not connect {layer.in_shape} to {layer.out_shape}")
    if layer.op == "conv" and (w.ndim != 4 or len(layer.in_shape) != 3 or w.shape[0] != layer.out_shape[0]
                               or w.shape[1] * layer.groups != layer.in_shape[0]):
        raise UserError(f"{where} kernel of shape {w.shape} does not map {layer.in_shape} to {layer.out_shape}")
    if layer.recurrent is not None and int(np.prod(np.shape(layer.recurrent))) != layer.size ** 2:
        raise UserError(f"{where} recurrent weight of shape {np.shape(layer.recurrent)} does not fit "
                        f"{layer.size} neurons")
    if layer.syn_bias is not None and (layer.op not in ("dense", "conv")
                                       or np.asarray(layer.syn_bias).size != layer.size):
        raise UserError(f"{where} synaptic bias of shape {np.shape(layer.syn_bias)}: one value per neuron of a "
                        "dense or conv layer is supported")


def _check_chain(net: LoihiNet) -> None:
    """Each layer takes as many values as the one before it sends."""
    if not net.layers:
        raise UserError(f"network {net.name!r} has no layers")
    shape = tuple(net.input_shape)
    for layer in net.layers:
        if int(np.prod(layer.in_shape)) != int(np.prod(shape)):
            raise UserError(f"layer {layer.name} takes input of shape {layer.in_shape} but receives {shape}")
        shape = tuple(layer.out_shape)


def per_neuron(value, shape: tuple[int, ...]) -> np.ndarray:
    """Broadcast a scalar, per-channel or per-neuron parameter to ``shape`` (channels first)."""
    arr = np.asarray(value)
    if arr.size == 1:
        return np.full(shape, arr.reshape(-1)[0], dtype=arr.dtype)
    if arr.shape == tuple(shape) or arr.size == int(np.prod(shape)):
        return arr.reshape(shape)
    if len(shape) == 3 and arr.size == shape[0]:
        return np.broadcast_to(arr.reshape(-1, 1, 1), shape).copy()
    raise ValueError(f"parameter of shape {arr.shape} does not fit neurons of shape {shape}")


def to_int_exact(values, scale: int, what: str) -> np.ndarray:
    """``values * scale`` as integers; raises ValueError if any value is off the Loihi grid."""
    scaled = np.asarray(values, dtype=np.float64) * scale
    ints = np.round(scaled)
    if not np.allclose(scaled, ints, rtol=0, atol=1e-6):
        worst = float(np.max(np.abs(scaled - ints)))
        raise ValueError(f"{what}: off Loihi's grid of 1/{scale} (by up to {worst / scale:.3g})")
    return ints.astype(np.int64)


def _same(x, y) -> bool:
    return (x is None and y is None) or (x is not None and y is not None and np.array_equal(np.asarray(x),
                                                                                            np.asarray(y)))


def first_difference(a: LoihiNet, b: LoihiNet, *, names: bool = True) -> str | None:
    """Where two networks differ (shapes, structure, weights, every neuron field; layer names unless ``names`` is
    False), or None if they are equal."""
    if a.input_shape != b.input_shape or len(a.layers) != len(b.layers):
        return f"input {a.input_shape} vs {b.input_shape}, {len(a.layers)} vs {len(b.layers)} layers"
    for la, lb in zip(a.layers, b.layers, strict=True):
        for f in ("name", "op", "in_shape", "out_shape", "stride", "padding", "dilation", "groups", "kernel",
                  "flatten"):
            if getattr(la, f) != getattr(lb, f) and (names or f != "name"):
                return f"{la.name}: {f} {getattr(la, f)} vs {getattr(lb, f)}"
        if not _same(la.weight, lb.weight):
            return f"{la.name}: weights"
        if not _same(la.syn_bias, lb.syn_bias):
            return f"{la.name}: synaptic bias"
        if type(la.neuron) is not type(lb.neuron):
            return f"{la.name}: neuron kind {la.neuron.kind} vs {lb.neuron.kind}"
        for f in fields(la.neuron):
            if not _same(getattr(la.neuron, f.name), getattr(lb.neuron, f.name)):
                return f"{la.name}: neuron {f.name}"
    return None


def _weight_counts(layer: Layer) -> tuple[int, int]:
    """(stored weights, non-zero weights) of a layer; a sparse matrix's absent entries are zeros."""
    w = layer.weight
    if issparse(w):
        return int(np.prod(w.shape)), int(w.count_nonzero())
    return int(np.asarray(w).size), int(np.count_nonzero(w))


def weight_density(layer: Layer) -> float:
    size, nonzero = _weight_counts(layer)
    return float(nonzero) / max(size, 1)


def summary(net: LoihiNet) -> list[dict]:
    """One row per layer: op, shapes, neurons, synapses (non-zero weights), density."""
    rows = []
    for layer in net.layers:
        size, nonzero = _weight_counts(layer)
        rows.append({"name": layer.name, "op": layer.op, "in": list(layer.in_shape), "out": list(layer.out_shape),
                     "neurons": layer.size, "weights": size, "nonzero": nonzero,
                     "density": round(weight_density(layer), 4), "recurrent": layer.recurrent is not None,
                     "delay": layer.delay is not None, "spiking": layer.neuron.spiking})
    return rows
