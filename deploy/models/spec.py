"""The model spec: frozen dataclasses that describe a SLAYER network, and their YAML form.

A spec is plain data (like nir's IR): ``build_model(spec)`` turns it into lava-dl blocks, the exporters
read it, and a training checkpoint stores ``spec_to_dict(spec)`` beside the weights. YAML example::

    name: mnist_mlp
    input_shape: [784]
    time_steps: 25
    quantize: true
    neuron: {kind: cuba, threshold: 1.25, current_decay: 0.25, voltage_decay: 0.03}
    blocks:
      - {kind: dense, out: 512}
      - {kind: dense, out: 10, neuron: {threshold: 1.0}}   # per-block override of the model neuron

Units follow SLAYER (lava-dl ``slayer.neuron.cuba``): decays are fractions per step (Loihi value / 4096),
the threshold is in weight units (Loihi ``vThMant`` / 64).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from snndeploy.errors import UserError
from snndeploy.validate import MAX_ELEMENTS
from snndeploy.yaml_io import read_yaml

NEURON_KINDS = ("cuba", "alif", "sigma_delta")
BLOCK_KINDS = ("input", "dense", "conv", "pool", "flatten", "affine")
SIGMA_DELTA_ACTIVATIONS = ("relu",)
# Loihi's axonal delay range (lava-dl slayer.axon.Delay(max_delay=62)).
MAX_DELAY = 62


@dataclass(frozen=True)
class NeuronSpec:
    """Neuron parameters in SLAYER units (see the module docstring)."""

    kind: str = "cuba"
    threshold: float = 1.25
    current_decay: float = 0.25
    voltage_decay: float = 0.03
    tau_grad: float = 0.03
    scale_grad: float = 3.0
    requires_grad: bool = False  # learn the decays
    graded_spike: bool = False
    dropout: float = 0.0  # neuron dropout probability during training (slayer.neuron.Dropout)
    # ALIF only
    threshold_step: float = 0.5
    threshold_decay: float = 0.1
    refractory_decay: float = 0.1
    # sigma-delta only
    activation: str = "relu"

    def slayer_params(self) -> dict[str, Any]:
        """The keyword arguments of the lava-dl neuron class for this kind (without norm/dropout)."""
        common = {"threshold": self.threshold, "tau_grad": self.tau_grad, "scale_grad": self.scale_grad,
                  "requires_grad": self.requires_grad}
        if self.kind == "cuba":
            return {**common, "current_decay": self.current_decay, "voltage_decay": self.voltage_decay,
                    "graded_spike": self.graded_spike}
        if self.kind == "alif":
            return {**common, "current_decay": self.current_decay, "voltage_decay": self.voltage_decay,
                    "threshold_step": self.threshold_step, "threshold_decay": self.threshold_decay,
                    "refractory_decay": self.refractory_decay, "graded_spike": self.graded_spike}
        return {**common, "activation": self.activation}


@dataclass(frozen=True)
class BlockSpec:
    """One lava-dl block. ``out`` is the number of neurons (dense/affine) or channels (conv)."""

    kind: str
    out: int | None = None
    kernel: int = 3
    stride: int | None = None  # conv: 1, pool: kernel, when None
    padding: int = 0
    dilation: int = 1
    groups: int = 1
    neuron: NeuronSpec | None = None  # None: the model's neuron
    delay: bool = False  # learnable axonal delay (0..62 steps)
    bias: bool = False  # per-neuron bias (Loihi bias_mant), added to the voltage each step
    weight_norm: bool = False
    weight_scale: float = 1.0

    def conv_stride(self) -> int:
        return self.stride if self.stride is not None else (self.kernel if self.kind == "pool" else 1)


@dataclass(frozen=True)
class ModelSpec:
    """A SLAYER network: input ``(C, H, W)`` or ``(F,)``, time steps, default neuron, blocks in order."""

    name: str
    input_shape: tuple[int, ...]
    blocks: tuple[BlockSpec, ...]
    time_steps: int = 25
    neuron: NeuronSpec = field(default_factory=NeuronSpec)
    quantize: bool = True  # Loihi 8-bit weights (lava-dl quantize_8bit pre-hook)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))
        object.__setattr__(self, "blocks", tuple(self.blocks))
        validate(self)

    def block_neuron(self, index: int) -> NeuronSpec:
        block = self.blocks[index]
        return block.neuron if block.neuron is not None else self.neuron

    def shapes(self) -> list[tuple[int, ...]]:
        """Output shape of every block (without batch and time)."""
        return _infer_shapes(self)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.shapes()[-1]

    @property
    def num_outputs(self) -> int:
        return math.prod(self.output_shape)


def _invalid(problem: str, where: str | None = None) -> UserError:
    return UserError(f"invalid model spec: {where + ': ' if where else ''}{problem}")


def _conv_out(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _block_shape(block: BlockSpec, shape: tuple[int, ...], where: str) -> tuple[int, ...]:
    kind = block.kind
    if kind == "input":
        return shape
    if kind == "flatten":
        if len(shape) != 3:
            raise _invalid(f"flatten needs a (C, H, W) input, got {shape}", where)
        return (math.prod(shape),)
    if kind in ("dense", "affine"):
        if len(shape) != 1:
            raise _invalid(f"{kind} needs a vector input, got {shape}; add a flatten block before it", where)
        return (block.out,)
    if len(shape) != 3:
        raise _invalid(f"{kind} needs a (C, H, W) input, got {shape}", where)
    channels, height, width = shape
    if kind == "conv" and channels % block.groups:
        raise _invalid(f"{channels} input channels are not divisible by groups={block.groups}", where)
    dims = [_conv_out(s, block.kernel, block.conv_stride(), block.padding, block.dilation) for s in (height, width)]
    if min(dims) < 1:
        raise _invalid(f"{kind} with kernel {block.kernel} makes the {height}x{width} input empty", where)
    return (block.out if kind == "conv" else channels, *dims)


def _infer_shapes(spec: ModelSpec) -> list[tuple[int, ...]]:
    shape, shapes = tuple(spec.input_shape), []
    for i, block in enumerate(spec.blocks):
        where = f"blocks[{i}] ({block.kind})"
        weights = _weight_count(block, shape)
        shape = _block_shape(block, shape, where)
        if max(weights, math.prod(shape)) > MAX_ELEMENTS:  # refuse before torch tries to allocate it
            raise _invalid(f"{weights:,} weights and {math.prod(shape):,} neurons; one layer may have at most "
                           f"{MAX_ELEMENTS:,}", where)
        shapes.append(shape)
    return shapes


def _weight_count(block: BlockSpec, shape: tuple[int, ...]) -> int:
    if block.kind in ("dense", "affine"):
        return math.prod(shape) * int(block.out or 0)
    if block.kind == "conv":
        return shape[0] // max(block.groups, 1) * int(block.out or 0) * block.kernel ** 2
    return 0


def _validate_neuron(neuron: NeuronSpec, where: str) -> None:
    if neuron.kind not in NEURON_KINDS:
        raise _invalid(f"neuron kind {neuron.kind!r} is not one of {', '.join(NEURON_KINDS)}", where)
    if neuron.kind == "sigma_delta" and not neuron.threshold >= 0:  # a delta threshold of 0 sends every change
        raise _invalid(f"threshold must be >= 0, got {neuron.threshold}", where)
    if neuron.kind != "sigma_delta" and not neuron.threshold > 0:
        raise _invalid(f"threshold must be > 0, got {neuron.threshold}", where)
    for name in ("current_decay", "voltage_decay", "threshold_decay", "refractory_decay"):
        value = getattr(neuron, name)
        if not 0 <= value <= 1:
            raise _invalid(f"{name} must be within [0, 1], got {value}", where)
    if not 0 <= neuron.dropout < 1:
        raise _invalid(f"dropout must be within [0, 1), got {neuron.dropout}", where)
    if neuron.tau_grad <= 0 or neuron.scale_grad <= 0:
        raise _invalid("tau_grad and scale_grad must be > 0", where)
    if neuron.activation not in SIGMA_DELTA_ACTIVATIONS:
        raise _invalid(f"activation {neuron.activation!r} is not one of {SIGMA_DELTA_ACTIVATIONS}", where)


def _validate_block(block: BlockSpec, index: int, count: int, neuron: NeuronSpec) -> None:
    where = f"blocks[{index}] ({block.kind})"
    if block.kind not in BLOCK_KINDS:
        raise _invalid(f"block kind {block.kind!r} is not one of {', '.join(BLOCK_KINDS)}", f"blocks[{index}]")
    if block.kind in ("dense", "conv", "affine") and (block.out is None or block.out < 1):
        raise _invalid("needs 'out' >= 1 (neurons or channels)", where)
    if block.kind in ("pool", "flatten", "input") and block.out is not None:
        raise _invalid("takes no 'out'", where)
    if block.kind == "input" and index != 0:
        raise _invalid("an input block can only be the first block", where)
    if block.kind == "affine" and index != count - 1:
        raise _invalid("an affine readout can only be the last block", where)
    if block.kernel < 1 or block.dilation < 1 or block.groups < 1 or block.padding < 0:
        raise _invalid("kernel, dilation, groups must be >= 1 and padding >= 0", where)
    if block.stride is not None and block.stride < 1:
        raise _invalid("stride must be >= 1", where)
    if block.delay and block.kind not in ("dense", "conv", "pool"):
        raise _invalid("axonal delay is only available on dense, conv and pool blocks", where)
    if block.bias and block.kind not in ("dense", "conv"):
        raise _invalid("bias is only available on dense and conv blocks", where)
    if block.bias and neuron.kind not in ("cuba", "sigma_delta"):
        raise _invalid("bias is only available with cuba and sigma_delta neurons", where)
    if block.weight_scale <= 0:
        raise _invalid("weight_scale must be > 0", where)
    if block.neuron is not None:
        _validate_neuron(block.neuron, where)
    if block.kind == "affine" and neuron.kind == "alif":
        raise _invalid("lava-dl has no ALIF affine readout; use a dense block or a cuba neuron override", where)


def validate(spec: ModelSpec) -> None:
    """Raise a one-line UserError for anything build_model would fail on."""
    if not isinstance(spec.name, str) or not spec.name:
        raise _invalid("'name' must be a non-empty string")
    if len(spec.input_shape) not in (1, 3) or any(int(s) < 1 for s in spec.input_shape):
        raise _invalid(f"input_shape must be (F,) or (C, H, W) of positive sizes, got {spec.input_shape}")
    if spec.time_steps < 1:
        raise _invalid(f"time_steps must be >= 1, got {spec.time_steps}")
    if not spec.blocks:
        raise _invalid("'blocks' is empty")
    _validate_neuron(spec.neuron, "neuron")
    for i, block in enumerate(spec.blocks):
        if not isinstance(block, BlockSpec):
            raise _invalid(f"blocks[{i}] is not a BlockSpec")
        _validate_block(block, i, len(spec.blocks), block.neuron or spec.neuron)
    kinds = {(b.neuron or spec.neuron).kind for b in spec.blocks if b.kind not in ("flatten", "affine")}
    if len(kinds) > 1:
        raise _invalid(f"mixing neuron kinds across blocks is not supported ({', '.join(sorted(kinds))})")
    _infer_shapes(spec)


# --- dict / YAML -----------------------------------------------------------------------------------------------

def _fields(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _check_keys(data: Mapping, cls, where: str) -> None:
    if not isinstance(data, Mapping):
        raise _invalid(f"expected a mapping, got {type(data).__name__}", where)
    unknown = set(data) - set(_fields(cls))
    if unknown:
        raise _invalid(f"unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                       f"known: {', '.join(_fields(cls))}", where)


def _coerce(value: Any, default: Any, name: str, where: str) -> Any:
    """Type-check a scalar against the field's default type (bool/int/float/str)."""
    kind = type(default) if default is not None else None
    if kind is bool:
        if not isinstance(value, bool):
            raise _invalid(f"{name} must be true or false, got {value!r}", where)
        return value
    if kind is float or name in ("weight_scale",):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _invalid(f"{name} must be a number, got {value!r}", where)
        return float(value)
    if kind is int or name in ("out", "stride"):
        if value is None and default is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid(f"{name} must be an integer, got {value!r}", where)
        return value
    if kind is str:
        if not isinstance(value, str):
            raise _invalid(f"{name} must be a string, got {value!r}", where)
        return value
    return value


