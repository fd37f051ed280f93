"""``build_model(spec) -> SlayerNet``: a torch module made of lava-dl ``slayer.block.*`` blocks.

Every block is lava-dl's own class (``cuba``, ``alif`` or ``sigma_delta``), so lava-dl's ``export_hdf5``
and netx work on it unchanged. What snndeploy adds:

* shapes are fixed at build time (neuron shapes, delays, flatten), so a state dict loads before any forward;
* ``quantize: false`` replaces lava-dl's 8-bit weight pre-hook with an identity that still descales for export;
* an ``input`` block computes ``weight * x + bias`` and rounds that current once to Loihi's bias grid (1/64): an
  input layer on Loihi and in netx integrates an integer bias mantissa (lava-dl rounds input, weight and bias
  separately, to its 8-bit weight grid by default); for spike inputs both agree exactly;
* ``bias: true`` gives a block a per-neuron bias through the neuron's ``norm`` hook (:class:`NeuronBias`),
  which is where lava-dl's hdf5 export and Loihi put it (added to the voltage every step).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch import nn

from snndeploy.models.spec import BlockSpec, ModelSpec, NeuronSpec

# lava-dl neuron scale: SLAYER weight units are Loihi weights / 64 (slayer.neuron.cuba scale=1<<6).
W_SCALE = 1 << 6


def _slayer():  # snndeploy is imported (shims installed) before this module runs
    from lava.lib.dl import slayer

    return slayer


class FloatWeights:
    """Identity weight pre-hook (quantization off) with the ``descale`` argument lava-dl's export passes."""

    def __init__(self, w_scale: int = W_SCALE):
        self.w_scale = w_scale

    def __call__(self, weight: torch.Tensor, descale: bool = False) -> torch.Tensor:
        return weight * self.w_scale if descale else weight


class BiasMantissa:
    """Input-block pre-hook: Loihi feeds an input layer through the integer bias mantissa, not 8-bit weights."""

    def __init__(self, w_scale: int = W_SCALE):
        self.w_scale = w_scale

    def __call__(self, value: torch.Tensor, descale: bool = False) -> torch.Tensor:
        from lava.lib.dl.slayer.utils import quantize

        value = quantize(value, step=1 / self.w_scale)
        return value * self.w_scale if descale else value


def _grid_input_forward(self, x: torch.Tensor) -> torch.Tensor:
    """lava-dl's ``Input.forward`` with the affine transform computed first and its result rounded once by the
    pre-hook (see the module docstring)."""
    if self.neuron is not None:
        z = x * self.pre_hook_fx(self.weight) if self.weight is not None else x
        z = z + self.pre_hook_fx(self.bias) if self.bias is not None else z
        x = self.neuron(self.pre_hook_fx(z))
    if self.delay_shift is True:
        from lava.lib.dl.slayer.block.base import step_delay

        x = step_delay(self, x)
    if self.input_shape is None:
        self.input_shape = self.neuron.shape if self.neuron is not None else x.shape[1:-1]
    return (x, torch.mean(x > 0)) if self.count_log is True else x


@functools.cache
def _grid_input_class(base: type) -> type:
    return type(base.__name__, (base,), {"forward": _grid_input_forward, "__module__": __name__,
                                         "__qualname__": f"grid_{base.__module__.rsplit('.', 1)[-1]}_Input"})


class NeuronBias(nn.Module):
    """Per-channel bias added to the neuron's current output, i.e. to the voltage every step (Loihi bias_mant).

    Installed as the neuron's ``norm``; ``bias`` is the Loihi value (integer mantissa when quantized) that
    lava-dl's ``export_hdf5`` writes.
    """

    def __init__(self, num_features: int, quantize: bool = True, w_scale: int = W_SCALE):
        super().__init__()
        self.value = nn.Parameter(torch.zeros(num_features))
        self.quantize = quantize
        self.w_scale = w_scale

    def effective(self) -> torch.Tensor:
        if not self.quantize:
            return self.value
        from lava.lib.dl.slayer.utils import quantize

        return quantize(self.value, step=1 / self.w_scale)

    @property
    def bias(self) -> torch.Tensor:
        return self.effective() * self.w_scale

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        shape = [1, -1] + [1] * (current.dim() - 2)
        return current + self.effective().reshape(shape)


class SlayerNet(nn.Module):
    """A sequential SLAYER network: ``net.spec``, ``net.blocks`` (lava-dl blocks), ``net(x[, return_all])``."""

    def __init__(self, spec: ModelSpec, blocks: list[nn.Module]):
        super().__init__()
        self.spec = spec
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor, return_all: bool = False):
        """``x``: ``[N, *input_shape, T]`` -> output ``[N, *output_shape, T]`` (and every block's output)."""
        expected = tuple(self.spec.input_shape)
        if tuple(x.shape[1:-1]) != expected:
            raise ValueError(f"{self.spec.name}: expected input [N, {', '.join(map(str, expected))}, T], "
                             f"got {list(x.shape)}")
        outputs = []
        for block in self.blocks:
            x = block(x)
            if return_all:
                outputs.append(x)
        return (x, outputs) if return_all else x

    def extra_repr(self) -> str:
        return f"spec={self.spec.name!r}, input_shape={tuple(self.spec.input_shape)}, T={self.spec.time_steps}"


def _block_module(kind: str):
    slayer = _slayer()
    return {"cuba": slayer.block.cuba, "alif": slayer.block.alif, "sigma_delta": slayer.block.sigma_delta}[kind]


