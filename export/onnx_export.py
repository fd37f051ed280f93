"""ONNX export of one time step of a LoihiNet, with the whole network state as explicit inputs and outputs.

The step follows Lava's ``floating_pt`` semantics (so the ONNX model, the torch step module and the Lava
float network compute the same thing): each synapse keeps a one-step buffer ``a``; per layer
``u = u (1 - du) + a``, ``v = v (1 - dv) + u + bias``, spike where ``v > threshold``, then ``v = 0`` there;
recurrent layers add ``R s[t-1]``. Inputs: ``x`` ``[N, *input_shape]`` then, per layer i, ``a{i}``, ``u{i}``,
``v{i}`` (and ``s{i}`` if recurrent), each ``[N, *out_shape]``. Outputs: ``spikes{i}`` for every layer (the
voltage ``v{i}`` for a non-spiking read-out), then the new state in the input order.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from snndeploy.atomic import atomic_path
from snndeploy.errors import UserError
from snndeploy.export import checks
from snndeploy.export.ir import DECAY_UNITY, Layer, LoihiNet, per_neuron, require_cuba


def _buffer(t) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(t), dtype=torch.float32)


class StepNet(nn.Module):
    """One time step of a LoihiNet in float (``forward(x, *state) -> (*outputs, *new_state)``)."""

    def __init__(self, net: LoihiNet):
        super().__init__()
        self.net = net
        for i, layer in enumerate(net.layers):
            if layer.delay is not None and np.any(np.asarray(layer.delay)):
                raise UserError(f"{layer.name}: axonal delays are not supported by the ONNX step export")
            self.register_buffer(f"w{i}", _buffer(self._weight(layer)))
            shape = layer.out_shape
            self.register_buffer(f"du{i}", _buffer(per_neuron(layer.neuron.i_decay, shape) / DECAY_UNITY))
            self.register_buffer(f"dv{i}", _buffer(per_neuron(layer.neuron.v_decay, shape) / DECAY_UNITY))
            bias = np.zeros(shape) if layer.neuron.bias is None else per_neuron(layer.neuron.bias, shape)
            self.register_buffer(f"b{i}", _buffer(bias))
            th = per_neuron(layer.neuron.threshold, shape) if layer.neuron.spiking else np.full(shape, np.inf)
            self.register_buffer(f"th{i}", _buffer(th))
            if layer.recurrent is not None:
                self.register_buffer(f"r{i}", _buffer(layer.recurrent))
            if layer.syn_bias is not None:
                self.register_buffer(f"c{i}", _buffer(np.asarray(layer.syn_bias).reshape(shape)))
        # a step counter gates each synaptic bias on when the sample's first input reaches its layer
        self.clocked = any(layer.syn_bias is not None for layer in net.layers)

    @staticmethod
    def _weight(layer: Layer) -> np.ndarray:
        if layer.op == "dense":
            return layer.dense_weight()
        if layer.op == "conv":
            return np.asarray(layer.weight, dtype=np.float64)
        channels = layer.in_shape[0]
        k = layer.kernel if layer.op == "pool" else (1, 1)
        value = float(np.asarray(layer.weight).reshape(-1)[0])
        return np.full((channels, 1, *k), value) if len(layer.in_shape) == 3 else np.full((channels,), value)

    def state_names(self) -> list[str]:
        names = []
        for i, layer in enumerate(self.net.layers):
            names += [f"a{i}", f"u{i}", f"v{i}"] + ([f"s{i}"] if layer.recurrent is not None else [])
        return names + (["step"] if self.clocked else [])

    def output_names(self) -> list[str]:
        return [f"{'spikes' if layer.neuron.spiking else 'voltage'}{i}" for i, layer in enumerate(self.net.layers)]

    def initial_state(self, batch: int) -> list[torch.Tensor]:
        state = []
        for layer in self.net.layers:
            n = 4 if layer.recurrent is not None else 3
            state += [torch.zeros(batch, *layer.out_shape) for _ in range(n)]
        return state + ([torch.zeros(batch, 1)] if self.clocked else [])

    def _synapse(self, i: int, layer: Layer, s: torch.Tensor) -> torch.Tensor:
        w = getattr(self, f"w{i}")
        if layer.op == "dense":
            return s.reshape(s.shape[0], -1) @ w.T
        if layer.op == "conv":
            return F.conv2d(s, w, stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                            groups=layer.groups)
        if layer.op == "pool":
            return F.conv2d(s, w, stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                            groups=layer.in_shape[0])
        return s * w.reshape(1, -1, 1, 1) if len(layer.in_shape) == 3 else s * w

    def forward(self, x: torch.Tensor, *state: torch.Tensor):
        state = list(state)
        outputs, new_state = [], []
        s_prev, k = x, 0
        for i, layer in enumerate(self.net.layers):
            a, u, v = state[k], state[k + 1], state[k + 2]
            s_old = state[k + 3] if layer.recurrent is not None else None
            k += 4 if layer.recurrent is not None else 3
            a_next = self._synapse(i, layer, s_prev).reshape(a.shape)
            if layer.syn_bias is not None:  # state[-1]: steps run so far
                on = (state[-1] >= i).to(a.dtype).reshape(-1, *[1] * (a.dim() - 1))
                a_next = a_next + on * getattr(self, f"c{i}")
            drive = a if s_old is None else a + (s_old.reshape(s_old.shape[0], -1)
                                                  @ getattr(self, f"r{i}").T).reshape(a.shape)
            u = u * (1 - getattr(self, f"du{i}")) + drive
            v = v * (1 - getattr(self, f"dv{i}")) + u + getattr(self, f"b{i}")
            spikes = (v > getattr(self, f"th{i}")).to(v.dtype)
            v = v * (1 - spikes)
            outputs.append(spikes if layer.neuron.spiking else v)
            new_state += [a_next, u, v] + ([spikes] if s_old is not None else [])
            s_prev = spikes
        if self.clocked:
            new_state.append(state[-1] + 1)
        return (*outputs, *new_state)


def run_steps_torch(step: StepNet, x: torch.Tensor) -> list[torch.Tensor]:
    """Run ``x`` ``[N, *input_shape, T]`` through the step module; per-layer outputs ``[N, *shape, T]``."""
    state = step.initial_state(x.shape[0])
    outs: list[list[torch.Tensor]] = [[] for _ in step.net.layers]
    n = len(step.net.layers)
    with torch.no_grad():
        for t in range(x.shape[-1]):
            result = step(x[..., t], *state)
            for i in range(n):
                outs[i].append(result[i])
            state = list(result[n:])
    return [torch.stack(o, dim=-1) for o in outs]


def export_onnx(net: LoihiNet, path: str | Path, *, force: bool = False, opset: int = 17) -> Path:
    """Write the one-step ONNX model of ``net`` (atomically) and check it with ``onnx.checker``."""
    require_cuba(net, "the ONNX export")
    import onnx

    step = StepNet(checks.check_net(net, path)).eval()
    x = torch.zeros(1, *net.input_shape)
    state = step.initial_state(1)
    names_in = ["x", *step.state_names()]
    names_out = [*step.output_names(), *[f"{n}_next" for n in step.state_names()]]
    dynamic = {name: {0: "batch"} for name in names_in + names_out}
    with atomic_path(path, force=force) as tmp, warnings.catch_warnings():
        # the TorchScript exporter is deprecated in torch 2.9+; the dynamo one needs onnxscript (not installed)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(step, (x, *state), str(tmp), input_names=names_in, output_names=names_out,
                          dynamic_axes=dynamic, opset_version=opset, dynamo=False)
        onnx.checker.check_model(onnx.load(str(tmp)), full_check=True)
    return Path(path)


def run_onnx(path: str | Path, net: LoihiNet, x: np.ndarray) -> list[np.ndarray]:
    """Run the exported step model with onnxruntime over ``x`` ``[N, *input_shape, T]``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    step = StepNet(net)
    names = step.state_names()
    state = [s.numpy() for s in step.initial_state(x.shape[0])]
    n = len(net.layers)
    outs: list[list[np.ndarray]] = [[] for _ in range(n)]
    for t in range(x.shape[-1]):
        feed = {"x": np.ascontiguousarray(x[..., t], dtype=np.float32), **dict(zip(names, state, strict=True))}
        result = session.run(None, feed)
        for i in range(n):
            outs[i].append(result[i])
        state = result[n:]
    return [np.stack(o, axis=-1) for o in outs]
