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


# Test digits 2921 and 8408 are two of the 9 whose class the Affine read-out's decays decide: with the (0, 0) the netx
# reader used to give it (Lava 99.16 % on the test set) they are classed otherwise than with netx's (0, 4096).
READOUT_DIGITS = [2921, 8408, 0, 1]


def test_bootstrap_mnist_lava_fixed_pt_equals_torch_in_spikes_and_read_out(bench, fixtures_dir, no_lava_leftovers):
    """Lava from the netx reader (simulate's path) and torch from the netx import (evaluate's path) run the
    neuron-less read-out layer by the same convention: every spike, every read-out voltage, every class."""
    result = bench.bootstrap_lava(fixtures_dir / "mnist-mlp-512" / "network.net", READOUT_DIGITS)  # one build
    assert result["spikes"] > 0
    assert result["digits_spike_exact"] == 4 and result["voltages_equal"] == 4
    assert result["lava_predictions"] == result["torch_predictions"]


def test_a_neuron_less_netx_layer_is_read_as_netx_runs_it(fixtures_dir, tmp_path):
    """The convention itself: netx's neuron for a dense layer without one (lava-dl netx hdf5.py), in the netx
    reader, the torch import and a netx file written back (which omits the neuron again, as lava-dl writes it)."""
    import h5py

    from snndeploy.export.netx_io import write_netx
    from snndeploy.export.slayer_io import from_slayer
    from snndeploy.loader import load_model, load_net
    from snndeploy.loihi import NETX_READOUT_DECAYS

    path = fixtures_dir / "mnist-mlp-512" / "network.net"
    read, imported = load_net(path).layers[-1].neuron, from_slayer(load_model(path)).layers[-1].neuron
    for neuron in (read, imported):
        assert (int(neuron.i_decay), int(neuron.v_decay), neuron.spiking) == (*NETX_READOUT_DECAYS, False)
    write_netx(load_net(path), tmp_path / "back.net")
    with h5py.File(tmp_path / "back.net") as f:
        assert "neuron" not in f["layer/3"] and "neuron" in f["layer/2"]


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
