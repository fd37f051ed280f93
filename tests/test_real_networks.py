"""The cheap rows of benchmarks/real_networks.py: bootstrap MNIST fed as its tutorial does agrees spike for spike
between torch and Lava fixed_pt, and tinynet's golden output comes back through ``snndeploy simulate``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "real_networks.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("real_networks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bootstrap_mnist_lava_fixed_pt_is_spike_exact_with_torch(bench, fixtures_dir, no_lava_leftovers):
    result = bench.bootstrap_lava(fixtures_dir / "mnist-mlp-512" / "network.net", 4)  # back to back in one build
    assert result["spikes"] > 0
    assert result["digits_spike_exact"] == 4 and result["predictions_equal"] == 4


def test_tinynet_golden_row(bench, no_lava_leftovers):
    assert bench.tinynet_goldens().startswith("0 output spike errors")


def test_table_has_the_issues_columns(bench):
    text = bench.markdown([{"network": "x", "seconds": 1.0}])
    assert text.splitlines()[0].count("|") == len(bench.COLUMNS) + 1 and "| x |" in text
