"""Rectangular kernel, stride, padding and dilation (distinct height and width) through every stage: the spec and
its YAML, the SLAYER build, NIR, the Lava build (spike for spike), the netx writer and reader, ONNX and the
estimator's counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

import snndeploy  # noqa: F401
from snndeploy.errors import UserError
from snndeploy.export.nir_io import read_nir, to_nir, write_nir
from snndeploy.export.slayer_io import from_slayer, spec_of
from snndeploy.export.verify import describe, sample_inputs, verify
from snndeploy.models.build import build_model
from snndeploy.models.spec import BlockSpec, dump_spec, spec_from_dict, spec_to_dict

SPEC = {
    "name": "rect", "input_shape": [2, 9, 14], "time_steps": 16,
    "neuron": {"threshold": 0.5, "current_decay": 0.25, "voltage_decay": 0.05},
    "blocks": [
        {"kind": "conv", "out": 5, "kernel": [3, 5], "stride": [2, 1], "padding": [1, 0], "dilation": [1, 2],
         "bias": True},
        {"kind": "pool", "kernel": [1, 2]},
        {"kind": "conv", "out": 4, "kernel": [2, 3], "stride": [1, 2], "padding": [0, 1]},
        {"kind": "flatten"}, {"kind": "dense", "out": 6}]}


def _model():
    torch.manual_seed(3)
    model = build_model(spec_from_dict(SPEC))
    with torch.no_grad():
        for i in (0, 2):
            model.blocks[i].synapse.weight.mul_(3)
        model.blocks[0].neuron.norm.value.data = torch.linspace(-0.1, 0.2, 5)
    return model.eval()


def _torch_conv_shape(shape, block: BlockSpec, out: int) -> tuple[int, ...]:
    conv = torch.nn.Conv2d(shape[0], out, block.pair("kernel"), block.pair("stride"), block.pair("padding"),
                           block.pair("dilation"))
    return tuple(conv(torch.zeros(1, *shape)).shape[1:])


def test_spec_takes_int_or_height_width_pairs_and_round_trips():
    spec = spec_from_dict(SPEC)
    conv = spec.blocks[0]
    assert (conv.pair("kernel"), conv.pair("stride"), conv.pair("padding"), conv.pair("dilation")) == \
        ((3, 5), (2, 1), (1, 0), (1, 2))
    assert spec.blocks[1].pair("stride") == (1, 2)  # pooling stride defaults to its (rectangular) kernel
    assert spec.shapes()[0] == _torch_conv_shape((2, 9, 14), conv, 5) == (5, 5, 6)
    assert spec.shapes()[1] == (5, 5, 3)
    again = spec_from_dict(yaml.safe_load(dump_spec(spec)))
    assert again == spec
    assert spec_to_dict(spec)["blocks"][0]["kernel"] == [3, 5]
    assert spec_from_dict({**SPEC, "blocks": [{"kind": "conv", "out": 2, "kernel": [3, 3]}]}).blocks[0].kernel == 3


@pytest.mark.parametrize("bad", [[3], [3, 3, 3], "3", [3.0, 2], [0, 2]])
def test_spec_refuses_bad_pairs_in_one_line(bad):
    with pytest.raises(UserError, match="kernel"):
        spec_from_dict({**SPEC, "blocks": [{"kind": "conv", "out": 2, "kernel": bad}]})


def test_slayer_nir_lava_are_spike_exact_and_the_spec_comes_back(tmp_path, no_lava_leftovers):
    model = _model()
    net = read_nir(write_nir(from_slayer(model), tmp_path / "rect.nir"))
    assert [layer.stride for layer in net.layers[:3]] == [(2, 1), (1, 2), (1, 2)]
    assert net.layers[1].kernel == (1, 2) and net.layers[0].dilation == (1, 2)
    report = verify(model, net, sample_inputs(net.input_shape, 16, 2, 0.4, 0), probe=True)
    assert report.agree, describe(report)
    assert all(la.torch_spikes > 0 for la in report.layers)
    assert _geometry(spec_of(net)) == _geometry(model.spec)


def _geometry(spec) -> list:
    return [(b.kind, b.out, *(b.pair(name) for name in ("kernel", "stride", "padding", "dilation")))
            for b in spec.blocks]


def test_netx_writer_and_both_netx_readers_keep_the_geometry(tmp_path):
    from snndeploy.export.netx_io import read_netx, write_netx
    from snndeploy.models.netx_import import import_netx

    net = from_slayer(_model())
    path = write_netx(net, tmp_path / "rect.net")
    back = read_netx(path)
    for a, b in zip(net.layers, back.layers, strict=True):
        assert (a.stride, a.padding, a.dilation, a.out_shape) == (b.stride, b.padding, b.dilation, b.out_shape)
    imported = import_netx(path, input_shape=tuple(SPEC["input_shape"]))
    assert imported.spec.blocks[0].pair("kernel") == (3, 5)
    x = torch.as_tensor(sample_inputs(net.input_shape, 16, 2, 0.4, 1))
    with torch.no_grad():
        assert torch.equal(imported(x), _model()(x))


def test_onnx_step_model_matches_torch(tmp_path):
    from snndeploy.export.onnx_export import StepNet, export_onnx, run_onnx, run_steps_torch

    net = from_slayer(_model())
    x = sample_inputs(net.input_shape, 12, 2, 0.4, 2)
    got = run_onnx(export_onnx(net, tmp_path / "rect.onnx"), net, x)
    ref = run_steps_torch(StepNet(net), torch.as_tensor(x))
    assert sum(float(g.sum()) for g in got) > 0
    for g, r in zip(got, ref, strict=True):
        assert np.array_equal(g, r.numpy())


def test_estimator_counts_every_rectangular_synapse():
    from snndeploy.hardware.load import layers_from_nir
    from snndeploy.sim_activity import fan_out

    net = from_slayer(_model())
    counted = layers_from_nir(to_nir(net))
    convs = [layer for layer in net.layers if layer.op in ("conv", "pool")]
    for ours, est in zip(convs, [c for c in counted if c.op in ("conv", "pool")], strict=True):
        assert est.neurons == ours.size
        assert est.synapses_nonzero == int(fan_out(ours).sum())
        assert est.out_shape == ours.out_shape
