"""SlayerNet (``snndeploy.models``) <-> :class:`~snndeploy.export.ir.LoihiNet`.

Reading never changes the live model (lava-dl's ``export_hdf5`` removes weight normalisation from the
model it exports; here the normalised weight is computed aside). Weights are taken as the model computes
with them: weight norm, masks and the 8-bit quantization pre-hook applied. Decays are quantized to Loihi's
12 bits exactly as SLAYER's CUBA dynamics do. Building a SlayerNet back gives a model without weight norm
whose raw weights are those effective weights (quantization is idempotent), so both compute the same spikes.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from snndeploy.errors import UserError
from snndeploy.export.ir import DECAY_UNITY, SD_ACTIVATIONS, SD_EXP, W_SCALE, Layer, LoihiNet, Neuron, SigmaDelta
from snndeploy.models.build import build_model
from snndeploy.models.spec import BlockSpec, IOSpec, ModelSpec, NeuronSpec


def _effective_weight(synapse) -> torch.Tensor:
    if hasattr(synapse, "weight_v") and hasattr(synapse, "weight_g"):  # torch weight_norm, computed aside
        w = torch._weight_norm(synapse.weight_v, synapse.weight_g, 0)
    else:
        w = synapse.weight
    hook = getattr(synapse, "pre_hook_fx", None)
    return hook(w) if hook is not None else w


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _is_sigma_delta(block) -> bool:
    return type(getattr(block, "neuron", None)).__module__.rsplit(".", 1)[-1] == "sigma_delta"


def _bias_of(neuron, where: str) -> np.ndarray | None:
    norm = getattr(neuron, "norm", None)
    if norm is None:
        return None
    if not hasattr(norm, "effective"):
        raise UserError(f"{where}: neuron norm {type(norm).__name__} is not supported (only a plain bias)")
    return _np(norm.effective())


def _sigma_delta(block, where: str, sigma_output: bool) -> SigmaDelta:
    """A lava-dl sigma-delta neuron (``slayer.neuron.sigma_delta``) as the IR's SigmaDelta."""
    neuron = block.neuron
    threshold = np.unique(_np(neuron.delta.threshold).reshape(-1))
    if threshold.size > 1:
        raise UserError(f"{where}: per-channel delta thresholds are not supported by Lava's sigma-delta models")
    name = getattr(neuron.activation, "__name__", "")
    if name not in SD_ACTIVATIONS:
        raise UserError(f"{where}: sigma-delta activation {name!r} has no Lava model (only {SD_ACTIVATIONS})")
    vth_mant = int(float(threshold[0]) * W_SCALE)  # as lava-dl's export (its Delta clamps 0 up to 1/4096)
    return SigmaDelta(threshold=np.array(vth_mant / W_SCALE), bias=_bias_of(neuron, where), activation=name,
                      cum_error=bool(neuron.delta.cum_error), sigma_output=sigma_output)


def _neuron(block, where: str, spiking: bool = True) -> Neuron | SigmaDelta:
    from lava.lib.dl.slayer.utils import quantize

    neuron = block.neuron
    if _is_sigma_delta(block):
        return _sigma_delta(block, where, sigma_output=not spiking)
    kind = type(neuron).__module__.rsplit(".", 1)[-1]  # lava-dl names its neuron modules by kind
    if kind != "cuba":
        raise UserError(f"{where}: lava-dl {kind} neurons ({type(neuron).__name__}) have no Loihi CUBA mapping "
                        "(only cuba and sigma_delta blocks export to NIR/Lava)")
    if getattr(neuron, "graded_spike", False):
        raise UserError(f"{where}: graded spikes are not supported by the export")
    i_decay = _np(quantize(neuron.current_decay.detach().clamp(0, DECAY_UNITY))).astype(np.int64)
    v_decay = _np(quantize(neuron.voltage_decay.detach().clamp(0, DECAY_UNITY))).astype(np.int64)
    bias = _bias_of(neuron, where)
    return Neuron(i_decay=i_decay.reshape(-1) if i_decay.size > 1 else i_decay.reshape(()),
                  v_decay=v_decay.reshape(-1) if v_decay.size > 1 else v_decay.reshape(()),
                  threshold=np.array(float(neuron.threshold)), bias=bias, spiking=spiking)


def _sd_input(block, neuron: SigmaDelta, name: str, shape: tuple[int, ...], where: str) -> Layer:
    """lava-dl's sigma-delta Input block as netx's delta encoder (which has no weight or bias)."""
    weight = float(_np(block.pre_hook_fx(block.weight)).reshape(-1)[0]) if block.weight is not None else 1.0
    bias = 0.0 if block.bias is None else float(block.bias.detach().abs().sum())
    if weight != 1.0 or bias != 0.0:
        raise UserError(f"{where}: a sigma-delta input weight or bias has no netx/Lava equivalent (netx's delta "
                        "encoder ignores both)")
    return Layer(name, "input", shape, shape, neuron, np.array(1.0))


