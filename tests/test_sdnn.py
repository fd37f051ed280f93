"""Sigma-delta (SDNN) networks: lava-dl's PilotNet SDNN imported, run on Lava's own sigma-delta models against
lava-dl's goldens (test_hdf5.py::test_pilotnet_sdnn, test_hdf5_nx.py::test_pilotnet_sdnn_square)."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

import snndeploy  # noqa: F401
from snndeploy.cli import main
from snndeploy.errors import UserError
from snndeploy.export.ir import SigmaDelta, first_difference
from snndeploy.export.netx_io import read_netx

DATA = Path(__file__).parent / "data" / "pilotnet_sdnn"
LAVA_DL = Path("/work/.mirror/lava-nc+lava-dl/repo")
GTS = "tests/lava/lib/dl/netx/gts/pilotnet_sdnn"


def mirror_file(path: str, tmp_path: Path) -> Path:
    """A file of the lava-dl mirror (slow tests only; skipped where the mirror is absent)."""
    if not LAVA_DL.is_dir():
        pytest.skip("lava-dl mirror not present")
    out = tmp_path / Path(path).name
    out.write_bytes(subprocess.run(["git", "-C", str(LAVA_DL), "show", f"HEAD:{path}"], check=True,
                                   capture_output=True).stdout)
    return out


def test_netx_import_reads_every_sdnn_field():
    net = read_netx(DATA / "network.net")
    assert net.input_shape == (3, 33, 100)
    assert [layer.op for layer in net.layers] == ["input"] + ["conv"] * 4 + ["dense"] * 4
    assert all(isinstance(layer.neuron, SigmaDelta) for layer in net.layers)
    assert [int(layer.neuron.vth_mant) for layer in net.layers] == [0, 13, 0, 0, 0, 23, 1, 6, 6]
    assert [layer.neuron.sigma_output for layer in net.layers] == [False] * 8 + [True]
    third = net.layers[3]  # PilotNet's rectangular stride and padding
    assert (third.stride, third.padding, third.out_shape) == ((2, 1), (1, 0), (64, 4, 22))
    assert net.layers[1].neuron.bias.shape == (24,) and net.layers[5].flatten
    tutorial = read_netx(DATA / "tutorial_network.net")
    assert [layer.out_shape for layer in tutorial.layers][1:6] == [(24, 32, 99), (36, 15, 49), (48, 7, 24),
                                                                   (64, 4, 22), (64, 2, 20)]


def test_simulate_gives_lava_dl_golden_output_exactly(tmp_path, capsys, no_lava_leftovers):
    """lava-dl test_pilotnet_sdnn: as many steps as layers, fixed_pt, sum of absolute differences 0."""
    out = tmp_path / "sim"
    args = ["simulate", str(DATA / "network.net"), "--input", str(DATA / "input.npy"), "--steps", "9",
            "--out", str(out), "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    golden = np.load(DATA / "output.npy")
    output = np.load(out / "output.npy")
    assert output.shape == (1, 1, 9)
    assert np.abs(output[0] - golden).sum() == 0
    activity = json.loads((out / "activity.json").read_text())
    assert activity["input"]["graded"] and all(row["graded"] for row in activity["layers"])
    assert [row["payload_bits"] for row in activity["layers"]] == [16] * 9
    assert activity["layers"][-1]["spikes"] == 8  # the read-out sends its sigma whenever it is non-zero
    frame = np.load(DATA / "input.npy")  # replayed every step; the delta encoder sends each pixel once
    assert result["layers"][0]["spikes"] == np.count_nonzero(frame) and activity["input"]["spikes"] == 9 * 9656
    assert activity["layers"][1]["synops"] > 0


def test_sdnn_inputs_are_checked(tmp_path, capsys):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.full((100, 33, 3, 1), 0.5))
    for args in (["simulate", str(DATA / "network.net"), "--input", str(bad)],
                 ["simulate", str(DATA / "network.net"), "--dataset", "mnist"]):
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("snndeploy: error:") and "\n" not in err


def _sdnn_file(tmp_path: Path, **neuron) -> Path:
    import h5py

    path = tmp_path / "tiny.net"
    with h5py.File(path, "w") as f:
        f.create_dataset("layer/0/type", (1,), "S10", [b"input"])
        f.create_dataset("layer/0/shape", data=np.array([4]))
        for key, value in {"type": "SDNN", "activation": "relu", "vThMant": 0, **neuron}.items():
            f.create_dataset(f"layer/0/neuron/{key}", data=value)
        f.create_dataset("layer/1/type", (1,), "S10", [b"dense"])
        f.create_dataset("layer/1/shape", data=np.array([2]))
        f.create_dataset("layer/1/weight", data=np.ones((2, 4), np.float32) * 2)
        f.create_dataset("layer/1/neuron/type", data="SDNN")
        f.create_dataset("layer/1/neuron/vThMant", data=1)
    return path


def test_unsupported_sdnn_fields_are_named(tmp_path):
    with pytest.raises(UserError, match="activation 'tanh'"):
        read_netx(_sdnn_file(tmp_path, activation="tanh"))


@pytest.mark.slow
def test_square_network_sigma_states_equal_lava_dl_goldens(tmp_path, no_lava_leftovers):
    """lava-dl test_pilotnet_sdnn_square: the input layer skipped, act0[:33, :33] into the first conv; every
    conv layer's sigma state equals sigma<k>_square.npy at every one of its 20 steps (lava-dl checks step 5)."""
    from snndeploy.simulate_sd import simulate_sd

    net = read_netx(mirror_file(f"{GTS}/square_network.net", tmp_path))
    net = net.with_layers(net.layers[1:])
    act0 = np.load(io.BytesIO(mirror_file(f"{GTS}/act0.npy", tmp_path).read_bytes()))[:33, :33]
    x = act0.transpose(2, 1, 0, 3)[None]  # netx (W, H, C, T) -> (N, C, H, W, T)
    result = simulate_sd(net, x, probe=(0, 1, 2, 3))
    for k in range(4):
        golden = np.load(mirror_file(f"{GTS}/sigma{k + 1}_square.npy", tmp_path)).transpose(2, 1, 0, 3)
        assert np.array_equal(result.probes[k]["sigma"][0], golden), k


