"""`snndeploy export` / `verify`, the netx HDF5 writer (checked by lava-dl's own netx), ONNX (checker + onnxruntime)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import snndeploy  # noqa: F401
from snndeploy.cli import main
from snndeploy.export.ir import Layer, LoihiNet, Neuron
from snndeploy.export.lava_net import simulate_lava
from snndeploy.export.netx_io import read_netx, write_netx
from snndeploy.export.verify import sample_inputs


def _netx_spikes(path, x: np.ndarray) -> np.ndarray:
    """Output spikes of lava-dl's own netx network for ``path`` (fixed_pt), through snndeploy's runner."""
    from lava.lib.dl import netx
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc import io

    from snndeploy import lava_runner

    net = netx.hdf5.Network(net_config=str(path))
    source = io.source.RingBuffer(data=x)
    sink = io.sink.RingBuffer(shape=net.out.shape, buffer=x.shape[-1])
    source.s_out.connect(net.inp)
    net.out.connect(sink.a_in)
    with lava_runner.lava_session(net):
        lava_runner.run_steps(net, x.shape[-1], Loihi2SimCfg(select_tag="fixed_pt"), timeout_s=120,
                              stop_after=False)
        return np.array(sink.data.get())


def recurrent_net() -> LoihiNet:
    rng = np.random.default_rng(3)
    w_in = rng.integers(-40, 60, size=(24, 16)) * 2 / 64
    w_rec = rng.integers(-30, 30, size=(24, 24)) * 2 / 64
    hidden = Neuron(i_decay=np.array(1024), v_decay=np.array(256), threshold=np.array(1.0))
    out = Neuron(i_decay=np.array(2048), v_decay=np.array(128), threshold=np.array(0.75))
    w_out = rng.integers(-50, 70, size=(6, 24)) * 2 / 64
    return LoihiNet("rnn", (16,), (Layer("rec", "dense", (16,), (24,), hidden, w_in, recurrent=w_rec),
                                   Layer("out", "dense", (24,), (6,), out, w_out)), time_steps=40)


def test_netx_writer_round_trips_and_lava_dl_netx_agrees(fixtures_dir, tmp_path, no_lava_leftovers):
    from snndeploy.export.slayer_io import from_slayer
    from snndeploy.models.netx_import import import_netx

    for name in ("mnist-mlp-128", "mnist-mlp-512"):
        net = from_slayer(import_netx(fixtures_dir / name / "network.net"))
        path = write_netx(net, tmp_path / f"{name}.net")
        back = read_netx(path)
        assert [la.out_shape for la in back.layers] == [la.out_shape for la in net.layers]
        for la, lb in zip(net.layers, back.layers, strict=True):
            assert np.array_equal(np.asarray(la.weight), np.asarray(lb.weight))
    # netx drives an input layer with neurons by its bias only, so compare on the MLP without one
    net = from_slayer(import_netx(fixtures_dir / "mnist-mlp-128" / "network.net"))
    x = sample_inputs((784,), 20, 1, 0.3, 0)[0]
    ours = simulate_lava(net, x).spikes[-1]
    assert ours.sum() > 0
    assert np.array_equal(_netx_spikes(tmp_path / "mnist-mlp-128.net", x), ours)


def test_non_square_kernels_and_dilations_run_the_same_in_lava_dl_netx(tmp_path, no_lava_leftovers):
    """Kernel, stride, padding and dilation as (height, width) pairs reach lava-dl's netx in its x, y order."""
    from snndeploy.export.lava_net import to_lava_layout
    from snndeploy.export.slayer_io import from_slayer
    from snndeploy.models.build import build_model
    from snndeploy.models.spec import spec_from_dict

    spec = spec_from_dict({"name": "tall", "input_shape": [2, 9, 7], "time_steps": 12,
                           "neuron": {"threshold": 0.6, "current_decay": 0.3, "voltage_decay": 0.1}, "blocks": [
                               {"kind": "conv", "out": 4, "kernel": [3, 2], "stride": [2, 1], "padding": [1, 0]},
                               {"kind": "conv", "out": 3, "kernel": [1, 3], "dilation": [1, 2]},
                               {"kind": "flatten"}, {"kind": "dense", "out": 5}]})
    torch.manual_seed(0)
    net = from_slayer(build_model(spec).eval())
    assert [la.out_shape for la in net.layers] == [(4, 5, 6), (3, 5, 2), (5,)]
    x = (np.random.default_rng(0).random((2, 9, 7, 12)) < 0.6).astype(float)
    ours = simulate_lava(net, x).spikes
    assert all(s.sum() > 0 for s in ours)
    assert np.array_equal(_netx_spikes(write_netx(net, tmp_path / "tall.net"), to_lava_layout(x)), ours[-1])


