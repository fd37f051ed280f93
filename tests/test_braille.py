"""The NIR paper's snnTorch Braille graphs (tests/data/nir): the synaptic bias mapped exactly, reset conventions never
changed silently, and snnTorch's own node conversions agree with our step model and our Lava run
(benchmarks/braille_snntorch.py runs the full comparison)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nir
import numpy as np
import pytest

import snndeploy  # noqa: F401
from snndeploy.cli import main
from snndeploy.errors import UserError
from snndeploy.export.ir import first_difference
from snndeploy.export.nir_io import read_nir, write_nir

DATA = Path(__file__).parent / "data" / "nir"
BIAS, SUBTRACT = DATA / "braille_noDelay_bias_zero.nir", DATA / "braille_noDelay_noBias_subtract.nir"
SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "braille_snntorch.py"


@pytest.fixture(scope="module")
def bench():
    pytest.importorskip("snntorch", reason="snnTorch is installed by scripts/setup.sh (requirements/stack.txt)")
    spec = importlib.util.spec_from_file_location("braille_snntorch", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reset_is_never_chosen_silently():
    """NIR 1.0 records no reset mechanism: the import says what runs; subtraction, asked for or recorded in the
    metadata, is refused with the node's name and what would run instead; --reset zero accepts reset to zero."""
    net = read_nir(SUBTRACT, dt=1e-4)
    assert "'lif1.lif', 'lif2'" in net.meta["notes"][0] and "reset to zero" in net.meta["notes"][0]
    with pytest.raises(UserError, match=r"node 'lif1.lif'.*subtraction.*--reset zero"):
        read_nir(SUBTRACT, dt=1e-4, reset="subtract")
    assert read_nir(SUBTRACT, dt=1e-4, reset="zero").meta["notes"] == []
    graph = nir.read(SUBTRACT)
    graph.nodes["lif2"].metadata = {"reset_mechanism": "subtract"}
    from snndeploy.export.nir_io import from_nir

    with pytest.raises(UserError, match=r"node 'lif2': the graph records reset by subtraction"):
        from_nir(graph, dt=1e-4)
    assert from_nir(graph, dt=1e-4, reset="zero").layers[1].neuron.spiking


def test_subtract_refusal_is_one_line_exit_2(tmp_path, capsys):
    code = main(["export", str(SUBTRACT), "--to", "lava", "--out", str(tmp_path / "out"), "--dt", "1e-4",
                 "--reset", "subtract"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "lif1.lif" in err and not (tmp_path / "out").exists()


def test_synaptic_bias_round_trips_through_our_nir(tmp_path):
    net = read_nir(BIAS, dt=1e-4, reset="zero")
    back = read_nir(write_nir(net, tmp_path / "braille.nir"))
    assert first_difference(net, back, names=False) is None
    assert isinstance(nir.read(tmp_path / "braille.nir").nodes["fc1_syn"], nir.Affine)


def test_snntorch_conversion_equals_our_step_model(bench):
    """Float32 on both sides; our decays are Loihi's 12-bit integers (1843/4096 for snnTorch's alpha 0.55), which can
    flip a spike near threshold on long runs, so this short run is checked exactly."""
    for path in (BIAS, SUBTRACT):
        x = bench.inputs("sweep", 3, 80, seed=2)
        ref = bench.run_snntorch(bench.snntorch_chain(nir.read(path)), x)
        got = bench._agreement(ref, bench.ours_torch(read_nir(path, dt=1e-4, reset="zero"), x))
        assert all(row["ref_spikes"] > 0 for row in got["layers"]) and got["exact"], (path.name, got)


@pytest.mark.lava
def test_lava_floating_pt_equals_step_model_and_fixed_pt_its_quantized_self(bench, no_lava_leftovers):
    """Lava floating_pt (always-on bias axon and recurrence included) equals the step model spike for spike; fixed_pt
    after quantize_net runs the quantized network: compared with that network's floating_pt run, only Loihi's integer
    states differ (u and v rounded every step), and in a recurrent layer a moved spike moves others: 15 of 197
    spikes here, so a tolerance of 10 % of the spikes."""
    from snndeploy.export.quantize import quantize_net

    net = read_nir(BIAS, dt=1e-4, reset="zero")
    x = bench.inputs("rate0.2", 2, 40, seed=3)
    torch_out = bench.ours_torch(net, x)
    lava_out = bench.ours_lava(net, x, "floating_pt")
    assert all(np.array_equal(t, s) for t, s in zip(torch_out, lava_out, strict=True))
    quantized, _ = quantize_net(net)
    fixed, floating = bench.ours_lava(quantized, x, "fixed_pt"), bench.ours_lava(quantized, x, "floating_pt")
    spikes = sum(int(f.sum()) for f in floating)
    assert spikes > 0 and sum(int((a != b).sum()) for a, b in zip(fixed, floating, strict=True)) <= 0.1 * spikes


@pytest.mark.lava
def test_simulate_runs_each_sample_of_a_synaptic_bias_network_as_if_alone(no_lava_leftovers):
    """The always-on bias axon starts with each sample, so ``simulate`` gives such a network a build (copy) per
    sample: the same spikes as separate runs."""
    from snndeploy.export.lava_net import simulate_lava
    from snndeploy.simulate import simulate_net

    net = read_nir(BIAS, dt=1e-4, reset="zero")
    x = (np.random.default_rng(1).random((3, 12, 40)) < 0.2).astype(np.uint8)
    result = simulate_net(net, x, mode="floating_pt", record=(0, 1))
    assert result.plan.per_copy == 1
    for k in range(3):
        alone = simulate_lava(net, x[k].astype(np.float64), mode="floating_pt")
        assert all(np.array_equal(result.layer_spikes[i][k], alone.spikes[i]) for i in range(2)), k
