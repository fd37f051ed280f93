"""A torch reference of a sigma-delta :class:`~snndeploy.export.ir.LoihiNet`, step for step as Lava runs it.

``fixed_pt`` follows Lava's ``lava.proc.sdn`` fixed-point models and netx's wiring bit for bit (docs/sdnn.md):
integer states, ``spike_exp``/``state_exp`` shifts, the 6 dropped bits of every sent spike, one step of delay per
synapse, Lava's 24-bit wrap of convolution outputs; ``floating_pt`` is the same recurrence on SLAYER's floats
(``spike_exp = state_exp = 0``). Outputs are in Loihi's integer payload units in both modes, like
``snndeploy simulate``. SLAYER's own sigma-delta blocks are float and do not truncate, so they are not a bit-exact
reference for fixed_pt; this is.
"""

from __future__ import annotations

import numpy as np
import torch

from snndeploy.export.ir import W_SCALE, Layer, LoihiNet, per_neuron
from snndeploy.export.lava_net import sd_input_scale, sd_output_scale

CONV_BITS = 24  # Lava's fixed-point Conv wraps its output to 24 signed bits


def _wrap(x: torch.Tensor, bits: int) -> torch.Tensor:
    half = 1 << (bits - 1)
    return torch.remainder(x + half, 1 << bits) - half


def _synapse(layer: Layer, x: torch.Tensor, fixed: bool) -> torch.Tensor:
    """``x`` ``(T, *in_shape)`` -> ``(T, *out_shape)``; fixed: integer weights on integer payloads (exact in
    float64 below 2**53)."""
    scale = W_SCALE if fixed else 1.0
    if layer.op == "dense":
        w = torch.as_tensor(np.round(layer.dense_weight() * scale) if fixed else layer.dense_weight())
        return x.reshape(x.shape[0], -1) @ w.T
    w = torch.as_tensor(np.round(np.asarray(layer.weight, np.float64) * scale) if fixed else
                        np.asarray(layer.weight, np.float64))
    out = torch.nn.functional.conv2d(x, w, stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                                     groups=layer.groups)
    return _wrap(torch.round(out), CONV_BITS) if fixed else out


def _delta(act: torch.Tensor, state: dict, vth, cum_error: bool) -> torch.Tensor:
    """One step of Lava's delta encoder on ``act``; updates ``state`` (act, residue, error)."""
    delta = act - state["act"] + state["residue"]
    if cum_error:
        state["error"] = state["error"] + delta
        sent = torch.where(state["error"].abs() >= vth, delta, torch.zeros_like(delta))
        state["error"] = state["error"] * (sent == 0)
    else:
        sent = torch.where(delta.abs() >= vth, delta, torch.zeros_like(delta))
    state["residue"] = delta - sent
    state["act"] = act
    return sent


def _layer(layer: Layer, a_in: torch.Tensor, fixed: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(outputs, sigma) ``(T, *out_shape)`` of one sigma-delta layer for its input ``a_in`` per step."""
    n = layer.neuron
    shift = n.spike_exp + n.state_exp if fixed else 0
    zeros = torch.zeros(a_in.shape[1:], dtype=a_in.dtype)
    state = {"act": zeros, "residue": zeros, "error": zeros, "sigma": zeros}
    vth = float(np.unique(np.asarray(n.threshold))[0]) * (W_SCALE * (1 << shift) if fixed else 1.0)
    bias = 0.0 if n.bias is None else torch.as_tensor(per_neuron(n.bias, layer.out_shape).astype(np.float64))
    bias = bias * (W_SCALE * (1 << shift)) if fixed else bias
    outs, sigmas = [], []
    for t in range(a_in.shape[0]):
        if layer.op == "input":  # the encoder: no sigma, its input shifted into state units
            sent = _delta(a_in[t] * (1 << shift), state, vth, n.cum_error)
        else:
            state["sigma"] = state["sigma"] + a_in[t]
            if n.sigma_output:
                outs.append(state["sigma"])
                sigmas.append(state["sigma"])
                continue
            act = state["sigma"] + bias
            sent = _delta(torch.relu(act) if n.activation == "relu" else act, state, vth, n.cum_error)
        outs.append(torch.div(sent, 1 << n.state_exp, rounding_mode="floor") if fixed else sent)
        sigmas.append(state["sigma"])
    return torch.stack(outs), torch.stack(sigmas)


def sd_reference(net: LoihiNet, x: np.ndarray, mode: str = "fixed_pt") -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per layer (outputs, sigma) ``(*shape, T)`` for one sample ``x`` ``(*input_shape, T)``, payload units."""
    fixed = mode == "fixed_pt"
    with torch.no_grad():
        prev = torch.as_tensor(np.moveaxis(np.asarray(x, np.float64) * sd_input_scale(net, mode), -1, 0))
        outputs, sigmas = [], []
        for layer in net.layers:
            if layer.op == "input":
                a_in = prev
            else:  # each synapse delays its input by one step
                a_in = _synapse(layer, torch.cat([torch.zeros_like(prev[:1]), prev[:-1]]), fixed)
            out, sigma = _layer(layer, a_in, fixed)
            prev = out
            scale = 1.0 if fixed else sd_output_scale(layer)
            outputs.append(np.moveaxis(out.numpy() * scale, 0, -1))
            sigmas.append(np.moveaxis(sigma.numpy() * (1.0 if fixed else sd_output_scale(layer, state=True)), 0, -1))
    return outputs, sigmas

