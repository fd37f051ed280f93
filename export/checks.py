"""The IR's values and shapes, checked before anything is built or written from it (:func:`check_net`).

Every reader calls it on the net it built and every exporter before writing: weights, biases, thresholds and
decays finite and inside what Loihi represents, no zero-size layer, shapes that agree from layer to layer. The
file-level checks (content, sizes) are :mod:`snndeploy.validate`, which this builds on.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from snndeploy.errors import UserError
from snndeploy.export.ir import DECAY_UNITY, MAX_VTH_MANT, W_SCALE, Layer, LoihiNet
from snndeploy.validate import BIAS_RANGE, WEIGHT_RANGE, require_values


def _layer_arrays(layer: Layer) -> list[tuple[str, object, dict]]:
    """(tensor name, values, bounds) of everything a layer carries into an export."""
    n = layer.neuron
    rows: list[tuple[str, object, dict]] = [("weight", layer.weight, {})]
    if n.kind == "cuba":
        rows += [("current decay", n.i_decay, {"lo": 0, "hi": DECAY_UNITY}),
                 ("voltage decay", n.v_decay, {"lo": 0, "hi": DECAY_UNITY})]
    if n.spiking or n.kind == "sigma_delta":
        rows.append(("threshold", n.threshold, {"lo": 0, "hi": MAX_VTH_MANT / W_SCALE}))
    else:  # a voltage read-out ignores its threshold, which may be +inf (other tools' way to say so)
        rows.append(("threshold", n.threshold, {"finite": False}))
    if n.bias is not None:
        rows.append(("bias", n.bias, {}))
    if layer.recurrent is not None:
        rows.append(("recurrent weight", layer.recurrent, {}))
    if layer.syn_bias is not None:
        rows.append(("synaptic bias", layer.syn_bias, {}))
    if layer.delay is not None:
        rows.append(("delay", layer.delay, {"lo": 0}))
    return rows


def check_net(net: LoihiNet, path: str | Path | None = None, *, integer_ranges: bool = False,
              clip_weights: bool = False) -> LoihiNet:
    """Refuse a network with a non-finite or out-of-range parameter, a zero-size layer or disagreeing shapes.

    ``integer_ranges``: the file stores Loihi integers (netx), so weights and biases must also fit Loihi's
    mantissas; with ``clip_weights`` weights outside are clipped instead (the caller asked for it knowingly).
    Returns ``net``, or a copy with clipped weights.
    """
    try:
        _check_shapes(net)
        layers = [_check_layer(i, layer, integer_ranges, clip_weights) for i, layer in enumerate(net.layers)]
    except UserError as exc:
        raise UserError(exc.problem, path if exc.path is None else exc.path) from None
    return net.with_layers(layers)


def _check_layer(i: int, layer: Layer, integer_ranges: bool, clip_weights: bool) -> Layer:
    where = f"layer {i} ({layer.name})"
    for name, values, bounds in _layer_arrays(layer):
        require_values(f"{where} {name}", values, **bounds)
    if not integer_ranges:
        return layer
    if layer.neuron.bias is not None:
        require_values(f"{where} bias", np.round(np.asarray(layer.neuron.bias) * W_SCALE), lo=BIAS_RANGE[0],
                       hi=BIAS_RANGE[1], unit=" (Loihi mantissa)")
    for attr in ("weight", "recurrent", "syn_bias"):
        values = getattr(layer, attr)
        if values is None:
            continue
        if clip_weights:  # clip only: weights off the integer grid (float models) keep their values
            bounds = (WEIGHT_RANGE[0] / W_SCALE, WEIGHT_RANGE[1] / W_SCALE)
            layer = replace(layer, **{attr: np.clip(np.asarray(values, dtype=np.float64), *bounds)})
            continue
        ints = np.round(np.asarray(values, dtype=np.float64) * W_SCALE)
        require_values(f"{where} {attr}", ints, lo=WEIGHT_RANGE[0], hi=WEIGHT_RANGE[1], unit=" (Loihi integer)",
                       hint=" (8-bit weights; pass --clip-weights to clip knowingly)")
    return layer


def _check_shapes(net: LoihiNet) -> None:
    if not net.layers:
        raise UserError("the network has no layers")
    shape = tuple(net.input_shape)
    for i, layer in enumerate(net.layers):
        where = f"layer {i} ({layer.name})"
        if 0 in layer.out_shape or 0 in layer.in_shape or not layer.out_shape:
            raise UserError(f"{where} has a zero-size shape {layer.in_shape} -> {layer.out_shape}")
        expected = (int(np.prod(shape)),) if layer.flatten else shape
        if int(np.prod(layer.in_shape)) != int(np.prod(expected)):
            raise UserError(f"{where} takes input of shape {layer.in_shape} but receives {shape}")
        w = np.asarray(layer.weight)
        if layer.op == "dense" and w.size != layer.size * int(np.prod(layer.in_shape)):
            raise UserError(f"{where} weight of shape {w.shape} does not connect {layer.in_shape} to "
                            f"{layer.out_shape}")
        if layer.op == "conv" and (w.ndim != 4 or w.shape[0] != layer.out_shape[0]
                                   or w.shape[1] * layer.groups != layer.in_shape[0]):
            raise UserError(f"{where} kernel of shape {w.shape} does not map {layer.in_shape[0]} to "
                            f"{layer.out_shape[0]} channels")
        if layer.recurrent is not None and np.asarray(layer.recurrent).size != layer.size ** 2:
            raise UserError(f"{where} recurrent weight of shape {np.shape(layer.recurrent)} does not fit "
                            f"{layer.size} neurons")
        if layer.syn_bias is not None and (layer.op != "dense" or np.asarray(layer.syn_bias).size != layer.size):
            raise UserError(f"{where} synaptic bias of shape {np.shape(layer.syn_bias)}: one value per neuron of a "
                            "dense layer is supported")
        shape = tuple(layer.out_shape)
