"""``snndeploy simulate`` on the real Lava CPU backend: per-sample spikes equal the export's verified reference
(SLAYER, aligned as in ``snndeploy.export.verify``) on fixture networks and real data; activity feeds the estimator."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import snndeploy  # noqa: F401
from snndeploy.cli import main
from snndeploy.errors import UserError
from snndeploy.export.lava_net import build_lava, run_lava
from snndeploy.export.verify import torch_reference
from snndeploy.loader import load_net
from snndeploy.sim_activity import ActivityCounter, fan_out
from snndeploy.sim_inputs import prepare
from snndeploy.simulate import simulate_net

pytestmark = pytest.mark.lava


def reference(model, x: np.ndarray) -> list[np.ndarray]:
    """The export verification's torch reference per layer, in Lava's time alignment."""
    spikes, _, _ = torch_reference(model.eval(), x.astype(np.float32))
    return [s[..., 1:] for s in spikes]


def test_mnist_mlp_samples_equal_the_verified_reference(fixtures_dir, no_lava_leftovers):
    """5 real MNIST digits in two Lava builds (3 + 2 samples back to back, with resets): every layer of every
    sample equals the SLAYER reference; probes equal the export's own single-sample Lava run."""
    from snndeploy.loader import load_model

    path = fixtures_dir / "mnist-mlp-128" / "network.net"
    net, inputs = prepare(path, None, "mnist", 5, 20)
    result = simulate_net(net, inputs.spikes, record=(0,), probe=(1,), chunk_steps=60, copies=1)
    assert result.timing.chunks == 2 and result.output.shape == (5, 10, 20)
    model = load_model(path)
    for k in range(5):
        ref = reference(model, inputs.spikes[k].reshape(784, -1))
        for i in range(3):
            assert ref[i].sum() > 0, f"layer {i} silent"
            assert np.array_equal(result.layer_spikes[i][k], ref[i]), f"sample {k} layer {i}"
    # u and v of a probed layer (sample 3, which ran after a reset) equal an isolated run of that sample
    alone = run_lava(build_lava(net, inputs.spikes[3]), probe=(1,))
    assert np.array_equal(result.probes[1]["u"][3][..., 2:], alone.u[1][..., 2:])
    assert np.array_equal(result.probes[1]["v"][3][..., 2:], alone.v[1][..., 2:])
    assert np.array_equal(result.probes[1]["spikes"][3], alone.spikes[1] * (np.arange(20) > 1))
    counts = result.output.sum(axis=-1)
    assert np.array_equal(result.predictions(), counts.argmax(axis=1))
    # floating point: back to back equals alone as well
    floating = simulate_net(net, inputs.spikes[:3], mode="floating_pt", copies=1)
    alone = run_lava(build_lava(net, inputs.spikes[2], mode="floating_pt"))
    assert np.array_equal(floating.output[2][..., 3:], alone.spikes[-1][..., 3:]) and alone.spikes[-1].sum() > 0


def test_oxford_long_recording_equals_reference_and_floating_point_runs(fixtures_dir, no_lava_leftovers):
    """lava-dl's 200-channel spike recording (dense-cuba/in.npy) through the oxford network, one long sample."""
    from snndeploy.loader import load_model

    path = fixtures_dir / "oxford" / "network.net"
    x = np.load(fixtures_dir / "dense-cuba" / "in.npy")[:, :400]
    net = load_net(path)
    result = simulate_net(net, x[None], record=(0,))
    ref = reference(load_model(path), x)
    assert ref[1].sum() > 0
    assert np.array_equal(result.layer_spikes[0][0], ref[0])
    assert np.array_equal(result.output[0], ref[1])
    floating = simulate_net(net, x[None], mode="floating_pt")
    assert floating.output.sum() > 0 and floating.timing.steps_per_s > 0


def test_nmnist_cnn_on_real_events_equals_reference(data_dir, no_lava_leftovers):
    """A quantized N-MNIST CNN (examples/nmnist_cnn.yaml, seeded weights) on real nmnist-small test events."""
    from snndeploy.export.slayer_io import from_slayer
    from snndeploy.loader import load_model
    from snndeploy.settings import REPO_ROOT

    torch.manual_seed(0)
    model = load_model(REPO_ROOT / "examples" / "nmnist_cnn.yaml")
    net = from_slayer(model)
    assert [layer.op for layer in net.layers] == ["conv", "conv", "dense", "dense"]
    _, inputs = prepare(REPO_ROOT / "examples" / "nmnist_cnn.yaml", None, "nmnist-small", 2, 30)
    result = simulate_net(net, inputs.spikes, record=(2,))
    for k in range(2):
        ref = reference(model, inputs.spikes[k])
        assert ref[2].sum() > 0
        assert np.array_equal(result.layer_spikes[2][k], ref[2])
        assert np.array_equal(result.output[k], ref[3])
    # one sample alone: the in-place spike counters of the conv layers equal the reference's counts
    single = simulate_net(net, inputs.spikes[:1])
    ref = reference(model, inputs.spikes[0])
    for i in (0, 1):
        assert ref[i].sum() > 0
        assert np.array_equal(single.activity.layers[i].per_neuron, ref[i].sum(axis=-1).reshape(-1))


