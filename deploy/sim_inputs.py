"""Inputs of a Lava simulation: spike arrays and static input currents from files (lava-dl's golden layout, see
:mod:`snndeploy.sim_files`) and from datasets, shaped ``(N, *input_shape, T)``; and :func:`prepare`, which opens
the network and its inputs for ``simulate`` and ``deploy``."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from snndeploy import validate
from snndeploy.data.datasets import dataset_info, feed_for, load_arrays
from snndeploy.errors import UserError
from snndeploy.export.ir import W_SCALE, LoihiNet
from snndeploy.loader import load_net
from snndeploy.models.spec import IOSpec
from snndeploy.sim_files import InputArray, read_input_array

ENCODE_PART = 500  # images rate-coded at a time


@dataclass(frozen=True)
class Inputs:
    """Binary spike inputs ``(N, *input_shape, T)`` (uint8), optional integer labels, and where they came from.

    ``bias`` ``(N, *input_shape)``: a static input held as the input layer's bias (spikes are then all zero);
    ``layout`` and ``batched`` say how an input file was laid out (:mod:`snndeploy.sim_files`); ``current``: the
    normalised values behind a dataset's ``bias`` (what the torch model is fed).
    """

    spikes: np.ndarray
    labels: np.ndarray | None
    source: str
    bias: np.ndarray | None = None
    layout: str = ""
    batched: bool = True
    current: np.ndarray | None = None

    @property
    def samples(self) -> int:
        return int(self.spikes.shape[0])

    @property
    def steps(self) -> int:
        return int(self.spikes.shape[-1])


def _binary(x: np.ndarray, where: str, path: Path | None) -> np.ndarray:
    """Spikes as uint8 0/1; event counts above one become one spike (a Loihi spike carries no count)."""
    x = np.asarray(x)
    if x.dtype == bool:
        return x.astype(np.uint8)
    if not np.issubdtype(x.dtype, np.number):
        raise UserError(f"{where}: expected numbers, got {x.dtype}", path)
    if np.any(x < 0) or not np.all(np.isfinite(x)):
        raise UserError(f"{where}: spike inputs must be non-negative", path)
    return (x > 0).astype(np.uint8)


def fit_input_shape(x: np.ndarray, shape: tuple[int, ...], *, batched: bool | None = None,
                    path: Path | None = None) -> np.ndarray:
    """``(*shape, T)`` or ``(N, *shape, T)`` (or the same number of values per step) -> ``(N, *shape, T)``."""
    size = math.prod(shape)
    if batched is None:
        single = x.ndim >= 2 and math.prod(x.shape[:-1]) == size and (x.ndim - 1 == len(shape) or x.ndim == 2)
        batched = not single
    if not batched:
        x = x[None]
    if x.ndim < 3 or math.prod(x.shape[1:-1]) != size:
        raise UserError(f"input of shape {tuple(x.shape)} does not fit the network input {shape} "
                        "(expected (*shape, T) or (N, *shape, T))", path)
    return x.reshape(x.shape[0], *shape, x.shape[-1])


def read_input_arrays(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(inputs, labels or None) of a ``.npy`` file or a ``.npz`` with ``x`` (or ``spikes``) and optional ``y``."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        validate.check_npz(path)
    else:
        validate.check_npy(path)
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read input spikes ({type(exc).__name__})", path) from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        return data, None
    with data:
        key = next((k for k in ("x", "spikes", "inputs") if k in data.files), None)
        if key is None:
            raise UserError(f".npz input needs an 'x' (or 'spikes') array; found {data.files}", path)
        label_key = next((k for k in ("y", "labels") if k in data.files), None)
        labels = None if label_key is None else np.asarray(data[label_key]).astype(np.int64).reshape(-1)
        return data[key], labels


def load_input_file(path: str | Path, shape: tuple[int, ...], *, bias_input: bool = False,
                    steps: int | None = None) -> Inputs:
    """``.npy`` in lava-dl's golden layout (:mod:`snndeploy.sim_files`), or ``.npz`` with ``x`` (or ``spikes``) and
    optional ``y`` (or ``labels``). ``bias_input``: the network starts with a bias-driven input layer, so an
    array without a time axis is that layer's bias, run for ``steps`` steps."""
    path = Path(path)
    x, labels = read_input_arrays(path)
    try:
        read = read_input_array(x, shape, bias_input=bias_input, path=path)
    except UserError as exc:  # the same number of values per step in another shape (a 28x28 image into 784 inputs)
        try:
            read = InputArray(fit_input_shape(np.asarray(x), shape, path=path), None, "reshaped (C-major)", True)
        except UserError:
            raise exc from None
    if read.spikes is not None:
        spikes = _binary(validate.check_spikes(read.spikes, path), "input", path)
    else:
        if steps is None:
            raise UserError("a static input (the input layer's bias) needs --steps or a model that records its "
                            "time steps", path)
        spikes = np.zeros((read.bias.shape[0], *shape, steps), dtype=np.uint8)
    if labels is not None and labels.size != spikes.shape[0]:
        raise UserError(f"{labels.size} labels for {spikes.shape[0]} samples", path)
    return Inputs(spikes, labels, str(path), read.bias, read.layout, read.batched)


