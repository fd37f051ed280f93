"""Local datasets: readers, encodings, fixed-seed splits, one-line errors for missing/corrupt files."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from snndeploy import settings
from snndeploy.data import readers
from snndeploy.data.datasets import load_arrays, make_splits
from snndeploy.errors import UserError

DATA = settings.data_dir()


def test_mnist_idx_matches_published_format():
    train, test, info = load_arrays("mnist")
    assert train.x.shape == (60000, 1, 28, 28) and test.x.shape == (10000, 1, 28, 28)
    assert train.x.dtype == np.float32 and 0 <= train.x.min() and train.x.max() == 1.0
    # class counts of the MNIST test set are fixed by the published files
    assert np.bincount(test.y).sum() == 10000 and set(np.unique(test.y)) == set(range(10))
    assert info.num_classes == 10


def test_rate_and_current_encodings():
    splits = make_splits("mnist", time_steps=20, encoding="rate", subset=50, seed=1)
    x, y = splits.train[0]
    assert x.shape == (1, 28, 28, 20) and set(torch.unique(x).tolist()) <= {0.0, 1.0}
    image = torch.from_numpy(splits.train.x[splits.train.index[0]])
    rate = x.mean(-1)
    assert torch.all(rate[image[None].squeeze(0) == 0] == 0)  # black pixels never spike
    assert abs(float(rate.mean()) - float(image.mean())) < 0.05  # spike rate follows intensity
    current = make_splits("mnist", time_steps=20, encoding="current", subset=50, seed=1, input_shape=(784,))
    xc, yc = current.train[0]
    assert xc.shape == (784, 20) and yc == y
    assert torch.equal(xc[:, 0], image.reshape(784)) and torch.equal(xc[:, 0], xc[:, -1])


def test_splits_are_fixed_by_seed_and_disjoint():
    a = make_splits("uci-digits", seed=3)
    b = make_splits("uci-digits", seed=3)
    c = make_splits("uci-digits", seed=4)
    assert np.array_equal(a.train.index, b.train.index) and not np.array_equal(a.train.index, c.train.index)
    assert not set(a.train.index) & set(a.val.index)
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    assert np.array_equal(a.test.labels, c.test.labels)  # the test share does not depend on the seed
    small = make_splits("mnist", subset=100, test_subset=30)
    assert (len(small.train), len(small.val), len(small.test)) == (100, 20, 30)


def test_nmnist_events_binned_into_frames():
    events = readers.read_nmnist_events(DATA / "nmnist-small" / "1.bs2")
    assert events.shape[1] == 4 and 1665 <= len(events) <= 6198
    assert events[:, 0].max() < 34 and set(np.unique(events[:, 2])) == {0, 1}
    assert np.all(np.diff(events[:, 3]) >= 0)  # time-sorted
    frames = readers.bin_events(events, 30, 300_000)
    assert frames.shape == (2, 34, 34, 30)
    in_window = events[events[:, 3] < 300_000]
    assert frames.sum() == len({(p, y, x, t * 30 // 300_000) for x, y, p, t in in_window})
    splits = make_splits("nmnist", time_steps=30, val_fraction=0.0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (1000, 0, 100)
    x, label = splits.test[0]
    ids, classes = readers.read_id_list(DATA / "nmnist-small" / "test100.txt")
    assert x.shape == (2, 34, 34, 30) and label == classes[0]


def test_tiny_datasets():
    train, test, _ = load_arrays("mnist1d")
    assert train.x.shape == (4000, 40) and test.x.shape == (1000, 40)
    assert 0 <= train.x.min() and train.x.max() <= 1
    x, _ = make_splits("mnist1d", time_steps=8, encoding="current").train[0]
    assert x.shape == (40, 8)


def test_missing_and_corrupt_files_name_the_file(tmp_path: Path):
    with pytest.raises(UserError, match="dataset folder for mnist not found"):
        load_arrays("mnist", data_dir=tmp_path)
    root = tmp_path / "d"
    (root / "mnist").mkdir(parents=True)
    for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(DATA / "mnist" / f, root / "mnist" / f)
    with pytest.raises(UserError, match="data file not found") as info:
        load_arrays("mnist", data_dir=root)
    assert info.value.path.name == "t10k-images-idx3-ubyte.gz" and "\n" not in str(info.value)
    (root / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(UserError, match="corrupt gzip") as info:
        load_arrays("mnist", data_dir=root)
    assert info.value.path.name == "t10k-images-idx3-ubyte.gz"
    with gzip.open(root / "mnist" / "t10k-images-idx3-ubyte.gz", "wb") as fh:
        fh.write(np.array([2051, 10, 28, 28], ">u4").tobytes() + b"\0" * 100)  # truncated body
    with pytest.raises(UserError, match="header says"):
        load_arrays("mnist", data_dir=root)
    bad = tmp_path / "bad.bs2"
    bad.write_bytes(b"\0" * 7)
    with pytest.raises(UserError, match="5-byte events") as info:
        readers.read_nmnist_events(bad)
    assert info.value.path == bad
    with pytest.raises(UserError, match="unknown dataset"):
        make_splits("cifar")


def test_model_shape_must_fit_the_data():
    with pytest.raises(UserError, match="takes input"):
        make_splits("uci-digits", input_shape=(65,))
