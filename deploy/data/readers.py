"""Readers for the local dataset files (idx .gz, N-MNIST .bs2, MNIST-1D pickle (restricted unpickler), UCI digits CSV).

Every reader returns numpy arrays and turns a missing or corrupt file into a one-line UserError that
names the file. Formats: ``shared/data/README.md``.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from snndeploy import safe_pickle
from snndeploy.errors import UserError

IDX_IMAGES, IDX_LABELS = 2051, 2049
NMNIST_SIZE = 34


def _require(path: Path) -> Path:
    if not path.is_file():
        raise UserError("data file not found (set $SNNDEPLOY_DATA or pass --data-dir)", path)
    return path


def _gunzip(path: Path) -> bytes:
    try:
        with gzip.open(_require(path), "rb") as fh:
            return fh.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(f"corrupt gzip file ({exc})", path) from exc


def read_idx_images(path: Path) -> np.ndarray:
    """uint8 images ``[N, H, W]`` from an idx3 .gz file."""
    raw = _gunzip(path)
    if len(raw) < 16:
        raise UserError("corrupt idx file (shorter than its header)", path)
    magic, count, rows, cols = np.frombuffer(raw, ">u4", count=4)
    if magic != IDX_IMAGES:
        raise UserError(f"not an idx image file (magic {magic}, expected {IDX_IMAGES})", path)
    expected = 16 + int(count) * int(rows) * int(cols)
    if len(raw) != expected:
        raise UserError(f"corrupt idx file ({len(raw)} bytes, header says {expected})", path)
    return np.frombuffer(raw, np.uint8, offset=16).reshape(int(count), int(rows), int(cols))


def read_idx_labels(path: Path) -> np.ndarray:
    raw = _gunzip(path)
    if len(raw) < 8:
        raise UserError("corrupt idx file (shorter than its header)", path)
    magic, count = np.frombuffer(raw, ">u4", count=2)
    if magic != IDX_LABELS:
        raise UserError(f"not an idx label file (magic {magic}, expected {IDX_LABELS})", path)
    if len(raw) != 8 + int(count):
        raise UserError(f"corrupt idx file ({len(raw)} bytes, header says {8 + int(count)})", path)
    labels = np.frombuffer(raw, np.uint8, offset=8).astype(np.int64)
    if labels.size and labels.max() > 9:
        raise UserError(f"corrupt idx label file (label {labels.max()} > 9)", path)
    return labels


def read_nmnist_events(path: Path) -> np.ndarray:
    """Events of one N-MNIST .bs2 file as ``[E, 4]`` int64 columns x, y, polarity, t (microseconds)."""
    raw = np.fromfile(_require(path), np.uint8)
    if raw.size == 0 or raw.size % 5:
        raise UserError(f"corrupt N-MNIST file ({raw.size} bytes is not a whole number of 5-byte events)", path)
    a = raw.reshape(-1, 5).astype(np.int64)
    x, y = a[:, 0], a[:, 1]
    if x.max() >= NMNIST_SIZE or y.max() >= NMNIST_SIZE:
        raise UserError(f"corrupt N-MNIST file (pixel outside {NMNIST_SIZE}x{NMNIST_SIZE})", path)
    polarity = a[:, 2] >> 7
    t_us = ((a[:, 2] & 0x7F) << 16) | (a[:, 3] << 8) | a[:, 4]
    return np.stack([x, y, polarity, t_us], axis=1)


def bin_events(events: np.ndarray, time_steps: int, window_us: int) -> np.ndarray:
    """Frames ``[2, 34, 34, T]`` uint8 (1 where a pixel of that polarity had an event in the bin).

    Channel 0 is OFF, channel 1 ON; rows are y, columns x; events after ``window_us`` are dropped.
    """
    frames = np.zeros((2, NMNIST_SIZE, NMNIST_SIZE, time_steps), dtype=np.uint8)
    x, y, p, t = events.T
    bins = t * time_steps // window_us
    keep = bins < time_steps
    frames[p[keep], y[keep], x[keep], bins[keep]] = 1
    return frames


def read_id_list(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(sample ids, classes) of an N-MNIST-small list file (``id class`` lines, ``#`` header)."""
    try:
        table = np.loadtxt(_require(path), dtype=np.int64, comments="#", ndmin=2)
    except ValueError as exc:
        raise UserError(f"corrupt sample list ({exc})", path) from exc
    if table.shape[1] != 2:
        raise UserError(f"corrupt sample list (expected 2 columns, found {table.shape[1]})", path)
    return table[:, 0], table[:, 1]


def read_mnist1d(path: Path) -> dict[str, np.ndarray]:
    """The frozen MNIST-1D split: x (4000, 40), y, x_test (1000, 40), y_test."""
    with open(_require(path), "rb") as fh:
        data = safe_pickle.load(fh, path)  # never pickle.load: a planted file would run its payload
    keys = ("x", "y", "x_test", "y_test")
    if not isinstance(data, dict) or any(k not in data for k in keys):
        raise UserError(f"corrupt MNIST-1D pickle (expected a dict with {', '.join(keys)})", path)
    return {k: np.asarray(data[k]) for k in keys}


def read_uci_digits(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """UCI optdigits: images ``[1797, 8, 8]`` (0..16) and labels."""
    try:
        with gzip.open(_require(path), "rt") as fh:
            table = np.loadtxt(fh, delimiter=",", ndmin=2)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise UserError(f"corrupt digits CSV ({exc})", path) from exc
    if table.shape[1] != 65:
        raise UserError(f"corrupt digits CSV (expected 65 columns, found {table.shape[1]})", path)
    return table[:, :64].reshape(-1, 8, 8), table[:, 64].astype(np.int64)