def test_shrunk_model_netx_file_runs_in_lava_dl_netx(fixtures_dir, tmp_path, no_lava_leftovers):
    from snndeploy.export.slayer_io import from_slayer
    from snndeploy.models.netx_import import import_netx
    from snndeploy.prune.graph import build_graph
    from snndeploy.prune.shrink import shrink

    model = import_netx(fixtures_dir / "mnist-mlp-128" / "network.net")
    shrink(model, build_graph(model, (784,)), {0: torch.arange(0, 128, 2)})
    net = from_slayer(model)
    x = sample_inputs((784,), 20, 1, 0.4, 1)[0]
    ours = simulate_lava(net, x).spikes[-1]
    assert ours.sum() > 0
    assert np.array_equal(_netx_spikes(write_netx(net, tmp_path / "shrunk.net"), x), ours)


def test_recurrent_layer_matches_lava_dl_netx_dense_rec(tmp_path, no_lava_leftovers):
    net = recurrent_net()
    x = sample_inputs((16,), 40, 1, 0.3, 2)[0]
    ours = simulate_lava(net, x)
    assert ours.spikes[0].sum() > 0 and ours.spikes[1].sum() > 0
    expected = _netx_spikes(write_netx(net, tmp_path / "rnn.net"), x)
    assert np.array_equal(ours.spikes[1], expected)


def test_onnx_step_matches_torch_over_the_whole_input(fixtures_dir, tmp_path):
    import onnx

    from snndeploy.export.onnx_export import StepNet, export_onnx, run_onnx, run_steps_torch
    from snndeploy.export.slayer_io import from_slayer
    from snndeploy.models.netx_import import import_netx

    for net in (from_slayer(import_netx(fixtures_dir / "tinynet" / "tiny.net")), recurrent_net()):
        path = export_onnx(net, tmp_path / f"{net.name}.onnx")
        onnx.checker.check_model(onnx.load(str(path)))
        x = sample_inputs(net.input_shape, 30, 2, 0.3, 0)
        got = run_onnx(path, net, x)
        ref = run_steps_torch(StepNet(net), torch.as_tensor(x))
        assert sum(float(g.sum()) for g in got) > 0
        for g, r in zip(got, ref, strict=True):
            assert np.array_equal(g, r.numpy())


def test_onnx_step_equals_lava_floating_pt(no_lava_leftovers):
    from snndeploy.export.onnx_export import StepNet, run_steps_torch

    net = recurrent_net()
    x = sample_inputs(net.input_shape, 30, 1, 0.3, 5)
    ref = run_steps_torch(StepNet(net), torch.as_tensor(x))
    lava = simulate_lava(net, x[0], mode="floating_pt")
    for r, s in zip(ref, lava.spikes, strict=True):
        assert np.array_equal(r[0].numpy(), s)


def _cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_export_all_targets_verify_and_no_overwrite(fixtures_dir, tmp_path, capsys, no_lava_leftovers):
    model = str(fixtures_dir / "mnist-mlp-128" / "network.net")
    for target, name in (("nir", "m.nir"), ("netx", "m.net"), ("onnx", "m.onnx"), ("lava", "lava")):
        out = tmp_path / name
        code, stdout, _ = _cli(["export", model, "--to", target, "--out", str(out), "--json"], capsys)
        assert code == 0, stdout
        result = json.loads(stdout)
        assert result["to"] == target and out.exists() and len(result["layers"]) == 3
    assert (tmp_path / "lava" / "network.nir").is_file()
    assert json.loads((tmp_path / "lava" / "lava.json").read_text())["layers"][0]["neuron"]["process"] == "LIF"
    before = (tmp_path / "m.nir").read_bytes()
    code, _, err = _cli(["export", model, "--to", "nir", "--out", str(tmp_path / "m.nir")], capsys)
    assert code == 2 and "exists" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "m.nir").read_bytes() == before
    code, stdout, _ = _cli(["export", model, "--to", "nir", "--out", str(tmp_path / "m.nir"), "--force", "--verify",
                            "--samples", "1", "--steps", "15", "--json"], capsys)
    assert code == 0 and json.loads(stdout)["verify"]["agree"] is True
    np.save(tmp_path / "x.npy", sample_inputs((784,), 15, 1, 0.3, 7))  # given inputs instead of sampled ones
    code, stdout, _ = _cli(["verify", model, str(tmp_path / "lava"), "--inputs", str(tmp_path / "x.npy"), "--json"],
                           capsys)
    result = json.loads(stdout)
    assert code == 0 and result["agree"] is True and result["steps"] == 15
    np.save(tmp_path / "bad.npy", np.zeros((3, 15)))
    code, _, err = _cli(["verify", model, str(tmp_path / "lava"), "--inputs", str(tmp_path / "bad.npy")], capsys)
    assert code == 2 and "does not fit the model input" in err


