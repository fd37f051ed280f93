"""Named datasets from the local data folder, fixed-seed splits and spike encodings over T time steps.

``make_splits("mnist", time_steps=25, encoding="rate", seed=0)`` gives train / validation / test
:class:`SpikeDataset` objects whose items are ``(spikes [*input_shape, T] float32, label)``.

* mnist, fashion-mnist: 28x28 images scaled to [0, 1] (then ``(x - mean) / std`` where a model records a
  normalisation); ``rate`` (Bernoulli spikes, probability = intensity x ``max_rate`` per step) or ``current``
  (the intensity as a constant input current every step). :func:`feed_for` picks them from a model's spec.
* nmnist-small: N-MNIST events binned into ``2 x 34 x 34`` frames per step over ``window_ms`` (default 300 ms).
* mnist1d (40 samples per signal) and uci-digits (8x8): tiny sets for tests, same encodings.

The validation set is a fixed-seed share of the training data (uci-digits has one file, so its test set is
a fixed-seed share too). ``subset`` caps the training set (and validation at a fifth of it) for quick runs.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from snndeploy import settings
from snndeploy.data import readers
from snndeploy.errors import UserError

ENCODINGS = ("rate", "current")


@dataclass(frozen=True)
class Feed:
    """How a model is fed for one run: the encoding, an optional ``(mean, std)`` normalisation and a sentence
    saying where both came from (the model's recorded input pipeline, a command-line override, the default)."""

    encoding: str
    normalize: tuple[float, float] | None
    note: str


def feed_for(io, encoding: str | None = None, *, default: str = "rate") -> Feed:
    """The feed of a model whose spec records ``io`` (:class:`snndeploy.models.spec.IOSpec`); ``encoding`` (a CLI
    option) overrides the recorded encoding and the note says so."""
    recorded = io.encoding if io.encoding in ENCODINGS else None
    normalize = io.normalize
    if encoding is None:
        chosen = recorded or default
        note = (f"encoding {chosen} (recorded in the model" + (f": {io.source}" if io.source else "") + ")"
                if recorded else f"encoding {chosen} (default: the model records none; --encoding sets it)")
    else:
        chosen = encoding
        note = (f"encoding {chosen} (--encoding overrides the model's {recorded})" if recorded and recorded != encoding
                else f"encoding {chosen} (--encoding)")
    if normalize is not None:
        note += f"; input normalised as (x - {normalize[0]:g}) / {normalize[1]:g} (recorded in the model)"
    return Feed(chosen, normalize, note)


@dataclass(frozen=True)
class DataInfo:
    name: str
    folder: str
    shape: tuple[int, ...]  # native sample shape (without time)
    num_classes: int
    kind: str  # "static" (encoded over time) or "events" (already spikes)
    time_steps: int  # a sensible default T


DATASETS = {
    "mnist": DataInfo("mnist", "mnist", (1, 28, 28), 10, "static", 25),
    "fashion-mnist": DataInfo("fashion-mnist", "fashion-mnist", (1, 28, 28), 10, "static", 25),
    "nmnist-small": DataInfo("nmnist-small", "nmnist-small", (2, 34, 34), 10, "events", 30),
    "mnist1d": DataInfo("mnist1d", "mnist1d", (40,), 10, "static", 20),
    "uci-digits": DataInfo("uci-digits", "uci-digits", (1, 8, 8), 10, "static", 20),
}
ALIASES = {"fashion": "fashion-mnist", "fmnist": "fashion-mnist", "nmnist": "nmnist-small", "digits": "uci-digits",
           "mnist-1d": "mnist1d"}


def dataset_info(name: str) -> DataInfo:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    return DATASETS[key]


@dataclass(frozen=True)
class Arrays:
    """Raw samples: float32 in [0, 1] ``[N, *shape]`` (static) or uint8 frames ``[N, *shape, T]`` (events)."""

    x: np.ndarray
    y: np.ndarray


def _folder(info: DataInfo, data_dir: str | Path | None) -> Path:
    root = settings.data_dir(data_dir)
    folder = root / info.folder
    if not folder.is_dir():
        raise UserError(f"dataset folder for {info.name} not found (set $SNNDEPLOY_DATA or pass --data-dir)", folder)
    return folder


@functools.lru_cache(maxsize=8)
def _load_idx(folder: Path) -> tuple[Arrays, Arrays]:
    def part(prefix: str) -> Arrays:
        images = readers.read_idx_images(folder / f"{prefix}-images-idx3-ubyte.gz")
        labels = readers.read_idx_labels(folder / f"{prefix}-labels-idx1-ubyte.gz")
        if len(images) != len(labels):
            raise UserError(f"{len(images)} images but {len(labels)} labels",
                            folder / f"{prefix}-labels-idx1-ubyte.gz")
        return Arrays((images.astype(np.float32) / 255.0)[:, None], labels)

    return part("train"), part("t10k")


@functools.lru_cache(maxsize=4)
def _load_nmnist(folder: Path, time_steps: int, window_us: int) -> tuple[Arrays, Arrays]:
    def part(list_name: str) -> Arrays:
        ids, classes = readers.read_id_list(folder / list_name)
        frames = np.stack([readers.bin_events(readers.read_nmnist_events(folder / f"{i}.bs2"), time_steps, window_us)
                           for i in ids])
        return Arrays(frames, classes)

    return part("train1K.txt"), part("test100.txt")


@functools.lru_cache(maxsize=2)
def _load_mnist1d(folder: Path) -> tuple[Arrays, Arrays]:
    d = readers.read_mnist1d(folder / "mnist1d_data.pkl")
    lo, hi = float(d["x"].min()), float(d["x"].max())
    scale = (hi - lo) or 1.0

    def norm(x: np.ndarray) -> np.ndarray:
        return np.clip((x - lo) / scale, 0, 1).astype(np.float32)

    return Arrays(norm(d["x"]), d["y"].astype(np.int64)), Arrays(norm(d["x_test"]), d["y_test"].astype(np.int64))


@functools.lru_cache(maxsize=2)
def _load_digits(folder: Path) -> tuple[Arrays, Arrays]:
    images, labels = readers.read_uci_digits(folder / "digits.csv.gz")
    x = (images / 16.0).astype(np.float32)[:, None]
    order = np.random.default_rng(0).permutation(len(x))  # fixed: the test share never changes
    n_test = len(x) // 5
    test, train = order[:n_test], order[n_test:]
    return Arrays(x[train], labels[train]), Arrays(x[test], labels[test])


def load_arrays(name: str, *, time_steps: int | None = None, window_ms: float = 300.0,
                data_dir: str | Path | None = None) -> tuple[Arrays, Arrays, DataInfo]:
    """(train, test, info) arrays of a dataset; event data are binned into ``time_steps`` frames."""
    info = dataset_info(name)
    folder = _folder(info, data_dir)
    if info.name in ("mnist", "fashion-mnist"):
        train, test = _load_idx(folder)
    elif info.name == "nmnist-small":
        train, test = _load_nmnist(folder, int(time_steps or info.time_steps), int(window_ms * 1000))
    elif info.name == "mnist1d":
        train, test = _load_mnist1d(folder)
    else:
        train, test = _load_digits(folder)
    return train, test, info


class SpikeDataset(torch.utils.data.Dataset):
    """Samples as spike (or current) tensors ``[*input_shape, T]`` and integer labels."""

    def __init__(self, arrays: Arrays, index: np.ndarray, *, info: DataInfo, time_steps: int, encoding: str,
                 input_shape: tuple[int, ...], max_rate: float = 1.0, fixed_seed: int | None = None,
                 normalize: tuple[float, float] | None = None):
        self.x, self.y = arrays.x, arrays.y
        self.index = np.asarray(index, dtype=np.int64)
        self.info, self.time_steps, self.encoding = info, time_steps, encoding
        self.input_shape, self.max_rate = tuple(input_shape), max_rate
        self.normalize = normalize
        # Evaluation sets encode every sample the same way each time (seeded per sample); training sets
        # draw fresh spikes from torch's global RNG every epoch.
        self.fixed_seed = fixed_seed

    def __len__(self) -> int:
        return len(self.index)

    @property
    def labels(self) -> np.ndarray:
        return self.y[self.index]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        j = self.index[i]
        label = int(self.y[j])
        if self.info.kind == "events":
            frames = torch.from_numpy(self.x[j].astype(np.float32))
            return frames.reshape(*self.input_shape, frames.shape[-1]), label
        value = torch.from_numpy(self.x[j]).reshape(*self.input_shape, 1)
        if self.normalize is not None:
            value = (value - self.normalize[0]) / self.normalize[1]
        if self.encoding == "current":
            return value.expand(*self.input_shape, self.time_steps).contiguous(), label
        generator = None
        if self.fixed_seed is not None:
            generator = torch.Generator().manual_seed(self.fixed_seed * 1_000_003 + int(j))
        noise = torch.rand(*self.input_shape, self.time_steps, generator=generator)
        return (noise < value * self.max_rate).float(), label


@dataclass(frozen=True)
class Splits:
    train: SpikeDataset
    val: SpikeDataset
    test: SpikeDataset
    info: DataInfo


def _fit_shape(info: DataInfo, input_shape: tuple[int, ...] | None) -> tuple[int, ...]:
    if input_shape is None:
        return info.shape
    input_shape = tuple(input_shape)
    if math.prod(input_shape) != math.prod(info.shape):
        raise UserError(f"the model takes input {input_shape} but {info.name} samples are {info.shape} "
                        f"({math.prod(info.shape)} values)")
    return input_shape


def make_splits(name: str, *, time_steps: int | None = None, encoding: str = "rate", seed: int = 0,
                val_fraction: float = 0.1, subset: int | None = None, test_subset: int | None = None,
                input_shape: tuple[int, ...] | None = None, max_rate: float = 1.0, window_ms: float = 300.0,
                data_dir: str | Path | None = None, normalize: tuple[float, float] | None = None) -> Splits:
    """Train / validation / test datasets with a fixed-seed validation share of the training data;
    ``normalize`` ``(mean, std)`` maps a static sample ``x`` to ``(x - mean) / std`` before it is encoded."""
    if encoding not in ENCODINGS:
        raise UserError(f"unknown encoding {encoding!r}; available: {', '.join(ENCODINGS)}")
    if not 0 <= val_fraction < 1:
        raise UserError(f"val_fraction must be within [0, 1), got {val_fraction}")
    if subset is not None and subset < 1:
        raise UserError(f"subset must be >= 1, got {subset}")
    info = dataset_info(name)
    time_steps = int(time_steps or info.time_steps)
    train, test, info = load_arrays(name, time_steps=time_steps, window_ms=window_ms, data_dir=data_dir)
    shape = _fit_shape(info, input_shape)
    order = np.random.default_rng(seed).permutation(len(train.y))
    n_val = int(round(len(order) * val_fraction))
    val_idx, train_idx = order[:n_val], order[n_val:]
    if subset is not None:
        train_idx = train_idx[:subset]
        val_idx = val_idx[:max(1, subset // 5)] if n_val else val_idx
    test_idx = np.arange(len(test.y))
    if test_subset is not None:
        test_idx = test_idx[:test_subset]

    def ds(arrays: Arrays, idx: np.ndarray, fixed: bool) -> SpikeDataset:
        return SpikeDataset(arrays, idx, info=info, time_steps=time_steps, encoding=encoding, input_shape=shape,
                            max_rate=max_rate, fixed_seed=seed if fixed else None, normalize=normalize)

    return Splits(ds(train, train_idx, False), ds(train, val_idx, True), ds(test, test_idx, True), info)
