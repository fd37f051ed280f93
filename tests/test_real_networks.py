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


def test_netx_mnist_reproduces_its_tutorial_run(bench, fixtures_dir, no_lava_leftovers):
    """The tutorial's published run (IF-encoded test digits, 32 steps, 'Accuracy on Loihi Board: 1.0' on 25):
    its first 5 digits, torch and Lava fixed_pt."""
    result = bench.netx_mnist_tutorial(fixtures_dir / "mnist-mlp-128" / "network.net", samples=5)
    assert result["torch_accuracy"] == 1.0 and result["lava_accuracy"] == 1.0 and result["same"] == 5


def test_norse_lif_spikes_where_loihi_2_did(bench, no_lava_leftovers):
    """The NIR paper's norse LIF through export --quantize and simulate --input: the real Loihi 2 trace's spikes."""
    assert bench.norse_lif().endswith("identical to the Loihi 2 trace (461, 511, 711, 761)")