def test_cli_verify_reports_divergence_with_exit_1(fixtures_dir, tmp_path, capsys, no_lava_leftovers):
    from dataclasses import replace

    from snndeploy.export.nir_io import read_nir, write_nir

    model = str(fixtures_dir / "mnist-mlp-128" / "network.net")
    assert _cli(["export", model, "--to", "nir", "--out", str(tmp_path / "m.nir")], capsys)[0] == 0
    net = read_nir(tmp_path / "m.nir")
    layer = net.layers[0]
    changed = replace(layer, weight=np.where(np.asarray(layer.weight) != 0, np.asarray(layer.weight) * 2, 0))
    write_nir(net.with_layers([changed, *net.layers[1:]]), tmp_path / "bad.nir")
    code, stdout, _ = _cli(["verify", model, str(tmp_path / "bad.nir"), "--samples", "1", "--steps", "15",
                            "--plot", str(tmp_path / "v.png")], capsys)
    assert code == 1 and "DIVERGE" in stdout and "first divergence: sample 0, layer 0" in stdout
    assert (tmp_path / "v.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("content", [b"", b"garbage that is not hdf5"])
def test_cli_corrupt_inputs_are_one_line_errors(tmp_path, capsys, content):
    for suffix in (".nir", ".net"):
        bad = tmp_path / f"bad{suffix}"
        bad.write_bytes(content)
        code, _, err = _cli(["export", str(bad), "--to", "nir", "--out", str(tmp_path / "o.nir")], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "o.nir").exists()


def test_an_off_grid_model_is_refused_by_the_lava_commands_in_fixed_pt_only(tmp_path, capsys, no_lava_leftovers):
    """A float (unquantized) spec has no fixed_pt Lava network: export --to lava, simulate and deploy refuse it
    before anything runs or is written; --precision floating_pt exports it."""
    spec = tmp_path / "float.yaml"
    spec.write_text("name: float_mlp\ninput_shape: [12]\ntime_steps: 8\nquantize: false\n"
                    "blocks:\n  - {kind: dense, out: 6}\n  - {kind: dense, out: 3}\n")
    out = tmp_path / "lava"
    code, _, err = _cli(["export", str(spec), "--to", "lava", "--out", str(out)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "off Loihi's grid" in err, err
    assert "--precision floating_pt" in err and not out.exists()
    code, stdout, _ = _cli(["export", str(spec), "--to", "lava", "--out", str(out), "--precision", "floating_pt",
                            "--json"], capsys)
    assert code == 0 and json.loads(stdout)["written"] is True and (out / "network.nir").is_file()
    np.save(tmp_path / "x.npy", np.ones((12, 8)))
    for command in (["simulate", str(spec), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "sim")],
                    ["deploy", str(spec), "--out", str(tmp_path / "bundle")]):
        code, _, err = _cli(command, capsys)  # simulate and deploy refuse it before any Lava runtime starts
        assert code == 2 and f"{spec}: " in err and "off Loihi's grid" in err, err
    assert not (tmp_path / "sim").exists() and not (tmp_path / "bundle").exists()


@pytest.mark.parametrize(("neuron", "target", "problem"), [
    ("alif", "nir", "no Loihi CUBA mapping"),
    ("sigma_delta", "onnx", "does not support sigma_delta"),
])
def test_cli_export_refusals_name_the_model_file(tmp_path, capsys, neuron, target, problem):
    spec = tmp_path / f"{neuron}.yaml"
    spec.write_text(f"name: n\ninput_shape: [12]\ntime_steps: 8\nneuron: {{kind: {neuron}}}\n"
                    "blocks:\n  - {kind: input}\n  - {kind: dense, out: 6}\n")
    out = tmp_path / f"out.{target}"
    code, _, err = _cli(["export", str(spec), "--to", target, "--out", str(out)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and problem in err, err
    assert f"{spec}: " in err and not out.exists()