def _scalars(data: Mapping, cls, where: str, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    defaults = cls.__dataclass_fields__
    out = {}
    for key, value in data.items():
        if key in skip:
            continue
        f = defaults[key]
        default = f.default if f.default is not dataclasses.MISSING else None
        out[key] = _coerce(value, default, key, where)
    return out


def neuron_from_dict(data: Mapping, base: NeuronSpec | None = None, where: str = "neuron") -> NeuronSpec:
    """A NeuronSpec from a mapping; missing keys come from ``base`` (or the defaults)."""
    _check_keys(data, NeuronSpec, where)
    values = _scalars(data, NeuronSpec, where)
    spec = dataclasses.replace(base, **values) if base is not None else NeuronSpec(**values)
    _validate_neuron(spec, where)
    return spec


def block_from_dict(data: Mapping, model_neuron: NeuronSpec, index: int) -> BlockSpec:
    where = f"blocks[{index}]"
    _check_keys(data, BlockSpec, where)
    if "kind" not in data:
        raise _invalid("missing 'kind'", where)
    values = _scalars(data, BlockSpec, where, skip=("neuron",))
    if data.get("neuron") is not None:
        values["neuron"] = neuron_from_dict(data["neuron"], model_neuron, f"{where}.neuron")
    return BlockSpec(**values)


def spec_from_dict(data: Mapping) -> ModelSpec:
    """Build and validate a ModelSpec from plain data (parsed YAML or a checkpoint's ``spec``)."""
    _check_keys(data, ModelSpec, "spec")
    for key in ("name", "input_shape", "blocks"):
        if key not in data:
            raise _invalid(f"missing '{key}'")
    shape = data["input_shape"]
    if not isinstance(shape, (list, tuple)) or not all(isinstance(s, int) and not isinstance(s, bool) for s in shape):
        raise _invalid(f"input_shape must be a list of integers, got {shape!r}")
    neuron = neuron_from_dict(data.get("neuron") or {}, None, "neuron")
    blocks = data["blocks"]
    if not isinstance(blocks, (list, tuple)):
        raise _invalid("'blocks' must be a list")
    time_steps = data.get("time_steps", 25)
    if isinstance(time_steps, bool) or not isinstance(time_steps, int):
        raise _invalid(f"time_steps must be an integer, got {time_steps!r}")
    quantize = data.get("quantize", True)
    if not isinstance(quantize, bool):
        raise _invalid(f"quantize must be true or false, got {quantize!r}")
    return ModelSpec(name=str(data["name"]), input_shape=tuple(shape), time_steps=time_steps, neuron=neuron,
                     blocks=tuple(block_from_dict(b, neuron, i) for i, b in enumerate(blocks)), quantize=quantize)


def _non_default(obj, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        default = f.default if f.default is not dataclasses.MISSING else dataclasses.MISSING
        if f.name in skip or value == default:
            continue
        out[f.name] = value
    return out


def spec_to_dict(spec: ModelSpec) -> dict[str, Any]:
    """Plain data (lists, dicts, numbers, strings) that spec_from_dict turns back into an equal spec.

    The model neuron is written in full; blocks list only the fields that differ from the defaults, and a
    block neuron only where it differs from the model neuron.
    """
    blocks = []
    for block in spec.blocks:
        entry = {"kind": block.kind, **_non_default(block, skip=("kind", "neuron"))}
        if block.neuron is not None and block.neuron != spec.neuron:
            entry["neuron"] = {k: v for k, v in dataclasses.asdict(block.neuron).items()
                               if getattr(spec.neuron, k) != v}
        blocks.append(entry)
    return {"name": spec.name, "input_shape": list(spec.input_shape), "time_steps": spec.time_steps,
            "quantize": spec.quantize, "neuron": dataclasses.asdict(spec.neuron), "blocks": blocks}


def load_spec(path: str | Path) -> ModelSpec:
    """Read a spec YAML; any problem is a one-line UserError naming the file."""
    path = Path(path)
    data = read_yaml(path, "model spec")
    if not isinstance(data, Mapping):
        raise UserError("a model spec must be a YAML mapping", path)
    try:
        return spec_from_dict(data)
    except UserError as exc:
        raise UserError(exc.problem, path) from exc


def dump_spec(spec: ModelSpec) -> str:
    return yaml.safe_dump(spec_to_dict(spec), sort_keys=False, default_flow_style=None)


def save_spec(spec: ModelSpec, path: str | Path, *, force: bool = True) -> Path:
    from snndeploy.atomic import write_text

    return write_text(path, dump_spec(spec), force=force)