def _delay(block, where: str) -> np.ndarray | None:
    delay = getattr(block, "delay", None)
    if not isinstance(delay, torch.nn.Module):
        return None
    values = _np(torch.floor(delay.delay.detach().clamp(0, getattr(delay, "max_delay", 62)))).astype(np.int64)
    return values.reshape(-1)


def from_slayer(model) -> LoihiNet:
    """The LoihiNet of a SlayerNet (``model.spec`` and ``model.blocks``); unsupported blocks are named."""
    spec = model.spec
    shapes = spec.shapes()
    in_shape = tuple(spec.input_shape)
    layers: list[Layer] = []
    flatten = False
    for i, (bspec, block) in enumerate(zip(spec.blocks, model.blocks, strict=True)):
        where = f"block {i} ({bspec.kind})"
        out_shape = tuple(shapes[i])
        if getattr(block, "delay_shift", True) is False and not _is_sigma_delta(block):
            raise UserError(f"{where}: delay_shift=False has no Lava equivalent (every synapse adds one step)")
        if bspec.kind == "flatten":
            flatten = True
            in_shape = out_shape
            continue
        name = f"b{i}_{bspec.kind}"
        if bspec.kind == "input":
            if block.neuron is None:
                continue
            weight = float(_np(block.pre_hook_fx(block.weight)).reshape(-1)[0]) if block.weight is not None else 1.0
            neuron = _neuron(block, where)
            if neuron.kind == "sigma_delta":
                layers.append(_sd_input(block, neuron, name, in_shape, where))
                continue
            if block.bias is not None and float(block.bias.detach().abs().sum()) != 0.0:
                if not np.all(neuron.i_decay == DECAY_UNITY):
                    raise UserError(f"{where}: an input bias with current decay < 1 has no Loihi equivalent")
                neuron = replace(neuron, bias=_np(block.pre_hook_fx(block.bias)).reshape(-1))
            layers.append(Layer(name, "input", in_shape, out_shape, neuron, np.array(weight)))
        elif bspec.kind in ("dense", "affine"):
            w = _np(_effective_weight(block.synapse)).reshape(out_shape[0], -1)
            mask = getattr(block, "mask", None)
            if mask is not None:
                w = w * _np(mask).reshape(w.shape)
            neuron = _neuron(block, where, spiking=bspec.kind == "dense")
            layers.append(Layer(name, "dense", (w.shape[1],), out_shape, neuron, w, flatten=flatten,
                                delay=_delay(block, where)))
        elif bspec.kind == "conv":
            w = _np(_effective_weight(block.synapse))
            w = w.reshape(w.shape[:4])
            layers.append(Layer(name, "conv", in_shape, out_shape, _neuron(block, where), w,
                                stride=bspec.pair("stride"), padding=bspec.pair("padding"),
                                dilation=bspec.pair("dilation"), groups=bspec.groups, delay=_delay(block, where)))
        elif bspec.kind == "pool":
            w = _np(_effective_weight(block.synapse)).reshape(-1)
            if np.unique(w).size != 1:
                raise UserError(f"{where}: a pooling kernel with unequal weights is not sum pooling")
            layers.append(Layer(name, "pool", in_shape, out_shape, _neuron(block, where), np.array(w[0]),
                                stride=bspec.pair("stride"), padding=bspec.pair("padding"),
                                dilation=bspec.pair("dilation"), kernel=bspec.pair("kernel"),
                                delay=_delay(block, where)))
        else:
            raise UserError(f"{where}: block kind {bspec.kind!r} is not supported by the export")
        flatten = False
        in_shape = out_shape
    if not layers:
        raise UserError(f"model {spec.name!r} has no exportable layers")
    return LoihiNet(name=spec.name, input_shape=tuple(spec.input_shape), layers=tuple(layers),
                    time_steps=spec.time_steps, meta={"quantize": bool(spec.quantize), "io": spec.io})


def _neuron_spec(neuron: Neuron | SigmaDelta, base):
    if neuron.kind == "sigma_delta":
        if np.unique(np.asarray(neuron.threshold)).size > 1 or neuron.spike_exp != SD_EXP or neuron.cum_error:
            raise UserError("per-neuron delta thresholds, cum_error or another spike_exp cannot be expressed in a "
                            "SLAYER spec")
        return replace(base or NeuronSpec(), kind="sigma_delta", activation=neuron.activation,
                       threshold=float(np.asarray(neuron.threshold).reshape(-1)[0]))

    for name, value in (("current decay", neuron.i_decay), ("voltage decay", neuron.v_decay),
                        ("threshold", neuron.threshold)):
        if np.unique(np.asarray(value)).size > 1:
            raise UserError(f"per-neuron {name} cannot be expressed in a SLAYER model spec")
    base = base or NeuronSpec()
    threshold = float(np.asarray(neuron.threshold).reshape(-1)[0])
    return replace(base, kind="cuba", threshold=threshold if neuron.spiking and threshold > 0 else base.threshold,
                   current_decay=float(np.asarray(neuron.i_decay).reshape(-1)[0]) / DECAY_UNITY,
                   voltage_decay=float(np.asarray(neuron.v_decay).reshape(-1)[0]) / DECAY_UNITY)


