"""SLAYER -> (NIR) -> Lava fixed_pt has zero spike error against the quantized SLAYER model: the fixtures, a conv +
pool + bias + delay network, unstructured pruning (Sparse) and structured shrink; divergences are located."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import snndeploy  # noqa: F401
from snndeploy.export.nir_io import read_nir, write_nir
from snndeploy.export.slayer_io import from_slayer
from snndeploy.export.verify import describe, sample_inputs, verify

NETX = {"tinynet": "tiny.net", "oxford": "network.net", "mnist-mlp-128": "network.net",
        "mnist-mlp-512": "network.net"}


def fixture_model(fixtures_dir, name):
    from snndeploy.models.netx_import import import_netx

    return import_netx(fixtures_dir / name / NETX[name]).eval()


def inputs_for(fixtures_dir, name, shape, steps=20, samples=1, rate=0.3):
    if name == "oxford":  # its own spikes (the dense-cuba golden input is oxford's first-layer input)
        return np.load(fixtures_dir / "dense-cuba" / "in.npy")[None, :, 200:200 + 3 * steps].astype(np.float32)
    return sample_inputs(shape, steps, samples, rate, 0)


@pytest.mark.parametrize("name", sorted(NETX))
def test_fixture_slayer_nir_lava_zero_spike_error(fixtures_dir, tmp_path, name, no_lava_leftovers):
    model = fixture_model(fixtures_dir, name)
    net = read_nir(write_nir(from_slayer(model), tmp_path / "m.nir"))  # through the .nir file
    x = inputs_for(fixtures_dir, name, net.input_shape)
    report = verify(model, net, x, probe=name == "mnist-mlp-512")
    assert report.agree, describe(report)
    assert report.first is None
    assert sum(la.torch_spikes for la in report.layers) > 0
    assert all(la.mismatches == 0 for la in report.layers)


def test_divergence_names_layer_step_neuron_and_variable(fixtures_dir, no_lava_leftovers):
    model = fixture_model(fixtures_dir, "mnist-mlp-128")
    net = from_slayer(model)
    broken = replace(net.layers[1], neuron=replace(net.layers[1].neuron, threshold=net.layers[1].neuron.threshold
                                                   * 0.5))
    net = net.with_layers([net.layers[0], broken, net.layers[2]])
    report = verify(model, net, sample_inputs(net.input_shape, 20, 1, 0.3, 0))
    assert not report.agree
    assert report.first.layer == 1 and report.first.variable == "spikes"
    assert report.layers[0].mismatches == 0 and report.layers[1].mismatches > 0
    assert (report.first.torch_value, report.first.lava_value) == (0.0, 1.0)
    assert "first divergence: sample 0, layer 1" in describe(report)


def _conv_pool_model():
    from snndeploy.models.build import build_model
    from snndeploy.models.spec import spec_from_dict

    torch.manual_seed(0)
    spec = spec_from_dict({
        "name": "convpool", "input_shape": [2, 12, 12], "time_steps": 20,
        "neuron": {"threshold": 0.5, "current_decay": 0.25, "voltage_decay": 0.05},
        "blocks": [{"kind": "conv", "out": 6, "kernel": 3, "padding": 1, "bias": True}, {"kind": "pool", "kernel": 2},
                   {"kind": "flatten"}, {"kind": "dense", "out": 20, "delay": True}, {"kind": "dense", "out": 5}]})
    model = build_model(spec)
    with torch.no_grad():
        model.blocks[0].synapse.weight.mul_(3)
        model.blocks[0].neuron.norm.value.data = torch.linspace(-0.2, 0.3, 6)
        model.blocks[3].delay.delay.data = torch.randint(0, 4, (20,)).float()
    return model.eval()


def test_conv_pool_bias_delay_network_is_exact_with_probes(no_lava_leftovers):
    """netx refuses pooling and drops conv delays; our converter runs this whole network bit-exactly."""
    model = _conv_pool_model()
    net = from_slayer(model)
    assert [layer.op for layer in net.layers] == ["conv", "pool", "dense", "dense"]
    report = verify(model, net, sample_inputs(net.input_shape, 16, 1, 0.3, 1), probe=True)
    assert report.agree, describe(report)
    assert report.synapses == ["Sparse", "Sparse", "Dense", "DelayDense"]  # conv and pool unrolled (fixed_pt)
    assert all(la.torch_spikes > 0 for la in report.layers)


PRUNE_CASES = [pytest.param("mnist-mlp-128"), pytest.param("oxford", marks=pytest.mark.slow),
               pytest.param("mnist-mlp-512", marks=pytest.mark.slow), pytest.param("tinynet", marks=pytest.mark.slow)]
# structured shrink: which producer blocks keep which channels (the input layer and outputs are never cut)
SHRINK = {"mnist-mlp-128": {0: (128, 2), 1: (64, 1)}, "oxford": {0: (256, 2)}, "mnist-mlp-512": {1: (512, 4)},
          "tinynet": {1: (24, 2)}}


@pytest.mark.parametrize("name", PRUNE_CASES)
def test_unstructured_pruning_uses_sparse_processes_and_stays_exact(fixtures_dir, name, no_lava_leftovers):
    from snndeploy.prune.engine import PruningEngine
    from snndeploy.prune.scores import weight_magnitude

    model = fixture_model(fixtures_dir, name)
    engine = PruningEngine(model)
    engine.prune_weights(0.85, weight_magnitude(engine), scope="layer")
    engine.finalize()
    net = from_slayer(model)
    pruned = [layer for layer in net.layers if layer.op in ("dense", "conv")]
    assert max(float(np.mean(np.asarray(layer.weight) != 0)) for layer in pruned) < 0.3
    report = verify(model, net, inputs_for(fixtures_dir, name, net.input_shape, rate=0.4))
    assert report.agree, describe(report)
    assert all(kind == "Sparse" for layer, kind in zip(net.layers, report.synapses, strict=True)
               if layer.op == "dense")


@pytest.mark.parametrize("name", PRUNE_CASES)
def test_structured_shrink_exports_the_smaller_network_exactly(fixtures_dir, name, no_lava_leftovers):
    from snndeploy.prune.graph import build_graph
    from snndeploy.prune.shrink import shrink

    model = fixture_model(fixtures_dir, name)
    keep = {block: torch.arange(0, size, step) if step > 1 else torch.arange(size // 2 + 8)
            for block, (size, step) in SHRINK[name].items()}
    before = [layer.out_shape[0] for layer in from_slayer(model).layers]
    shrink(model, build_graph(model, tuple(model.spec.input_shape)), keep)
    net = from_slayer(model)
    after = [layer.out_shape[0] for layer in net.layers]
    assert sum(after) < sum(before) and after[-1] == before[-1]
    report = verify(model, net, inputs_for(fixtures_dir, name, net.input_shape, rate=0.4))
    assert report.agree, describe(report)
    assert report.layers[0].torch_spikes > 0


def test_conv_pool_and_last_layer_delays_run_through_axon_delay(no_lava_leftovers):
    """Delays that no Lava synapse can carry (netx drops conv delays silently) run in snndeploy's AxonDelay."""
    from snndeploy.models.build import build_model
    from snndeploy.models.spec import spec_from_dict

    torch.manual_seed(1)
    spec = spec_from_dict({
        "name": "convdelay", "input_shape": [2, 12, 12], "time_steps": 16,
        "neuron": {"threshold": 0.5, "current_decay": 0.25, "voltage_decay": 0.05},
        "blocks": [{"kind": "conv", "out": 6, "kernel": 3, "padding": 1, "delay": True},
                   {"kind": "pool", "kernel": 2, "delay": True}, {"kind": "flatten"},
                   {"kind": "dense", "out": 20}, {"kind": "dense", "out": 5, "delay": True}]})
    model = build_model(spec)
    with torch.no_grad():
        model.blocks[0].synapse.weight.mul_(3)
        model.blocks[3].synapse.weight.mul_(2)
        for index, size, top in ((0, 6, 4), (1, 6, 3), (4, 5, 3)):
            model.blocks[index].delay.delay.data = torch.randint(0, top, (size,)).float()
    model.eval()
    net = from_slayer(model)
    assert all(net.layers[i].delay is not None for i in (0, 1, 3))
    report = verify(model, net, sample_inputs(net.input_shape, 16, 1, 0.3, 1))
    assert report.agree, describe(report)
    assert all(la.torch_spikes > 0 for la in report.layers)


def test_weight_norm_model_exports_exactly_and_is_left_untouched(no_lava_leftovers):
    """lava-dl's export_hdf5 strips weight norm from the live model; ours computes the normalised weight aside."""
    from snndeploy.models.build import build_model
    from snndeploy.models.spec import spec_from_dict

    torch.manual_seed(2)
    spec = spec_from_dict({"name": "wn", "input_shape": [60], "time_steps": 20,
                           "neuron": {"threshold": 0.4, "current_decay": 0.5, "voltage_decay": 0.1},
                           "blocks": [{"kind": "dense", "out": 30, "weight_norm": True, "weight_scale": 4},
                                      {"kind": "dense", "out": 6, "weight_norm": True, "weight_scale": 4}]})
    model = build_model(spec).eval()
    keys = sorted(model.state_dict())
    assert any(k.endswith("weight_g") for k in keys)
    net = from_slayer(model)
    assert sorted(model.state_dict()) == keys
    report = verify(model, net, sample_inputs((60,), 20, 1, 0.3, 0))
    assert report.agree, describe(report)
    assert report.layers[0].torch_spikes > 0