@pytest.mark.slow
def test_floating_point_stays_within_the_fixed_point_rounding(tmp_path, no_lava_leftovers):
    """floating_pt has no fixed-point truncation of graded spikes (fixed_pt drops each spike's 6 lowest state
    bits, netx's state_exp): PilotNet's read-out then differs by less than 0.1 % of its range."""
    from snndeploy.simulate_sd import load_sd_input, replay_steps, simulate_sd

    net = read_netx(DATA / "network.net")
    inputs = replay_steps(load_sd_input(DATA / "input.npy", net.input_shape), 9)
    result = simulate_sd(net, inputs.spikes, mode="floating_pt")
    golden = np.load(DATA / "output.npy")
    assert np.abs(result.output[0] - golden).max() < 1e-3 * np.abs(golden).max()


def assert_same_sdnn(a, b):
    """Equal in everything but layer names (an export through the SLAYER model names layers by block)."""
    assert first_difference(a, b, names=False) is None, first_difference(a, b, names=False)


@pytest.mark.parametrize("name", ["network.net", "tutorial_network.net"])
def test_export_nir_lava_netx_round_trip_exactly(name, tmp_path, capsys):
    import nir

    from snndeploy.export.nir_io import read_nir

    source = read_netx(DATA / name)
    for target in ("nir", "lava", "netx"):
        assert main(["export", str(DATA / name), "--to", target, "--out", str(tmp_path / target), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["to"] == target
    graph = nir.read(tmp_path / "nir")  # a plain NIR reader accepts it: I nodes for the sigma units
    assert sum(type(node).__name__ == "I" for node in graph.nodes.values()) == len(source.layers)
    assert_same_sdnn(source, read_nir(tmp_path / "nir"))
    assert_same_sdnn(source, read_nir(tmp_path / "lava" / "network.nir"))
    assert_same_sdnn(source, read_netx(tmp_path / "netx"))
    lava = json.loads((tmp_path / "lava" / "lava.json").read_text())
    assert [row["neuron"]["process"] for row in lava["layers"]] == ["Delta"] + ["SigmaDelta"] * (
        len(source.layers) - 2) + ["Sigma"]


@pytest.mark.slow
def test_netx_written_back_runs_in_lava_dl_with_the_golden_output(tmp_path, no_lava_leftovers):
    """The file snndeploy writes loads in lava-dl's own netx.hdf5.Network and reproduces lava-dl's golden."""
    from lava.lib.dl import netx
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc import io as lava_io

    from snndeploy import lava_runner
    from snndeploy.export.netx_io import write_netx

    path = write_netx(read_netx(DATA / "network.net"), tmp_path / "back.net")
    net = netx.hdf5.Network(net_config=str(path))
    source = lava_io.source.RingBuffer(data=np.load(DATA / "input.npy"))
    sink = lava_io.sink.RingBuffer(shape=net.out_layer.shape, buffer=len(net.layers))
    source.s_out.connect(net.in_layer.neuron.a_in)
    net.out_layer.out.connect(sink.a_in)
    with lava_runner.lava_session(net):
        lava_runner.run_steps(net, len(net.layers), Loihi2SimCfg(select_tag="fixed_pt"), timeout_s=600,
                              stop_after=False, what="netx run")
        output = np.array(sink.data.get())
    assert np.abs(output - np.load(DATA / "output.npy")).sum() == 0


def test_estimate_reproduces_the_published_pilotnet_sdnn_compile_from_the_file(capsys):
    """lava-dl tutorials/.../pilotnet_sdnn/benchmark.ipynb: 61 cores = 25+13+3+3+2 (conv) + 12+1+1+1 (dense), the
    input encoder in the input adapter (netx skip_layers=1)."""
    assert main(["estimate", str(DATA / "tutorial_network.net"), "--target", "loihi2", "--json"]) in (0, 1)
    target = json.loads(capsys.readouterr().out)["targets"][0]
    assert [row["cores"] for row in target["layers"]] == [0, 25, 13, 3, 3, 2, 12, 1, 1, 1]
    assert target["cores"] == 61 and target["layers"][0]["binding"] == "host"


def test_estimate_counts_graded_activity_as_macs_with_their_payload(tmp_path, capsys):
    from snndeploy.hardware.activity import activity_from_spikes

    net = read_netx(DATA / "network.net")
    steps = 3
    rng = np.random.default_rng(0)
    inputs = rng.integers(-3, 4, size=(1, *net.input_shape, steps))
    outputs = [rng.integers(-3, 4, size=(1, *layer.out_shape, steps)) * (rng.random((1, *layer.out_shape, steps))
                                                                            < 0.1) for layer in net.layers]
    activity = activity_from_spikes(inputs, outputs)
    path = tmp_path / "activity.json"
    path.write_text(json.dumps(activity.to_dict()))
    assert main(["estimate", str(DATA / "network.net"), "--target", "loihi2", "--activity", str(path),
                 "--json"]) in (0, 1)
    result = json.loads(capsys.readouterr().out)
    work = result["neurobench_workload"]
    messages = sum(np.count_nonzero(o) for o in outputs)
    assert work["payload_bits"] == messages * 16 and work["eff_acs"] == 0 and work["eff_macs"] > 0
    assert [row["message_bits"] for row in result["layers"]] == [16] * 9


def test_torch_reference_reproduces_the_golden_and_lava_float():
    """The fixed-point torch reference (what verify compares with) equals lava-dl's golden bit for bit."""
    from snndeploy.export.sdnn_ref import sd_reference

    net = read_netx(DATA / "network.net")
    x = np.load(DATA / "input.npy").transpose(2, 1, 0, 3)[..., [0] * 9]
    outputs, sigmas = sd_reference(net, x)
    assert np.abs(outputs[-1] - np.load(DATA / "output.npy")).sum() == 0
    assert np.array_equal(sigmas[-1], outputs[-1])  # the read-out sends its sigma
    assert [int(np.count_nonzero(o)) for o in outputs][0] == np.count_nonzero(x[..., 0])


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fixed_pt", "floating_pt"])
def test_verify_compares_graded_outputs_and_sigma_per_layer_and_step(mode, tmp_path, capsys, no_lava_leftovers):
    args = ["export", str(DATA / "network.net"), "--to", "nir", "--out", str(tmp_path / "n.nir"), "--verify",
            "--inputs", str(DATA / "input.npy"), "--steps", "9", "--mode", mode, "--json"]
    if mode == "fixed_pt":
        args.append("--probe")
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)["verify"]
    assert report["agree"] and report["first"] is None
    assert [row["torch_spikes"] for row in report["layers"]] == [9656, 5600, 13171, 17879, 9334, 253, 227, 54, 8] \
        or mode == "floating_pt"


def _front(net):
    """PilotNet SDNN's input encoder and first two convolutions (square strides)."""
    return net.with_layers(net.layers[:3])


def test_sdnn_layers_become_lava_dl_sigma_delta_blocks_and_back_exactly():
    """IR -> lava-dl sigma_delta blocks -> IR is exact, and the model evaluates (graded outputs)."""
    import torch
    from lava.lib.dl import slayer

    from snndeploy.export.slayer_io import from_slayer, to_slayer

    net = _front(read_netx(DATA / "network.net"))
    model = to_slayer(net)
    assert [type(block) for block in model.blocks] == [slayer.block.sigma_delta.Input] + \
        [slayer.block.sigma_delta.Conv] * 2
    assert first_difference(net, from_slayer(model), names=False) is None
    x = torch.as_tensor(np.load(DATA / "input.npy").transpose(2, 1, 0, 3)[None, ..., [0] * 4] / 64.0,
                        dtype=torch.float32)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (1, 36, 7, 24, 4) and torch.isfinite(out).all() and out.abs().sum() > 0


def test_magnitude_pruning_on_the_mask_engine_runs_bit_exact_on_lava(no_lava_leftovers):
    """50 % global magnitude pruning (no data), exported back to the IR, run on Lava = the torch reference."""
    from snndeploy.export.sdnn_ref import sd_reference
    from snndeploy.export.slayer_io import from_slayer, to_slayer
    from snndeploy.prune import scores
    from snndeploy.prune.engine import PruningEngine
    from snndeploy.simulate_sd import load_sd_input, replay_steps, simulate_sd

    net = _front(read_netx(DATA / "network.net"))
    model = to_slayer(net)
    engine = PruningEngine(model)
    engine.prune_weights(0.5, scores.weight_magnitude(engine))
    assert abs(engine.weight_sparsity() - 0.5) < 0.01
    engine.finalize()
    pruned = from_slayer(model)
    weights = [np.asarray(layer.weight) for layer in pruned.layers[1:]]
    assert abs(sum(int((w == 0).sum()) for w in weights) / sum(w.size for w in weights) - 0.5) < 0.02
    inputs = replay_steps(load_sd_input(DATA / "input.npy", pruned.input_shape), 4)
    result = simulate_sd(pruned, inputs.spikes)
    reference, _ = sd_reference(pruned, inputs.spikes[0])
    assert np.array_equal(result.output[0], reference[-1]) and np.count_nonzero(reference[-1]) > 0


def test_graded_criticality_and_activity_come_from_the_pre_activation():
    """criticality and SCA read a sigma-delta block's pre-activation (sigma + bias) at its activation function."""
    import torch

    from snndeploy.export.slayer_io import to_slayer
    from snndeploy.prune.criticality import criticality, record_voltages

    model = to_slayer(_front(read_netx(DATA / "network.net")))
    x = torch.as_tensor(np.load(DATA / "input.npy").transpose(2, 1, 0, 3)[None, ..., [0] * 3] / 64.0,
                        dtype=torch.float32)
    seen = {}
    with torch.no_grad(), record_voltages(model, [1, 2], lambda i, u: seen.setdefault(i, u)):
        model(x)
    assert seen[1].shape == (1, 24, 16, 49, 3) and (seen[1] < 0).any()  # before the ReLU: negative values too
    assert model.blocks[1].neuron.activation is torch.nn.functional.relu  # the hook is removed afterwards
    scores = criticality(model, [1, 2], [x])
    assert scores[1].shape == (24,) and torch.all(scores[1] > 0) and torch.isfinite(scores[2]).all()


def _digits_sdnn():
    """A small sigma-delta CNN (input encoder, conv, flatten, dense, sigma read-out) on 8x8 UCI digits."""
    import torch

    from snndeploy.models.build import build_model
    from snndeploy.models.spec import spec_from_dict

    torch.manual_seed(0)
    return build_model(spec_from_dict({
        "name": "digits_sdnn", "input_shape": [1, 8, 8], "time_steps": 4, "quantize": True,
        "io": {"encoding": "current"},
        "neuron": {"kind": "sigma_delta", "threshold": 0.0625, "tau_grad": 0.5, "scale_grad": 1.0},
        "blocks": [{"kind": "input"}, {"kind": "conv", "out": 8, "kernel": 3, "padding": 1, "bias": True},
                   {"kind": "flatten"}, {"kind": "dense", "out": 16, "bias": True}, {"kind": "affine", "out": 10}]}))


def _method_modes():
    from snndeploy.prune.registry import METHODS

    fast = {("magnitude", True), ("criticality", True), ("sca", True)}  # graph + shrink + the graded scores
    for name, method in METHODS.items():
        for structured in (False, True):
            if method.structured is None or method.structured == structured:
                marks = () if (name, structured) in fast else (pytest.mark.slow,)
                mode = "structured" if structured else "weights"
                yield pytest.param(name, structured, marks=marks, id=f"{name}-{mode}")


@pytest.mark.parametrize("name,structured", list(_method_modes()))
def test_every_pruning_method_runs_on_sigma_delta_blocks(name, structured, tmp_path):
    """Every method, unstructured and structured, on lava-dl sigma-delta blocks (the read-out ``Output`` included)
    through the real fine-tuning loop; the result exports to the IR and runs in the bit-exact reference."""
    import dataclasses

    from snndeploy.export.sdnn_ref import sd_reference
    from snndeploy.export.slayer_io import from_slayer
    from snndeploy.prune.finetune import DatasetTrainer
    from snndeploy.prune.registry import find_method
    from snndeploy.prune.runner import Runner, RunSpec

    method = find_method(name)
    config = method.config_class()
    extra = {"rate": 0.6, "rewind": "start"} if name == "imp" else {}
    config = dataclasses.replace(config, epochs_per_step=1, **extra)
    net = _digits_sdnn()
    trainer = DatasetTrainer("digits", net, batch_size=30, subset=60, test_subset=30, progress=False, threads=1)
    result = Runner(RunSpec(method, config, 0.5, structured, "test"), net, trainer, tmp_path / name).run()
    sparsity = result.report["sparsity"]
    if structured:
        assert sparsity["channels"] == pytest.approx(0.5, abs=0.05)
        widths = [b.out for b in result.net.spec.blocks if b.kind in ("conv", "dense")]
        assert sum(widths) == 24 - round(0.5 * 24) and result.net.blocks[3].synapse.weight.shape[1] == widths[0] * 64
    elif name in ("magnitude", "gmp", "random", "imp", "criticality"):  # the others rewire or learn sparsity
        assert sparsity["weights"] == pytest.approx(0.5, abs=1e-3)
    else:
        assert 0 < sparsity["weights"] <= 0.5 + 1e-3
    pruned = from_slayer(result.net)
    assert [layer.neuron.kind for layer in pruned.layers] == ["sigma_delta"] * 4
    x = np.load(DATA / "input.npy")[:8, :8, :1, [0] * 6].transpose(2, 1, 0, 3)  # an integer frame as netx feeds it
    outputs, _ = sd_reference(pruned, x)
    assert outputs[-1].shape == (10, 6) and np.isfinite(outputs[-1]).all()