def spec_of(net: LoihiNet, *, quantize: bool | None = None, base_neuron=None):
    """The ModelSpec that rebuilds ``net`` as a SlayerNet (unsupported features named)."""

    blocks = []
    neurons = []
    prev_shape = tuple(net.input_shape)
    for layer in net.layers:
        if layer.recurrent is not None:
            raise UserError(f"{layer.name}: recurrent layers cannot be built as a SLAYER model spec yet")
        if len(prev_shape) > 1 and layer.op == "dense":
            blocks.append(BlockSpec("flatten"))
            neurons.append(None)
        has_bias = layer.neuron.bias is not None and layer.op != "input"
        if layer.op == "input":
            block = BlockSpec("input")
        elif layer.op == "dense":
            block = BlockSpec("dense" if layer.neuron.spiking else "affine", out=layer.size,
                              delay=layer.delay is not None, bias=has_bias and layer.neuron.spiking)
            if not layer.neuron.spiking and layer.neuron.bias is not None:
                raise UserError(f"{layer.name}: a non-spiking read-out with bias has no SLAYER affine equivalent")
        else:
            kernel = tuple(layer.kernel) if layer.op == "pool" else tuple(np.asarray(layer.weight).shape[-2:])
            block = BlockSpec(layer.op, out=layer.out_shape[0] if layer.op == "conv" else None, kernel=kernel,
                              stride=tuple(layer.stride), padding=tuple(layer.padding),
                              dilation=tuple(layer.dilation),
                              groups=layer.groups if layer.op == "conv" else 1, delay=layer.delay is not None,
                              bias=has_bias)
        blocks.append(block)
        neurons.append(_neuron_spec(layer.neuron, base_neuron))
        prev_shape = layer.out_shape
    model_neuron = next(n for n in neurons if n is not None)
    blocks = [b if n is None or n == model_neuron else replace(b, neuron=n) for b, n in zip(blocks, neurons,
                                                                                              strict=True)]
    if quantize is None:
        quantize = bool(net.meta.get("quantize", True))
    return ModelSpec(name=net.name, input_shape=tuple(net.input_shape), blocks=tuple(blocks),
                     time_steps=int(net.time_steps or 25), neuron=model_neuron, quantize=quantize,
                     io=net.meta.get("io") or IOSpec())


def to_slayer(net: LoihiNet, *, quantize: bool | None = None, base_neuron=None):
    """Build a SlayerNet computing ``net`` (weights loaded; quantization as recorded, else on)."""

    spec = spec_of(net, quantize=quantize, base_neuron=base_neuron)
    model = build_model(spec)
    layers = iter(net.layers)
    with torch.no_grad():
        for bspec, block in zip(spec.blocks, model.blocks, strict=True):
            if bspec.kind == "flatten":
                continue
            layer = next(layers)
            _load(block, bspec, layer)
    return model


def _tensor(a, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=like.dtype).reshape(like.shape)


def _load(block, bspec, layer: Layer) -> None:
    if bspec.kind == "input":
        if block.weight is None:  # a sigma-delta input: netx's delta encoder (checked weight 1, no bias)
            return
        block.weight.data = _tensor(np.asarray(layer.weight).reshape(1), block.weight)
        if layer.neuron.bias is not None:
            bias = np.asarray(layer.neuron.bias).reshape(-1)
            if bias.size != 1:
                raise UserError(f"{layer.name}: a per-neuron input bias cannot be expressed in the SLAYER Input block")
            block.bias.data = _tensor(bias, block.bias)
        return
    synapse = block.synapse
    if bspec.kind == "pool":
        synapse.weight.data = torch.full_like(synapse.weight, float(np.asarray(layer.weight).reshape(-1)[0]))
    else:
        synapse.weight.data = _tensor(layer.weight, synapse.weight)
    if bspec.bias and layer.neuron.bias is not None:
        norm = block.neuron.norm
        norm.value.data = _tensor(_bias_values(layer, norm.value.numel()), norm.value)
    if bspec.delay and layer.delay is not None:
        block.delay.delay.data = _tensor(layer.delay, block.delay.delay)


def _bias_values(layer: Layer, count: int) -> np.ndarray:
    """The layer's bias as SLAYER's NeuronBias holds it: one value per output channel (or neuron)."""
    bias = np.asarray(layer.neuron.bias, dtype=np.float64).reshape(-1)
    if bias.size == 1:
        return np.full(count, bias[0])
    if bias.size == count:
        return bias
    per_channel = bias.reshape(layer.out_shape[0], -1)
    if not np.all(per_channel == per_channel[:, :1]):
        raise UserError(f"{layer.name}: a per-neuron conv bias cannot be expressed in SLAYER (per channel only)")
    return per_channel[:, 0]