def input_current(net: LoihiNet, values: np.ndarray) -> np.ndarray:
    """The bias mantissas (Loihi units) that feed ``values`` ``(N, *input_shape)`` as a current into the input
    layer: ``round(64 (weight x + bias))``, exactly what the torch model's input block computes."""

    layer = net.layers[0]
    weight = float(np.asarray(layer.weight).reshape(-1)[0])
    bias = 0.0 if layer.neuron.bias is None else np.asarray(layer.neuron.bias, dtype=np.float64)
    return np.round(W_SCALE * (weight * values + bias))


def dataset_inputs(name: str, shape: tuple[int, ...], *, samples: int, steps: int, seed: int = 0,
                   max_rate: float = 1.0, net: LoihiNet | None = None) -> Inputs:
    """The first ``samples`` test samples of a dataset: events binned; images as the model records (``net``'s
    ``meta['io']``): a current into a first input layer (its bias per sample, normalised as recorded), else
    rate-coded spikes (fixed seed)."""

    if samples < 1:
        raise UserError(f"--samples must be at least 1, got {samples}")
    _, test, info = load_arrays(name, time_steps=steps)
    count = min(samples, len(test.y))
    labels = np.asarray(test.y[:count]).astype(np.int64)
    source = f"dataset {info.name} (test, first {count})"
    feed = feed_for((net.meta.get("io") if net is not None else None) or IOSpec())
    if info.kind != "events" and feed.encoding == "current" and net is not None and net.layers[0].op == "input":
        values = np.asarray(test.x[:count], dtype=np.float64).reshape(count, *shape)
        if feed.normalize is not None:
            values = (values - feed.normalize[0]) / feed.normalize[1]
        bias = input_current(net, values)
        return Inputs(np.zeros((count, *shape, steps), dtype=np.uint8), labels, f"{source}; {feed.note}", bias,
                      "", True, values)
    if info.kind == "events":
        x = _binary(test.x[:count], info.name, None)
    else:  # encoded in parts (a whole test set's random draws would take gigabytes); the same draws as at once
        rng = np.random.default_rng(seed)
        parts = []
        for start in range(0, count, ENCODE_PART):
            values = np.asarray(test.x[start:min(count, start + ENCODE_PART)], dtype=np.float32)[..., None]
            parts.append((rng.random((*values.shape[:-1], steps)) < np.clip(values * max_rate, 0, 1))
                         .astype(np.uint8))
        x = np.concatenate(parts)
    x = fit_input_shape(x, shape, batched=True)
    return Inputs(x, labels, source if info.kind == "events" else f"{source}; rate spikes (max rate {max_rate:g})")


def with_steps(inputs: Inputs, steps: int | None) -> Inputs:
    """Cut or zero-pad every sample to ``steps`` time steps."""
    if steps is None or steps == inputs.steps:
        return inputs
    if steps < 1:
        raise UserError(f"--steps must be at least 1, got {steps}")
    x = inputs.spikes[..., :steps]
    if x.shape[-1] < steps:
        pad = np.zeros((*x.shape[:-1], steps - x.shape[-1]), dtype=x.dtype)
        x = np.concatenate([x, pad], axis=-1)
    return replace(inputs, spikes=x)


def netx_reset_interval(net: LoihiNet, inputs: Inputs) -> int | None:
    """netx's ``reset_interval`` where it applies: a bias-driven input layer fed a static input (lava-dl's
    PilotNet convention) is reset every ``time_steps`` steps, layer by layer one step apart, as netx does."""
    return int(net.time_steps) if inputs.bias is not None and inputs.layout and net.time_steps else None


def prepare(model: Path, input_path: Path | None, dataset: str | None, samples: int | None, steps: int | None,
            seed: int = 0, max_rate: float = 1.0, dt: float | None = None,
            reset: str | None = None) -> tuple[LoihiNet, Inputs]:
    """The network and its inputs for the ``simulate`` and ``deploy`` commands (``dt``, ``reset``: a NIR graph's
    time step and reset mechanism where it records none)."""
    if (input_path is None) == (dataset is None):
        raise UserError("give exactly one of --input FILE or --dataset NAME")
    hint = None
    if dataset is not None:

        hint = dataset_info(dataset).shape
    net = load_net(model, input_shape=hint, dt=dt, reset=reset)
    if input_path is not None:
        inputs = load_input_file(input_path, net.input_shape, bias_input=net.layers[0].op == "input",
                                 steps=steps or net.time_steps)
        if samples is not None:
            inputs = replace(inputs, spikes=inputs.spikes[:samples],
                             labels=None if inputs.labels is None else inputs.labels[:samples],
                             bias=None if inputs.bias is None else inputs.bias[:samples])
        return net, with_steps(inputs, steps)

    steps = int(steps or net.time_steps or dataset_info(dataset).time_steps)
    return net, dataset_inputs(dataset, net.input_shape, samples=samples or 100, steps=steps, seed=seed,
                               max_rate=max_rate, net=net)