def test_fan_out_matches_a_brute_force_count(fixtures_dir):
    """Synaptic operations per input spike, for dense and strided/padded conv, against explicit enumeration."""
    from snndeploy.export.netx_io import read_netx

    tiny = read_netx(fixtures_dir / "tinynet" / "tiny.net")
    conv = tiny.layers[1]
    w = np.asarray(conv.weight) != 0
    c_out, c_in, kh, kw = w.shape
    _, h_in, w_in = conv.in_shape
    _, h_out, w_out = conv.out_shape
    expected = np.zeros(conv.in_shape, dtype=np.int64)
    (sy, sx), (py, px) = conv.stride, conv.padding
    for oy in range(h_out):
        for ox in range(w_out):
            for j in range(kh):
                for i in range(kw):
                    y, xx = oy * sy - py + j, ox * sx - px + i
                    if 0 <= y < h_in and 0 <= xx < w_in:
                        expected[:, y, xx] += w[:, :, j, i].sum(axis=0)
    assert np.array_equal(fan_out(conv), expected.reshape(-1))
    mlp = load_net(fixtures_dir / "mnist-mlp-128" / "network.net")
    assert np.array_equal(fan_out(mlp.layers[0]), (mlp.layers[0].dense_weight() != 0).sum(axis=0))


def test_activity_file_feeds_the_estimator(fixtures_dir, no_lava_leftovers):
    """The estimator's own reader accepts the file; its synops from spikes_per_neuron equal the measured ones."""
    from snndeploy.export.nir_io import to_nir
    from snndeploy.hardware.activity import SCHEMA, activity_from_dict, workload_metrics
    from snndeploy.hardware.load import layers_from_nir
    from snndeploy.sim_activity import ACTIVITY_SCHEMA
    from snndeploy.sim_outputs import activity_dict

    assert ACTIVITY_SCHEMA == SCHEMA
    path = fixtures_dir / "mnist-mlp-128" / "network.net"
    net, inputs = prepare(path, None, "mnist", 3, 16)
    result = simulate_net(net, inputs.spikes)
    raw = activity_dict(result, str(path))
    layers = layers_from_nir(to_nir(net))
    measured = workload_metrics(layers, activity_from_dict(raw))
    computed = workload_metrics(layers, activity_from_dict(
        {**raw, "layers": [{k: v for k, v in row.items() if k != "synops"} for row in raw["layers"]]}))
    for m, c, row in zip(measured["layers"], computed["layers"], raw["layers"], strict=True):
        assert m["synops_basis"] == "measured" and row["synops"] > 0
        assert m["synops_effective"] == pytest.approx(c["synops_effective"], rel=1e-9)
    assert raw["totals"]["neuron_updates"] == sum(layer.size for layer in net.layers) * 16
    counter = ActivityCounter(net)
    assert [a.synapses for a in counter.layers] == [layer.synapses_nonzero for layer in layers]


def test_cli_writes_outputs_accuracy_and_activity(fixtures_dir, tmp_path, capsys, no_lava_leftovers):
    path = fixtures_dir / "mnist-mlp-128" / "network.net"
    out = tmp_path / "sim"
    args = ["simulate", str(path), "--dataset", "mnist", "--samples", "4", "--steps", "16", "--probe", "layer1",
            "--out", str(out), "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"output.npy", "activity.json", "labels.npy", "predictions.npy", "result.json", "simulate.png",
            "probe_layer1_u.npy", "probe_layer1_v.npy", "probe_layer1_spikes.npy"} <= {p.name for p in out.iterdir()}
    output, labels = np.load(out / "output.npy"), np.load(out / "labels.npy")
    assert output.shape == (4, 10, 16)
    assert result["accuracy"] == float(np.mean(output.sum(axis=-1).argmax(axis=1) == labels))
    assert result["timing"]["steps_per_s"] > 0 and result["timing"]["overhead_s"] > 0
    assert np.load(out / "probe_layer1_v.npy").shape == (4, 64, 16)
    # the estimator reads the activity file
    assert main(["estimate", str(path), "--activity", str(out / "activity.json"), "--json"]) in (0, 1)
    estimate = json.loads(capsys.readouterr().out)
    assert estimate["neurobench_workload"]["synops_effective"] > 0
    # an existing output folder is refused and left as it was
    before = sorted(p.name for p in out.iterdir())
    assert main(args) == 2
    assert "exists" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before


