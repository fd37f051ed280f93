"""Spike inputs for a simulation: ``.npy``/``.npz`` files or a local dataset's test split, as ``(N, *shape, T)``;
:func:`prepare` opens the model (any model file, :mod:`snndeploy.loader`) with its inputs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snndeploy import validate
from snndeploy.data.datasets import dataset_info, load_arrays
from snndeploy.errors import UserError
from snndeploy.export.ir import LoihiNet
from snndeploy.loader import load_net


@dataclass(frozen=True)
class Inputs:
    """Binary spike inputs ``(N, *input_shape, T)`` (uint8), optional integer labels, and where they came from."""

    spikes: np.ndarray
    labels: np.ndarray | None
    source: str

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


def load_input_file(path: str | Path, shape: tuple[int, ...]) -> Inputs:
    """``.npy`` spikes, or ``.npz`` with ``x`` (or ``spikes``) and optional ``y`` (or ``labels``)."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        validate.check_npz(path)
    else:
        validate.check_npy(path)
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read input spikes ({type(exc).__name__})", path) from None
    labels = None
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            key = next((k for k in ("x", "spikes", "inputs") if k in data.files), None)
            if key is None:
                raise UserError(f".npz input needs an 'x' (or 'spikes') array; found {data.files}", path)
            x = data[key]
            label_key = next((k for k in ("y", "labels") if k in data.files), None)
            labels = None if label_key is None else np.asarray(data[label_key]).astype(np.int64).reshape(-1)
    else:
        x = data
    x = fit_input_shape(_binary(validate.check_spikes(x, path), "input", path), shape, path=path)
    if labels is not None and labels.size != x.shape[0]:
        raise UserError(f"{labels.size} labels for {x.shape[0]} samples", path)
    return Inputs(x, labels, str(path))


def dataset_inputs(name: str, shape: tuple[int, ...], *, samples: int, steps: int, seed: int = 0,
                   max_rate: float = 1.0) -> Inputs:
    """The first ``samples`` test samples of a dataset as spikes: events binned, images rate-coded (fixed seed)."""
    if samples < 1:
        raise UserError(f"--samples must be at least 1, got {samples}")
    _, test, info = load_arrays(name, time_steps=steps)
    count = min(samples, len(test.y))
    if info.kind == "events":
        x = test.x[:count]
    else:
        rng = np.random.default_rng(seed)
        values = np.asarray(test.x[:count], dtype=np.float32)[..., None]
        x = rng.random((*values.shape[:-1], steps)) < np.clip(values * max_rate, 0, 1)
    x = fit_input_shape(_binary(x, info.name, None), shape, batched=True)
    return Inputs(x, np.asarray(test.y[:count]).astype(np.int64), f"dataset {info.name} (test, first {count})")


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
    return Inputs(x, inputs.labels, inputs.source)


def prepare(model: Path, input_path: Path | None, dataset: str | None, samples: int | None, steps: int | None,
            seed: int = 0, max_rate: float = 1.0) -> tuple[LoihiNet, Inputs]:
    """The network and its inputs for the ``simulate`` and ``deploy`` commands."""
    if (input_path is None) == (dataset is None):
        raise UserError("give exactly one of --input FILE or --dataset NAME")
    hint = None
    if dataset is not None:
        hint = dataset_info(dataset).shape
    net = load_net(model, input_shape=hint)
    if input_path is not None:
        inputs = load_input_file(input_path, net.input_shape)
        if samples is not None:
            inputs = Inputs(inputs.spikes[:samples], None if inputs.labels is None else inputs.labels[:samples],
                            inputs.source)
        return net, with_steps(inputs, steps)
    steps = int(steps or net.time_steps or dataset_info(dataset).time_steps)
    return net, dataset_inputs(dataset, net.input_shape, samples=samples or 100, steps=steps, seed=seed,
                               max_rate=max_rate)
