"""LoihiNet -> a runnable network of standard Lava processes, in ``fixed_pt`` (Loihi bit-accurate) or ``floating_pt``.

Per layer: a synapse process (``Dense``, or ``Sparse`` when the weight density is below ``sparse_below``; ``Conv``
for convolutions; pooling and the input scale are ``Conv`` processes with a one-value kernel per channel; in
fixed_pt a conv, pool or image input-scale layer is a ``Sparse`` of its unrolled matrix instead, the same integer
sums many times faster per step (the rule: ``lava_batch.unrolled_kernel``); axonal delays become
``DelayDense``/``DelaySparse`` on the following dense synapse), a ``LIF`` neuron group (Loihi CUBA:
``du = iDecay - 1`` with Lava's offset of one, ``dv = vDecay``, ``vth = vThMant``, bias mantissa with exponent 6)
and, for recurrent layers, a second synapse from the group's spikes back to its input. Spikes enter through a
``RingBuffer`` source and every layer's spikes leave through a ``RingBuffer`` sink. Images are Lava's XYC
(W, H, C) inside and CHW outside. Every synapse adds one time step of delay, exactly like SLAYER's
``delay_shift`` (see docs/export.md for the alignment).

Sigma-delta layers use Lava's own ``lava.proc.sdn`` models: ``SigmaDelta`` (``Sigma`` for a ``sigma_output``
read-out), and for a sigma-delta ``input`` layer a ``Delta`` encoder fed straight from the source, as netx
builds them; their synapses take graded messages (``num_message_bits``). In ``fixed_pt`` the processes get the
layer's ``spike_exp``/``state_exp`` and integer parameters and every value is Loihi's integer payload; in
``floating_pt`` both exponents are 0, parameters are SLAYER floats and the source is scaled by
:func:`sd_input_scale` (results convert back with :func:`sd_output_scale`). Sigma-delta networks run one copy.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

import snndeploy  # noqa: F401  (Lava compatibility hook before any lava import)
from snndeploy import lava_runner, validate
from snndeploy.errors import UserError
from snndeploy.export import checks, lava_batch
from snndeploy.export.ir import (
    DECAY_UNITY,
    MAX_VTH_MANT,
    SD_EXP,
    W_SCALE,
    Layer,
    LoihiNet,
    SigmaDelta,
    is_sigma_delta,
    per_neuron,
    to_int_exact,
)
from snndeploy.export.quantize import fit_weights

MODES = ("fixed_pt", "floating_pt")
DEFAULT_SPARSE_BELOW = 0.3  # weight density under which a dense layer becomes a Lava Sparse process
MAX_DELAY = 62  # Lava DelayDense/DelaySparse limit (netx clamps to the same)
OFF_GRID_HINT = "quantize the weights (snndeploy export --quantize) or run with --precision floating_pt"


@dataclass
class LavaLayer:
    name: str
    synapse: Any
    neuron: Any
    sink: Any
    recurrent: Any = None
    synapse_kind: str = ""


@dataclass
class LavaNetwork:
    """The built processes; ``layers[i].neuron`` is the LIF group of IR layer i (e.g. to set a bias)."""

    net: LoihiNet
    mode: str
    steps: int
    source: Any
    layers: list[LavaLayer] = field(default_factory=list)
    copies: int = 1  # independent copies side by side (lava_batch)

    def run_config(self):
        from lava.magma.core.run_configs import Loihi2SimCfg

        return Loihi2SimCfg(select_tag=self.mode)


@dataclass(frozen=True)
class LavaRun:
    """Per-layer recordings in IR layout (C[, H, W], T): spikes always, ``u``/``v`` for probed layers."""

    spikes: list[np.ndarray | None]  # None for layers built without a sink (record="output")
    u: dict[int, np.ndarray]
    v: dict[int, np.ndarray]
    mode: str
    sigma: dict[int, np.ndarray] = field(default_factory=dict)  # sigma-delta layers' sigma (``sigma=True``)


def import_lava() -> None:
    """Import Lava's runtime now: it sets the 'fork' start method at import time, which fails once anything
    (a tqdm progress bar creates a multiprocessing lock) has fixed the multiprocessing context."""
    import lava.magma.core.process.process  # noqa: F401
    import lava.proc.io  # noqa: F401


def xyc(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(shape[::-1]) if len(shape) == 3 else tuple(shape)


def to_lava_layout(x: np.ndarray) -> np.ndarray:
    """(C, H, W, T) -> (W, H, C, T); vectors (C, T) unchanged."""
    return x.transpose(2, 1, 0, 3) if x.ndim == 4 else x


def from_lava_layout(x: np.ndarray) -> np.ndarray:
    return x.transpose(2, 1, 0, 3) if x.ndim == 4 else x


def netx_layout_to_ir(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """An image input in netx's own (W, H, C, T) or (N, W, H, C, T) layout (lava-dl's test inputs), recognised by
    its shape, as (…, C, H, W, T); anything else unchanged."""
    lava = tuple(shape[::-1])
    if len(shape) != 3 or lava == tuple(shape):
        return x
    if tuple(x.shape[:-1]) == lava:
        return x.transpose(2, 1, 0, 3)
    if x.ndim == 5 and tuple(x.shape[1:-1]) == lava:
        return x.transpose(0, 3, 2, 1, 4)
    return x


def _synapse_weights(w: np.ndarray, mode: str, what: str) -> dict:
    if mode == "floating_pt":
        return {"weights": np.asarray(w, dtype=np.float64)}
    mant, bits, exp = fit_weights(to_int_exact(w, W_SCALE, what), what)
    return {"weights": mant, "num_weight_bits": bits, "weight_exp": exp}


def _dense(w: np.ndarray, mode: str, sparse: bool, what: str, delays: np.ndarray | None = None, copies: int = 1,
           bits: int = 0, binary_in: bool = True):
    """A dense layer's synapse; ``copies > 1``: a block-diagonal ``Sparse`` of that many copies of ``w``;
    ``bits``: graded input messages of that many bits (sigma-delta); ``binary_in``: the input is 0/1 spikes (else
    Lava's binary path takes any non-zero value as a spike, which the graded path would not)."""
    params = _synapse_weights(w, mode, what)
    sparse = sparse or copies > 1
    if copies > 1 and binary_in:  # one Sparse input vector holds all copies: the graded (dot) path, same sums
        params["num_message_bits"] = lava_batch.SPARSE_MESSAGE_BITS
    if bits:
        params["num_message_bits"] = bits
    if delays is not None:
        delays = np.broadcast_to(np.asarray(delays, dtype=np.int64), w.shape).copy()
        if sparse:
            from lava.proc.sparse.process import DelaySparse

            delays[np.asarray(w) == 0] = 0
            return DelaySparse(weights=lava_batch.block_diagonal(params.pop("weights"), copies),
                               delays=lava_batch.block_diagonal(delays, copies),
                               max_delay=MAX_DELAY, **params), "DelaySparse"
        from lava.proc.dense.process import DelayDense

        return DelayDense(delays=delays, max_delay=MAX_DELAY, **params), "DelayDense"
    if sparse:
        from lava.proc.sparse.process import Sparse

        return Sparse(weights=lava_batch.block_diagonal(params.pop("weights"), copies), **params), "Sparse"
    from lava.proc.dense.process import Dense

    return Dense(**params), "Dense"


def _conv(weight_oihw: np.ndarray, in_shape, layer: Layer, groups: int, mode: str, what: str, bits: int = 0):
    """Lava's Conv does a true convolution on XYC tensors: flip the kernel, reorder to (out, kx, ky, in)."""
    from lava.proc.conv.process import Conv

    w = np.asarray(weight_oihw, dtype=np.float64)[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)
    w = w if mode == "floating_pt" else to_int_exact(w, W_SCALE, what)
    return Conv(weight=np.ascontiguousarray(w), input_shape=xyc(in_shape), stride=layer.stride[::-1],
                padding=layer.padding[::-1], dilation=layer.dilation[::-1], groups=groups,
                num_message_bits=bits), "Conv"


def _neuron(layer: Layer, mode: str, sample_steps: int | None = None, ports: bool = False,
            active_steps: np.ndarray | None = None, count_steps: int | None = None):
    """``sample_steps``: samples of that many steps run back to back, each from zero state at its first step
    (``lava_procs.SampleLIF``, which also has the ``u_out``/``v_out`` ports and a ``bias_in`` port); with
    ``active_steps`` (per neuron, Lava order) neurons rest after that many steps.
    ``ports``: the neuron also sends ``u`` and ``v`` every step (``u_out``, ``v_out``; lava_procs.ProbedLIF);
    ``count_steps`` (with ``sample_steps``): its ``spike_count`` counts the spikes of that many steps."""
    from lava.proc.lif.process import LIF

    if layer.neuron.kind == "sigma_delta":
        if sample_steps is not None or ports:
            raise UserError(f"{layer.name}: sigma-delta layers have no reset or u/v ports; run one sample per build")
        return _sd_neuron(layer, mode)
    if ports:
        from snndeploy.export.lava_procs import ProbedLIF as LIF  # noqa: N814
    if sample_steps is not None:
        from snndeploy.export.lava_procs import SampleLIF

        make = functools.partial(SampleLIF, sample_steps=int(sample_steps), active_steps=active_steps,
                                 count_steps=count_steps)
    else:
        make = LIF
    n, shape = layer.neuron, layer.out_shape
    i_decay = per_neuron(n.i_decay, shape).astype(np.int64)
    v_decay = per_neuron(n.v_decay, shape).astype(np.int64)
    if np.unique(i_decay).size > 1 or np.unique(v_decay).size > 1:
        raise UserError(f"{layer.name}: per-neuron decays are not supported by Lava's LIF (one value per layer)")
    bias = np.zeros(shape) if n.bias is None else per_neuron(n.bias, shape).astype(np.float64)
    bias = to_lava_layout(bias[..., None])[..., 0]
    vth = np.asarray(n.threshold, dtype=np.float64).reshape(-1)
    if np.unique(vth).size > 1:
        raise UserError(f"{layer.name}: per-neuron thresholds are not supported by Lava's LIF")
    if mode == "floating_pt":
        return make(shape=xyc(shape), du=float(i_decay.flat[0]) / DECAY_UNITY,
                    dv=float(v_decay.flat[0]) / DECAY_UNITY, vth=float(vth[0]) if n.spiking else float("inf"),
                    bias_mant=bias, bias_exp=0)
    vth_mant = int(n.vth_mant.reshape(-1)[0]) if n.spiking else MAX_VTH_MANT
    return make(shape=xyc(shape), du=int(i_decay.flat[0]) - 1, dv=int(v_decay.flat[0]), vth=vth_mant,
                bias_mant=to_int_exact(bias, W_SCALE, f"{layer.name} bias"), bias_exp=6)


def sd_input_scale(net: LoihiNet, mode: str) -> float:
    """What the source values are multiplied by: 1 in fixed_pt (netx's integers, or graded payloads when the
    network starts without its encoder), SLAYER's units in floating_pt."""
    if mode == "fixed_pt":
        return 1.0
    first = net.layers[0]
    return 1.0 / (1 << (2 * SD_EXP - _state_exp(net) if first.op == "input" else first.neuron.spike_exp + SD_EXP))


def sd_output_scale(layer: Layer, state: bool = False) -> float:
    """Integer payload per SLAYER unit of a sigma-delta layer's output (its sigma for a ``sigma_output`` layer),
    or with ``state`` of its sigma."""
    n = layer.neuron
    return float(1 << (n.spike_exp + SD_EXP + (n.state_exp if n.sigma_output or state else 0)))


def sd_payload(values: np.ndarray, layer: Layer, mode: str, state: bool = False) -> np.ndarray:
    """A sigma-delta layer's Lava outputs (``state``: its sigma) in Loihi's integer payload units, the units of
    :mod:`snndeploy.export.sdnn_ref`: fixed_pt values are those integers, floating_pt ones are SLAYER floats."""
    values = np.asarray(values)
    return values.astype(np.int64) if mode == "fixed_pt" else values * sd_output_scale(layer, state)


def _state_exp(net: LoihiNet) -> int:
    exps = {layer.neuron.state_exp for layer in net.layers if layer.neuron.kind == "sigma_delta"}
    if exps - {SD_EXP}:
        raise UserError(f"sigma-delta state_exp {sorted(exps)}: only {SD_EXP} (netx's) matches 6-bit weights")
    return SD_EXP


def _sd_neuron(layer: Layer, mode: str):
    """Lava's sigma-delta process for the layer: ``Delta`` (input encoder), ``Sigma`` or ``SigmaDelta``."""
    from lava.proc.sdn.process import ActivationMode, Delta, Sigma
    from lava.proc.sdn.process import SigmaDelta as SigmaDeltaProc

    n: SigmaDelta = layer.neuron
    shape = xyc(layer.out_shape)
    if n.sigma_output:
        return Sigma(shape=shape)
    fixed = mode == "fixed_pt"
    vth = np.unique(np.asarray(n.threshold, dtype=np.float64))
    if vth.size > 1:
        raise UserError(f"{layer.name}: per-neuron delta thresholds are not supported by Lava's sigma-delta models")
    exps = {"spike_exp": n.spike_exp, "state_exp": n.state_exp} if fixed else {"spike_exp": 0, "state_exp": 0}
    threshold = int(to_int_exact(vth, W_SCALE, f"{layer.name} threshold")[0]) if fixed else float(vth[0])
    if layer.op == "input":
        return Delta(shape=shape, vth=threshold, cum_error=n.cum_error, **exps)
    bias = np.zeros(layer.out_shape) if n.bias is None else per_neuron(n.bias, layer.out_shape).astype(np.float64)
    bias = to_lava_layout(bias[..., None])[..., 0]
    if fixed:
        bias = to_int_exact(bias, W_SCALE, f"{layer.name} bias").astype(np.int32)
    mode_ = ActivationMode.RELU if n.activation == "relu" else ActivationMode.UNIT
    return SigmaDeltaProc(shape=shape, vth=threshold, bias=bias, act_mode=mode_, cum_error=n.cum_error, **exps)


def _in_bits(net: LoihiNet, i: int) -> int:
    """Message bits of the spikes into layer i: the graded payload of the layer before (or of a graded input)."""
    prev = net.layers[i - 1].neuron if i > 0 else net.layers[0].neuron
    return int(prev.message_bits) if prev.kind == "sigma_delta" else 0


def _synapse(one: Layer, mode: str, sparse_below: float, delays: np.ndarray | None, copies: int = 1,
             bits: int = 0, binary_in: bool = True):
    """The synapse of ``copies`` copies of layer ``one`` side by side (``bits``: graded input messages;
    ``binary_in``: its input is 0/1 spikes, which a ``Sparse`` takes on its faster graded path)."""
    what = f"{one.name} weights"
    if one.op == "dense":
        w = one.dense_weight()
        density = np.count_nonzero(w) / max(w.size, 1)
        return _dense(w, mode, density < sparse_below, what, delays, copies, bits, binary_in)
    fitted = lava_batch.unrolled_kernel(one, mode, bits)
    if fitted is not None:
        from lava.proc.sparse.process import Sparse

        mant, weight_bits, exp = fitted
        return Sparse(weights=lava_batch.unrolled_conv(one, mant, copies), num_weight_bits=weight_bits,
                      weight_exp=exp, num_message_bits=lava_batch.SPARSE_MESSAGE_BITS if binary_in else 0), "Sparse"
    layer = lava_batch.replicate_layer(one, copies)
    if layer.op == "conv":
        return _conv(layer.weight, layer.in_shape, layer, layer.groups, mode, what, bits)
    channels = layer.in_shape[0]
    if layer.op == "pool":
        k = layer.kernel
        kernel = np.full((channels, 1, k[0], k[1]), float(np.asarray(layer.weight).reshape(-1)[0]))
        return _conv(kernel, layer.in_shape, layer, channels, mode, what, bits)
    if layer.op == "input":
        scale = float(np.asarray(layer.weight).reshape(-1)[0])
        if len(layer.in_shape) == 3:
            return _conv(np.full((channels, 1, 1, 1), scale), layer.in_shape, layer, channels, mode, what)
        return _input_scale(channels, scale, mode, what)
    raise UserError(f"{layer.name}: layer op {layer.op!r} has no Lava mapping")


def _input_scale(size: int, scale: float, mode: str, what: str):
    """An element-wise input scale as a diagonal ``Sparse`` (built sparse: ``size`` grows with the copies)."""
    from lava.proc.sparse.process import Sparse

    params = _synapse_weights(np.array([[scale]]), mode, what)
    weight = params.pop("weights")
    return Sparse(weights=lava_batch.scaled_identity(size, weight.reshape(-1)[0], weight.dtype), **params), "Sparse"


def synapse_kinds(net: LoihiNet, sparse_below: float = DEFAULT_SPARSE_BELOW, copies: int = 1,
                  mode: str = "fixed_pt") -> list[str]:
    """The Lava synapse process each layer of ``net`` gets in :func:`build_lava` (without building it)."""
    kinds = []
    for i, layer in enumerate(net.layers):
        if layer.op != "dense":
            unrolled = lava_batch.unrolled_kernel(layer, mode, _in_bits(net, i)) is not None
            kinds.append("Sparse" if unrolled or (layer.op == "input" and len(layer.in_shape) == 1) else "Conv")
            continue
        w = layer.dense_weight()
        sparse = copies > 1 or np.count_nonzero(w) / max(w.size, 1) < sparse_below
        delayed = i > 0 and _delay_mode(net, i - 1) == "synapse"
        kinds.append(("Delay" if delayed else "") + ("Sparse" if sparse else "Dense"))
    return kinds


def _delay_mode(net: LoihiNet, i: int) -> str | None:
    """How layer i's axonal delays run: ``synapse`` (DelayDense/DelaySparse of the next dense layer, as on Loihi),
    ``axon`` (snndeploy's AxonDelay process: before a conv or pool, per-channel delays, or after the last layer)."""
    layer = net.layers[i]
    if layer.delay is None or not np.any(np.asarray(layer.delay)):
        return None
    if int(np.max(layer.delay)) > MAX_DELAY or int(np.min(layer.delay)) < 0:
        raise UserError(f"{layer.name}: axonal delays must lie in 0..{MAX_DELAY}")
    nxt = net.layers[i + 1] if i + 1 < len(net.layers) else None
    if nxt is not None and nxt.op == "dense" and np.size(layer.delay) == layer.size:
        return "synapse"
    return "axon"


def _bias_axon(layer: Layer, index: int, steps: int, mode: str, copies: int):
    """The always-on input axon of a layer with a synaptic bias: a source spiking every step from ``index`` on (when
    the sample's first input reaches layer ``index``), through one synapse column of the bias values; its OutPort.
    ``steps``: the sample's steps; the source replays them, so samples run back to back each switch it on anew."""
    from lava.proc.io.source import RingBuffer as Source

    on = np.zeros((1, steps), dtype=np.float64 if mode == "floating_pt" else np.int64)
    on[:, index:] = 1
    shape = lava_batch.copies_shape(layer.out_shape, copies)
    bias = np.tile(np.asarray(layer.syn_bias, dtype=np.float64).reshape(-1), copies).reshape(shape)  # C-major
    column = to_lava_layout(bias[..., None])[..., 0].reshape(-1, 1)  # Lava's XYC order, as the neurons
    try:
        synapse, _ = _dense(column, mode, False, f"{layer.name} synaptic bias")
    except ValueError as exc:
        raise UserError(f"{exc}; {OFF_GRID_HINT}") from None
    Source(data=on).s_out.connect(synapse.s_in)
    return synapse.a_out.reshape(xyc(shape))


def build_lava(net: LoihiNet, spikes: np.ndarray, *, mode: str = "fixed_pt",
               sparse_below: float = DEFAULT_SPARSE_BELOW, reset_interval: int | None = None,
               record: str = "all", sample_steps: int | None = None, copies: int = 1,
               state_ports: tuple[int, ...] = (), bias_feed: np.ndarray | None = None,
               copy_steps: np.ndarray | None = None, count_steps: int | None = None) -> LavaNetwork:
    """Build the Lava processes of ``net`` fed with ``spikes`` (IR layout ``(*input_shape, T)``).

    ``copies > 1``: that many independent copies of the network side by side (:mod:`snndeploy.export.lava_batch`),
    ``spikes`` of shape ``(copies, *input_shape, T)``; every layer's processes, Vars and sinks hold the copies
    stacked on the leading axis (``lava_batch.split_copies``).
    ``state_ports``: layers whose neurons send ``u`` and ``v`` out every step (``u_out``/``v_out``), far cheaper
    than reading them as Vars.

    ``reset_interval`` (samples of that many steps, back to back): layer i's ``u`` and ``v`` are zeroed
    every interval, ``i`` steps late, as the sample reaches it through i synapse delays (netx's scheme).
    ``record``: ``all`` puts a spike sink on every layer, ``output`` only on the last (one process less per layer).
    ``sample_steps`` (samples of that many steps fed back to back through the source, as ``snndeploy simulate``
    does): at every sample's first step (1-based step ``k * sample_steps + 1``) every layer zeroes its ``u`` and
    ``v`` and drops that step's synaptic input, the previous sample's last spikes (``lava_procs.SampleLIF``, no
    extra process), so that every sample runs as if alone, biases included. ``bias_feed`` (with
    ``sample_steps``; IR layout ``(*input_shape, T)``, copies stacked like ``spikes``): a bias mantissa per input
    neuron and step, in place of the input layer's own bias, through a second source (a sample fed as a current).
    ``copy_steps`` (with ``sample_steps``, one value per copy): copy b's neurons rest after that many steps
    (copies padded with idle samples add no activity). ``count_steps`` (with ``sample_steps``): every neuron's
    ``spike_count`` Var counts its spikes over that many steps (all steps if None).
    """
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    if mode not in MODES:
        raise UserError(f"unknown Lava mode {mode!r} (use {' or '.join(MODES)})")
    if record not in ("all", "output", "none"):
        raise UserError(f"unknown record option {record!r} (use all, output or none)")
    if sample_steps is not None and reset_interval is not None:
        raise UserError("give either reset_interval or sample_steps, not both")
    if bias_feed is not None and (sample_steps is None or net.layers[0].op != "input"):
        raise UserError("a bias feed needs sample_steps and a first input layer")
    checks.check_net(net)
    sd = is_sigma_delta(net)
    if sd and (copies > 1 or sample_steps or reset_interval):
        raise UserError("sigma-delta networks run one sample per build (no copies, resets or back-to-back samples)")
    spikes = validate.check_spikes(np.asarray(spikes), None, signed=True)  # graded inputs may be negative
    if sd:
        spikes = spikes * sd_input_scale(net, mode)
    if copies > 1:
        if spikes.shape[0] != copies:
            raise UserError(f"{spikes.shape[0]} input samples for {copies} copies")
        spikes = lava_batch.stack_copies(spikes)
    if tuple(spikes.shape[:-1]) != lava_batch.copies_shape(tuple(net.input_shape), copies):
        raise UserError(f"input of shape {spikes.shape[:-1]} does not match the network input {net.input_shape}")
    delay_modes = [_delay_mode(net, i) for i in range(len(net.layers))]
    steps = int(spikes.shape[-1])
    binary_in = bool(np.isin(spikes, (0, 1)).all())
    source = Source(data=to_lava_layout(spikes.astype(np.float64 if mode == "floating_pt" else np.int64)))
    lava = LavaNetwork(net=net, mode=mode, steps=steps, source=source, copies=copies)
    port, port_shape = source.s_out, lava_batch.copies_shape(tuple(net.input_shape), copies)
    for i, one in enumerate(net.layers):
        layer = lava_batch.replicate_layer(one, copies)
        delays = None
        if i > 0 and delay_modes[i - 1] == "synapse":
            delays = np.broadcast_to(np.asarray(net.layers[i - 1].delay, dtype=np.int64).reshape(1, -1),
                                     (one.size, int(np.prod(one.in_shape))))
        try:
            if i == 0 and bias_feed is not None:  # the feed carries the whole bias
                layer = replace(layer, neuron=replace(layer.neuron, bias=None))
            active = None if copy_steps is None else to_lava_layout(
                np.repeat(np.asarray(copy_steps, dtype=np.int64), one.size).reshape(layer.out_shape)[..., None])[..., 0]
            neuron = _neuron(layer, mode, sample_steps, i in state_ports, active, count_steps)
        except ValueError as exc:
            raise UserError(f"{exc}; {OFF_GRID_HINT}") from None
        if layer.op == "input" and layer.neuron.kind == "sigma_delta":  # netx's delta encoder: no synapse
            synapse, kind = None, ""
            port.connect(neuron.a_in)
        else:
            try:
                synapse, kind = _synapse(one, mode, sparse_below, delays, copies, _in_bits(net, i),
                                         i > 0 or binary_in)
            except ValueError as exc:  # weights off the Loihi grid or beyond 8 bits
                raise UserError(f"{exc}; {OFF_GRID_HINT}") from None
            unrolled = kind == "Sparse" and len(layer.out_shape) == 3  # a conv as its XYC-ordered matrix
            if len(port_shape) > 1 and (layer.flatten or layer.op == "dense"):
                port.transpose([2, 1, 0]).flatten().connect(synapse.s_in)  # XYC -> CHW order, then flat
            elif unrolled:
                port.flatten().connect(synapse.s_in)
            else:
                port.connect(synapse.s_in)
            if unrolled:
                synapse.a_out.reshape(neuron.a_in.shape).connect(neuron.a_in)
            else:
                synapse.a_out.connect(neuron.a_in)
        if one.syn_bias is not None:
            _bias_axon(one, i, sample_steps or steps, mode, copies).connect(neuron.a_in)
        recurrent = None
        if one.recurrent is not None:
            rec_w = np.asarray(one.recurrent, dtype=np.float64)
            try:
                recurrent, _ = _dense(rec_w, mode, np.count_nonzero(rec_w) / rec_w.size < sparse_below,
                                      f"{layer.name} recurrent weights", copies=copies)
            except ValueError as exc:
                raise UserError(f"{exc}; {OFF_GRID_HINT}") from None
            neuron.s_out.connect(recurrent.s_in)
            recurrent.a_out.connect(neuron.a_in)
        sink = None
        if record == "all" or (record == "output" and i == len(net.layers) - 1):
            sink = Sink(shape=neuron.s_out.shape, buffer=steps)
            neuron.s_out.connect(sink.a_in)
        lava.layers.append(LavaLayer(layer.name, synapse, neuron, sink, recurrent, kind))
        if i == 0 and bias_feed is not None:
            fed = to_lava_layout(np.asarray(bias_feed, dtype=np.float64 if mode == "floating_pt" else np.int64))
            Source(data=fed).s_out.connect(neuron.bias_in)
        if reset_interval:
            from lava.proc.io.reset import Reset

            for var in (neuron.u, neuron.v):
                Reset(interval=int(reset_interval), offset=i - 1).connect_var(var)
        port, port_shape = neuron.s_out, layer.out_shape
        if delay_modes[i] == "axon":
            from snndeploy.export.lava_procs import AxonDelay

            # Lava's model search re-executes every module of this package by file path; the dataclass modules
            # cannot run outside their package (harmless: they hold no ProcessModels), which Lava warns about.
            warnings.filterwarnings("ignore", message=r"Cannot import module .* searching ProcessModels for "
                                    r"Process 'AxonDelay'")

            per = per_neuron(np.asarray(layer.delay, dtype=np.int64), layer.out_shape)
            axon = AxonDelay(delays=to_lava_layout(per[..., None])[..., 0], max_delay=MAX_DELAY)
            neuron.s_out.connect(axon.s_in)
            port = axon.s_out
    return lava


def check_buildable(net: LoihiNet, mode: str = "fixed_pt") -> None:
    """Build ``net``'s Lava processes once, unrun, so that a network Lava cannot hold in ``mode`` (weights off
    Loihi's grid, per-neuron decays, ...) is refused with build_lava's message before anything runs or is
    written."""
    build_lava(net, np.zeros((*net.input_shape, 1)), mode=mode, record="none")


def run_lava(lava: LavaNetwork, *, probe: tuple[int, ...] = (), timeout_s: float = 600.0,
             sigma: bool = False) -> LavaRun:
    """Run all steps; ``probe`` lists layer indices whose ``u`` and ``v`` are read after every step; ``sigma``
    reads every sigma-delta layer's ``sigma`` after every step."""

    proc = lava.layers[0].neuron
    cfg = lava.run_config()
    u: dict[int, list] = {i: [] for i in probe}
    v: dict[int, list] = {i: [] for i in probe}
    sigmas = [i for i, layer in enumerate(lava.net.layers) if sigma and layer.neuron.kind == "sigma_delta"
              and layer.op != "input"]
    sig: dict[int, list] = {i: [] for i in sigmas}
    with lava_runner.lava_session(proc):
        if probe or sigmas:
            for _ in range(lava.steps):
                lava_runner.run_steps(proc, 1, cfg, timeout_s=timeout_s, stop_after=False, what="Lava step")
                for i in probe:
                    u[i].append(np.array(lava.layers[i].neuron.u.get()))
                    v[i].append(np.array(lava.layers[i].neuron.v.get()))
                for i in sigmas:
                    sig[i].append(np.array(lava.layers[i].neuron.sigma.get()))
        else:
            lava_runner.run_steps(proc, lava.steps, cfg, timeout_s=timeout_s, stop_after=False, what="Lava run")
        spikes = [from_lava_layout(np.array(layer.sink.data.get())) if layer.sink is not None else None
                  for layer in lava.layers]

    def stack(values: list) -> np.ndarray:
        return from_lava_layout(np.stack(values, axis=-1))

    return LavaRun(spikes=spikes, u={i: stack(x) for i, x in u.items()}, v={i: stack(x) for i, x in v.items()},
                   mode=lava.mode, sigma={i: stack(x) for i, x in sig.items()})


def simulate_lava(net: LoihiNet, spikes: np.ndarray, *, mode: str = "fixed_pt",
                  sparse_below: float = DEFAULT_SPARSE_BELOW, probe: tuple[int, ...] = ()) -> LavaRun:
    """Build and run ``net`` on ``spikes`` in one call."""
    return run_lava(build_lava(net, spikes, mode=mode, sparse_below=sparse_below), probe=probe)