def test_bad_inputs_are_one_line_errors(fixtures_dir, tmp_path, capsys):
    path = fixtures_dir / "mnist-mlp-128" / "network.net"
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((3, 100, 10)))
    cases = [
        ["simulate", str(path), "--input", str(wrong)],
        ["simulate", str(path), "--dataset", "mnist", "--probe", "nope"],
        ["simulate", str(tmp_path / "missing.net"), "--dataset", "mnist"],
        ["simulate", str(path)],
    ]
    for args in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("snndeploy: error:") and "\n" not in err
    with pytest.raises(UserError):
        prepare(path, wrong, None, None, None)


def test_nir_file_and_checkpoint_run_through_the_cli(fixtures_dir, tmp_path, capsys, no_lava_leftovers):
    """MODEL may be an exported .nir (same spikes as its netx source) or a training checkpoint (converted)."""
    from snndeploy.export.nir_io import write_nir
    from snndeploy.loader import load_model
    from snndeploy.models.checkpoint import make_checkpoint, save_checkpoint
    from snndeploy.settings import REPO_ROOT

    netx = fixtures_dir / "oxford" / "network.net"
    nir_path = write_nir(load_net(netx), tmp_path / "oxford.nir")
    spikes = tmp_path / "in.npy"
    np.save(spikes, np.load(fixtures_dir / "dense-cuba" / "in.npy")[:, :150])
    outputs = []
    for model in (netx, nir_path):
        out = tmp_path / f"out-{model.suffix[1:]}"
        assert main(["simulate", str(model), "--input", str(spikes), "--out", str(out), "--json"]) == 0
        capsys.readouterr()
        outputs.append(np.load(out / "output.npy"))
    assert outputs[0].sum() > 0 and np.array_equal(outputs[0], outputs[1])

    torch.manual_seed(1)
    model = load_model(REPO_ROOT / "examples" / "mnist_mlp.yaml")
    ckpt = save_checkpoint(tmp_path / "mlp.pt", make_checkpoint(model))
    assert main(["simulate", str(ckpt), "--dataset", "mnist", "--samples", "2", "--steps", "12",
                 "--out", str(tmp_path / "out-pt"), "--json"]) == 0
    capsys.readouterr()
    output = np.load(tmp_path / "out-pt" / "output.npy")
    activity = json.loads((tmp_path / "out-pt" / "activity.json").read_text())
    assert all(row["spikes"] > 0 for row in activity["layers"][:-1])
    _, inputs = prepare(ckpt, None, "mnist", 2, 12)
    for k in range(2):
        assert np.array_equal(output[k], reference(model, inputs.spikes[k])[-1])


def test_a_biased_network_runs_back_to_back_and_exactly(fixtures_dir, no_lava_leftovers):
    """mnist-mlp-512's layers have biases, which drive them from step 0 of a separate run: back to back, every
    layer starts afresh at each sample's first step, and every spiking layer equals the reference. netx's own
    back-to-back scheme (a Loihi bundle) cannot do that: ``separate_runs`` says why."""
    from snndeploy.loader import load_model
    from snndeploy.simulate import own_build, separate_runs

    path = fixtures_dir / "mnist-mlp-512" / "network.net"
    net, inputs = prepare(path, None, "mnist", 2, 12)
    assert separate_runs(net) == "the network has a bias"
    mlp128 = load_net(fixtures_dir / "mnist-mlp-128" / "network.net")
    assert separate_runs(mlp128) is None
    from dataclasses import replace

    delayed = mlp128.with_layers([replace(mlp128.layers[0], delay=np.ones(128, dtype=np.int64)),
                                  *mlp128.layers[1:]])
    assert separate_runs(delayed) == "the network has axonal delays" == own_build(delayed)
    assert own_build(net) is None
    result = simulate_net(net, inputs.spikes, record=(0, 1, 2), copies=1)
    assert result.timing.chunks == 1 and result.plan.per_copy == 2
    assert result.probes[3]["v"].shape == (2, 10, 12)  # the voltage read-out is probed automatically
    model = load_model(path)
    for k in range(2):
        ref = reference(model, inputs.spikes[k])
        for i in range(3):
            assert ref[i].sum() > 0 and np.array_equal(result.layer_spikes[i][k], ref[i]), (k, i)


def test_npz_input_with_labels_gives_the_same_accuracy_as_the_dataset(fixtures_dir, tmp_path, capsys,
                                                                      no_lava_leftovers):
    path = fixtures_dir / "mnist-mlp-128" / "network.net"
    _, inputs = prepare(path, None, "mnist", 3, 15)
    npz = tmp_path / "digits.npz"
    np.savez(npz, x=inputs.spikes.reshape(3, 1, 28, 28, 15), y=inputs.labels)  # image-shaped: reshaped to 784
    results = []
    for source in (["--input", str(npz)], ["--dataset", "mnist", "--samples", "3", "--steps", "15"]):
        assert main(["simulate", str(path), *source, "--json"]) == 0
        results.append(json.loads(capsys.readouterr().out))
    assert results[0]["accuracy"] == results[1]["accuracy"]
    assert results[0]["output_spikes"] == results[1]["output_spikes"] > 0
