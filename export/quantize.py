"""Put a float network (e.g. another tool's NIR graph) on Loihi's fixed-point grid, layer by layer.

A CUBA layer's spikes do not change when its input weights (and recurrent weights), bias and threshold are all
multiplied by the same factor ``k`` (u and v scale by ``k``). So each layer is scaled to use the 8-bit weight
range fully (mixed-sign weights: even integers in [-256, 254], Loihi drops the lowest bit) and then rounded: the
only change is the rounding, which the report quantifies. Layers already on the grid are left untouched, so
SLAYER models (quantized in training) pass through unchanged. A non-spiking read-out's voltage scales by ``k``
(recorded as ``v_scale`` in the layer's ``meta``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from snndeploy.export.ir import MAX_VTH_MANT, W_SCALE, Layer, LoihiNet, require_cuba

MAX_BIAS_MANT = 4095  # 13-bit signed bias mantissa


def fit_weights(w_int: np.ndarray, what: str) -> tuple[np.ndarray, int, int]:
    """Integer weights -> (mantissas, num_weight_bits, weight_exp) that Lava's bit-accurate Dense keeps exactly.

    Lava clips mantissas to 8 bits plus sign and, for mixed-sign matrices, drops the lowest bit; the
    exponent shifts the accumulated sum. The shift keeps every weight exact or raises ValueError.
    """
    w = np.asarray(w_int, dtype=np.int64)
    lo, hi = int(w.min(initial=0)), int(w.max(initial=0))
    mixed = lo < 0 < hi
    lim_lo, lim_hi = (-256, 254) if mixed else ((-255, 0) if hi <= 0 else (0, 255))
    for shift in range(8, -9, -1):  # weight_exp = -shift
        scaled = w << shift if shift >= 0 else w >> -shift
        if shift < 0 and np.any((w & ((1 << -shift) - 1)) != 0):
            continue
        if scaled.min(initial=0) < lim_lo or scaled.max(initial=0) > lim_hi:
            continue
        if mixed and np.any(scaled & 1):
            continue
        return scaled, 8, -shift
    raise ValueError(f"{what}: integer weights in [{lo}, {hi}] do not fit Loihi's 8-bit synapse exactly")


def _on_grid(layer: Layer) -> bool:
    for v in _synaptic(layer):
        ints = np.round(v * W_SCALE)
        if not np.allclose(ints, v * W_SCALE, rtol=0, atol=1e-9):
            return False
        try:
            fit_weights(ints.astype(np.int64), layer.name)
        except ValueError:
            return False
    th = np.asarray(layer.neuron.threshold, dtype=np.float64) * W_SCALE
    bias = np.zeros(1) if layer.neuron.bias is None else np.asarray(layer.neuron.bias, dtype=np.float64) * W_SCALE
    return bool(np.allclose(np.round(th), th) or not layer.neuron.spiking) and np.allclose(np.round(bias), bias)


def _synaptic(layer: Layer) -> list[np.ndarray]:
    """Everything that reaches the synaptic current: weights, recurrent weights, the synaptic bias (one axon)."""
    return [np.asarray(v, dtype=np.float64) for v in (layer.weight, layer.recurrent, layer.syn_bias) if v is not None]


def _round(w: np.ndarray, k: float, mixed: bool) -> np.ndarray:
    step = 2.0 if mixed else 1.0
    return np.round(w * k * W_SCALE / step) * step / W_SCALE


def quantize_layer(layer: Layer) -> tuple[Layer, dict]:
    """``layer`` scaled and rounded onto the Loihi grid, and a report row."""
    if _on_grid(layer):
        return layer, {"layer": layer.name, "scale": 1.0, "changed": False, "max_weight_error": 0.0}
    w = np.asarray(layer.weight, dtype=np.float64)
    rec = None if layer.recurrent is None else np.asarray(layer.recurrent, dtype=np.float64)
    every = np.concatenate([v.ravel() for v in _synaptic(layer)])
    mixed = bool(every.min(initial=0) < 0 < every.max(initial=0))
    peak = float(np.max(np.abs(every), initial=0.0))
    k = (254.0 if mixed else 255.0) / (W_SCALE * peak) if peak > 0 else 1.0
    n = layer.neuron
    threshold = np.asarray(n.threshold, dtype=np.float64)
    if n.spiking and float(np.max(threshold)) > 0:
        k = min(k, MAX_VTH_MANT / (W_SCALE * float(np.max(threshold))))
    new_w = _round(w, k, mixed)
    new_rec = None if rec is None else _round(rec, k, mixed)
    new_th = np.maximum(np.round(threshold * k * W_SCALE), 1) / W_SCALE if n.spiking else threshold
    bias = None
    if n.bias is not None:
        bias = np.clip(np.round(np.asarray(n.bias, dtype=np.float64) * k * W_SCALE), -MAX_BIAS_MANT - 1,
                       MAX_BIAS_MANT) / W_SCALE
    err = float(np.max(np.abs(new_w - w * k), initial=0.0)) / max(float(np.max(np.abs(w * k), initial=0.0)), 1e-30)
    meta = {**layer.meta, "v_scale": k} if not n.spiking else dict(layer.meta)
    syn_bias = None if layer.syn_bias is None else _round(np.asarray(layer.syn_bias, dtype=np.float64), k, mixed)
    new = replace(layer, weight=new_w, recurrent=new_rec, syn_bias=syn_bias,
                  neuron=replace(n, threshold=new_th, bias=bias), meta=meta)
    return new, {"layer": layer.name, "scale": k, "changed": True, "max_weight_error": err,
                 "threshold": [float(np.ravel(threshold)[0]), float(np.ravel(new_th)[0])]}


def quantize_net(net: LoihiNet) -> tuple[LoihiNet, list[dict]]:
    """Every layer of ``net`` on the Loihi grid (see the module docstring) and one report row per layer."""
    require_cuba(net, "quantization (a sigma-delta layer's scale would carry into the next layer)")
    pairs = [quantize_layer(layer) for layer in net.layers]
    return net.with_layers([p[0] for p in pairs]), [p[1] for p in pairs]
