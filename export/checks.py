"""The IR's values and shapes, checked before anything is built or written from it (:func:`check_net`).

Every reader calls it on the net it built and every exporter before writing: weights, biases, thresholds and
decays finite and inside what Loihi represents. Shapes are checked when the IR is created (:mod:`.ir`); the
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
    """Refuse a network with a non-finite or out-of-range parameter (shapes were checked when it was created).

    ``integer_ranges``: the file stores Loihi integers (netx), so weights and biases must also fit Loihi's
    mantissas; with ``clip_weights`` weights outside are clipped instead (the caller asked for it knowingly).
    Returns ``net``, or a copy with clipped weights.
    """
    try:
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
