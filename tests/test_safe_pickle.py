"""Data pickles never run code: a planted MNIST-1D file with a payload is refused by train and evaluate."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from snndeploy import safe_pickle
from snndeploy.cli import main
from snndeploy.errors import UserError
from snndeploy.models.spec import save_spec, spec_from_dict

SPEC_1D = {"name": "mlp1d", "input_shape": [40], "time_steps": 4, "blocks": [{"kind": "dense", "out": 10}]}


class _Payload:
    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self):
        return os.system, (f"touch {self.sentinel}",)


def _malicious(sentinel: Path) -> bytes:
    real = {"x": np.zeros((4, 40)), "y": np.zeros(4, np.int64)}
    return pickle.dumps({**real, "x_test": _Payload(sentinel), "y_test": real["y"]})


@pytest.fixture
def planted(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """A data folder whose mnist1d_data.pkl carries a payload that touches a sentinel file."""
    folder = tmp_path / "data"
    (folder / "mnist1d").mkdir(parents=True)
    sentinel = tmp_path / "PWNED"
    (folder / "mnist1d" / "mnist1d_data.pkl").write_bytes(_malicious(sentinel))
    monkeypatch.setenv("SNNDEPLOY_DATA", str(folder))
    spec = tmp_path / "mlp1d.yaml"
    save_spec(spec_from_dict(SPEC_1D), spec)
    return spec, sentinel


def test_train_refuses_a_payload_pickle_and_runs_nothing(planted, tmp_path, capsys):
    spec, sentinel = planted
    out = tmp_path / "run"
    code = main(["train", str(spec), "--data", "mnist1d", "--epochs", "1", "--out", str(out), "--threads", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert not sentinel.exists(), "the pickle payload ran"
    assert "mnist1d_data.pkl" in err and "unsafe pickle" in err and "posix.system" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())


def test_evaluate_refuses_a_payload_pickle_and_runs_nothing(planted, capsys):
    spec, sentinel = planted
    code = main(["evaluate", str(spec), "--data", "mnist1d", "--threads", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert not sentinel.exists(), "the pickle payload ran"
    assert "mnist1d_data.pkl" in err and "unsafe pickle" in err
    assert len(err.strip().splitlines()) == 1


def test_the_published_mnist1d_pickle_still_loads(data_dir):
    with open(data_dir / "mnist1d" / "mnist1d_data.pkl", "rb") as fh:
        data = safe_pickle.load(fh, "mnist1d_data.pkl")
    assert data["x"].shape == (4000, 40) and data["x_test"].shape == (1000, 40)


@pytest.mark.parametrize("obj, problem", [
    (np.array([{"a": 1}], dtype=object), "object array"),
    (shutil.rmtree, "shutil.rmtree"),
    (np.save, "numpy.save"),
])
def test_anything_but_containers_and_numeric_arrays_is_refused(obj, problem, tmp_path):
    blob = pickle.dumps(obj)
    with pytest.raises(UserError, match=problem):
        safe_pickle.load(blob, tmp_path / "x.pkl")


@pytest.mark.parametrize("blob", [b"", b"\x80\x04", b"not a pickle", pickle.dumps({"x": 1})[:-3]])
def test_truncated_or_garbage_pickles_are_one_line_errors(blob, tmp_path):
    with pytest.raises(UserError, match="corrupt pickle"):
        safe_pickle.load(blob, tmp_path / "x.pkl")