def neuron_kwargs(neuron: NeuronSpec, *, bias_features: int | None = None, quantize: bool = True) -> dict[str, Any]:
    """lava-dl neuron parameters (dropout and bias included) for one block."""
    slayer = _slayer()
    params = neuron.slayer_params()
    if neuron.kind == "sigma_delta":
        params["activation"] = torch.nn.functional.relu
    if neuron.dropout > 0:
        params["dropout"] = slayer.neuron.Dropout(p=neuron.dropout)
    if bias_features is not None:
        params["norm"] = functools.partial(NeuronBias, bias_features, quantize)
    return params


def _synapse_kwargs(block: BlockSpec, quantize: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"weight_scale": block.weight_scale, "weight_norm": block.weight_norm}
    if not quantize:
        kwargs["pre_hook_fx"] = FloatWeights()
    return kwargs


def _fix_shapes(module: nn.Module, block: BlockSpec, shape: tuple[int, ...]) -> None:
    """Set what lava-dl would infer on the first forward, so that state dicts load into a fresh model."""
    neuron = getattr(module, "neuron", None)
    if neuron is not None:
        target = neuron.sigma if block.kind == "affine" and hasattr(neuron, "sigma") else neuron
        target.shape = torch.Size(shape)
        target.num_neurons = math.prod(shape)
    delay = getattr(module, "delay", None)
    if isinstance(delay, nn.Module):
        delay.delay.data = torch.rand(shape[0])
        delay.init = True
    if block.kind == "flatten":
        module.shape = [shape[0], 1, 1]


def build_block(block: BlockSpec, neuron: NeuronSpec, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
                quantize: bool) -> nn.Module:
    """One lava-dl block for ``block`` with input ``in_shape`` and output ``out_shape``."""
    mod = _block_module(neuron.kind)
    kind = block.kind
    if kind == "flatten":
        module = mod.Flatten()
    elif kind == "input" and neuron.kind == "sigma_delta":
        # netx's delta encoder has no weight or bias: lava-dl's learnable input scale would not survive export
        module = mod.Input(neuron_kwargs(neuron, quantize=quantize), weight=None, bias=None)
        module.pre_hook_fx = BiasMantissa() if quantize else FloatWeights()
    elif kind == "input":
        module = _grid_input_class(mod.Input)(neuron_kwargs(neuron, quantize=quantize), weight=1.0, bias=0.0)
        module.pre_hook_fx = BiasMantissa() if quantize else FloatWeights()
    elif kind == "affine":
        if neuron.kind == "sigma_delta":
            module = mod.Output(neuron_kwargs(neuron), in_neurons=in_shape[0], out_neurons=block.out,
                                weight_scale=block.weight_scale, weight_norm=block.weight_norm)
            if not quantize:
                module.synapse.pre_hook_fx = FloatWeights()
        else:
            module = mod.Affine(neuron_kwargs(neuron), in_neurons=in_shape[0], out_neurons=block.out,
                                **_synapse_kwargs(block, quantize))
    else:
        bias = out_shape[0] if block.bias else None
        params = neuron_kwargs(neuron, bias_features=bias, quantize=quantize)
        common = {**_synapse_kwargs(block, quantize), "delay": block.delay}
        if kind == "dense":
            module = mod.Dense(params, in_neurons=in_shape[0], out_neurons=block.out, **common)
        elif kind == "conv":
            module = mod.Conv(params, in_features=in_shape[0], out_features=block.out, kernel_size=block.kernel,
                              stride=block.conv_stride(), padding=block.padding, dilation=block.dilation,
                              groups=block.groups, **common)
        else:  # pool
            module = mod.Pool(params, kernel_size=block.kernel, stride=block.conv_stride(), padding=block.padding,
                              dilation=block.dilation, **common)
    _fix_shapes(module, block, out_shape)
    return module


def build_model(spec: ModelSpec) -> SlayerNet:
    """A fresh SLAYER network for ``spec`` (weights from lava-dl's initialisers and torch's RNG)."""
    shapes = spec.shapes()
    in_shapes = [tuple(spec.input_shape), *shapes[:-1]]
    blocks = [build_block(b, spec.block_neuron(i), in_shapes[i], shapes[i], spec.quantize)
              for i, b in enumerate(spec.blocks)]
    return SlayerNet(spec, blocks)


def clipped_by_hook(weight: torch.Tensor, hook) -> tuple[torch.Tensor, torch.Tensor]:
    """``(used, clipped)``: the values a quantizing pre-hook computes with and where it clips (moves a value by more
    than a whole step of the weight grid; rounding moves it by at most half a step, 1/64 for lava-dl's 8-bit hook)."""
    with torch.no_grad():
        used = hook(weight)
        return used, (used - weight).abs() > 2 / W_SCALE + 1e-6


def clipped_weight(model: nn.Module) -> tuple[str, tuple[int, ...], float, float] | None:
    """The first stored weight that the model's quantizing pre-hook clips: (tensor name, index, stored value,
    value the model computes with), or None."""
    for name, module in model.named_modules():
        hook = getattr(module, "_pre_hook_fx", None)
        weight = getattr(module, "weight", None)
        if hook is None or not isinstance(weight, nn.Parameter):
            continue
        used, clipped = clipped_by_hook(weight, hook)
        moved = torch.nonzero(clipped)
        if len(moved):
            index = tuple(int(i) for i in moved[0])
            return f"{name}.weight", index, float(weight.detach()[index]), float(used[index])
    return None


def clip_to_hook(weight: torch.Tensor, hook) -> None:
    """Set the stored weights that ``hook`` clips to the value it computes with, in place. Why: training can push
    a stored weight past the 8-bit range, where the network runs with the clipped value and the checkpoint is
    refused on load (:func:`clipped_weight`); clipping the stored value changes nothing the network computes."""
    if hook is None:
        return
    used, clipped = clipped_by_hook(weight, hook)
    if bool(clipped.any()):
        with torch.no_grad():
            weight[clipped] = used[clipped]
