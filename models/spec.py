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
    io: {encoding: rate, readout: spike_count}   # optional: how the model is fed and read (IOSpec)

Conv and pool blocks take ``kernel``, ``stride``, ``padding`` and ``dilation`` as one int (both axes) or a
two-element list ``[height, width]`` (rows first, then columns: the order of torch, SLAYER, NIR and the netx
file; Lava's own processes take them the other way round, x first, and the exporters swap them), e.g.
``{kind: conv, out: 64, kernel: 3, stride: [2, 1], padding: [1, 0]}``.

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

import numpy as np
import yaml

from snndeploy.atomic import write_text
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


Pair = int | tuple[int, int]  # one value for both axes, or (height, width)
PAIR_FIELDS = ("kernel", "stride", "padding", "dilation")


def as_pair(value: Pair) -> tuple[int, int]:
    """``(height, width)`` of an int or a two-element sequence."""
    if isinstance(value, (tuple, list)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


def _normal_pair(value: Any) -> Any:
    """A two-element sequence of ints as a tuple, or as one int when both are equal (so specs compare and
    round-trip the same however they were written); anything else unchanged, for validation to report."""
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        return int(value[0]) if value[0] == value[1] else (int(value[0]), int(value[1]))
    return int(value) if _is_int(value) else value


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class BlockSpec:
    """One lava-dl block. ``out`` is the number of neurons (dense/affine) or channels (conv).

    ``kernel``, ``stride``, ``padding``, ``dilation``: an int or ``(height, width)`` (see the module docstring).
    """

    kind: str
    out: int | None = None
    kernel: Pair = 3
    stride: Pair | None = None  # conv: 1, pool: kernel, when None
    padding: Pair = 0
    dilation: Pair = 1
    groups: int = 1
    neuron: NeuronSpec | None = None  # None: the model's neuron
    delay: bool = False  # learnable axonal delay (0..62 steps)
    bias: bool = False  # per-neuron bias (Loihi bias_mant), added to the voltage each step
    weight_norm: bool = False
    weight_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in PAIR_FIELDS:
            object.__setattr__(self, name, _normal_pair(getattr(self, name)))

    def conv_stride(self) -> Pair:
        return self.stride if self.stride is not None else (self.kernel if self.kind == "pool" else 1)

    def pair(self, name: str) -> tuple[int, int]:
        """``(height, width)`` of ``kernel``, ``stride`` (with its default), ``padding`` or ``dilation``."""
        return as_pair(self.conv_stride() if name == "stride" else getattr(self, name))


ENCODINGS = ("rate", "current", "events")
READOUTS = ("spike_count", "voltage_sum")


@dataclass(frozen=True)
class IOSpec:
    """How the model is fed and read, as it was trained: recorded so that every command feeds it the same way.

    ``normalize`` ``(mean, std)``: a sample ``x`` (images scaled to [0, 1]) becomes ``(x - mean) / std`` first.
    ``encoding``: ``rate`` (Bernoulli spikes, probability = value), ``current`` (the value every one of the
    ``time_steps`` steps; into an ``input`` block it is the input layer's current ``weight * x + bias`` on
    Loihi's bias grid) or ``events`` (event data binned to frames). ``readout``: the class is the output with
    the most spikes (``spike_count``) or the highest voltage summed over time (``voltage_sum``, a non-spiking
    ``affine`` output). ``None``: not recorded (commands fall back to their defaults and say so). ``source``:
    where these values came from (the file, a documented table, the spec).
    """

    encoding: str | None = None
    normalize: tuple[float, float] | None = None
    readout: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if self.normalize is not None and isinstance(self.normalize, (list, tuple)):
            object.__setattr__(self, "normalize", tuple(float(v) for v in self.normalize))

    def describe(self) -> str:
        parts = [f"encoding {self.encoding or 'not recorded'}"]
        if self.normalize is not None:
            parts.append(f"normalise (x - {self.normalize[0]:g}) / {self.normalize[1]:g}")
        parts.append(f"read-out {self.readout or 'not recorded'}")
        return ", ".join(parts) + (f" [{self.source}]" if self.source else "")


@dataclass(frozen=True)
class ModelSpec:
    """A SLAYER network: input ``(C, H, W)`` or ``(F,)``, time steps, default neuron, blocks in order."""

    name: str
    input_shape: tuple[int, ...]
    blocks: tuple[BlockSpec, ...]
    time_steps: int = 25
    neuron: NeuronSpec = field(default_factory=NeuronSpec)
    quantize: bool = True  # Loihi 8-bit weights (lava-dl quantize_8bit pre-hook)
    io: IOSpec = field(default_factory=IOSpec)

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

    @property
    def readout(self) -> str:
        """The recorded read-out, else the one the last block implies."""
        return self.io.readout or ("voltage_sum" if self.blocks[-1].kind == "affine" else "spike_count")


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
    dims = [_conv_out(size, *(block.pair(name)[axis] for name in PAIR_FIELDS))
            for axis, size in enumerate((height, width))]
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
        return shape[0] // max(block.groups, 1) * int(block.out or 0) * math.prod(block.pair("kernel"))
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
    for name in PAIR_FIELDS:
        value = getattr(block, name)
        if not (_is_int(value) or (isinstance(value, tuple) and len(value) == 2 and all(map(_is_int, value)))) \
                and not (name == "stride" and value is None):
            raise _invalid(f"{name} must be an integer or a list of two integers [height, width], got {value!r}",
                           where)
    if min(block.pair("kernel") + block.pair("dilation")) < 1 or block.groups < 1 or min(block.pair("padding")) < 0:
        raise _invalid("kernel, dilation, groups must be >= 1 and padding >= 0", where)
    if min(block.pair("stride")) < 1:
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


def _validate_io(io: IOSpec) -> None:
    if not isinstance(io, IOSpec):
        raise _invalid("'io' is not an IOSpec")
    if io.encoding is not None and io.encoding not in ENCODINGS:
        raise _invalid(f"encoding {io.encoding!r} is not one of {', '.join(ENCODINGS)}", "io")
    if io.readout is not None and io.readout not in READOUTS:
        raise _invalid(f"readout {io.readout!r} is not one of {', '.join(READOUTS)}", "io")
    if io.normalize is not None and (len(io.normalize) != 2 or not io.normalize[1] > 0
                                     or not all(math.isfinite(v) for v in io.normalize)):
        raise _invalid(f"normalize must be [mean, std] with std > 0, got {list(io.normalize)}", "io")


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
    _validate_io(spec.io)
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
    if name in PAIR_FIELDS:
        if name == "stride" and value is None:
            return None
        pair = _normal_pair(value)
        if not _is_int(pair) and not isinstance(pair, tuple):
            raise _invalid(f"{name} must be an integer or a list of two integers [height, width], got {value!r}",
                           where)
        return pair
    kind = type(default) if default is not None else None
    if kind is bool:
        if not isinstance(value, bool):
            raise _invalid(f"{name} must be true or false, got {value!r}", where)
        return value
    if kind is float or name in ("weight_scale",):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _invalid(f"{name} must be a number, got {value!r}", where)
        return float(value)
    if kind is int or name == "out":
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
                     blocks=tuple(block_from_dict(b, neuron, i) for i, b in enumerate(blocks)), quantize=quantize,
                     io=io_from_dict(data.get("io") or {}))


def io_from_dict(data: Mapping) -> IOSpec:
    _check_keys(data, IOSpec, "io")
    normalize = data.get("normalize")
    if normalize is not None and (not isinstance(normalize, (list, tuple)) or len(normalize) != 2 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in normalize)):
        raise _invalid(f"normalize must be a list [mean, std], got {normalize!r}", "io")
    for key in ("encoding", "readout", "source"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise _invalid(f"{key} must be a string, got {data[key]!r}", "io")
    return IOSpec(encoding=data.get("encoding"), normalize=None if normalize is None else tuple(normalize),
                  readout=data.get("readout"), source=data.get("source") or "")


def io_to_dict(io: IOSpec) -> dict[str, Any]:
    out = _non_default(io)
    if "normalize" in out:
        out["normalize"] = list(out["normalize"])
    return out


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
        entry.update({k: list(v) for k, v in entry.items() if isinstance(v, tuple)})
        if block.neuron is not None and block.neuron != spec.neuron:
            entry["neuron"] = {k: v for k, v in dataclasses.asdict(block.neuron).items()
                               if getattr(spec.neuron, k) != v}
        blocks.append(entry)
    out = {"name": spec.name, "input_shape": list(spec.input_shape), "time_steps": spec.time_steps,
           "quantize": spec.quantize, "neuron": dataclasses.asdict(spec.neuron), "blocks": blocks}
    if spec.io != IOSpec():
        out["io"] = io_to_dict(spec.io)
    return out


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
    return write_text(path, dump_spec(spec), force=force)
