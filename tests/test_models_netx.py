"""netx HDF5 import: the imported SLAYER model and lava-dl's own netx Lava run agree spike for spike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from snndeploy import settings
from snndeploy.errors import UserError
from snndeploy.models.load import load_model
from snndeploy.models.netx_import import import_netx, read_netx

FIXTURES = settings.fixtures_dir() / "lava-dl"


def _lava_layer_spikes(path: Path, spikes: np.ndarray) -> list[np.ndarray]:
    """Run lava-dl's netx network on ``spikes`` [F, T] (fixed_pt CPU) and record every layer's output."""
    from lava.lib.dl import netx
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    from snndeploy import lava_runner

    steps = spikes.shape[-1]
    net = netx.hdf5.Network(net_config=str(path))
    source = Source(data=spikes.astype(np.int32))
    source.s_out.connect(net.inp)
    sinks = []
    for layer in net.layers:
        sink = Sink(shape=layer.out.shape, buffer=steps)
        layer.out.connect(sink.a_in)
        sinks.append(sink)
    with lava_runner.lava_session(net):
        lava_runner.run_steps(net, steps, Loihi2SimCfg(select_tag="fixed_pt"), timeout_s=120, stop_after=False,
                              what=f"netx run of {path.name}")
        return [sink.data.get() for sink in sinks]


def _slayer_layer_spikes(net, spikes: np.ndarray) -> list[np.ndarray]:
    net.eval()
    with torch.no_grad():
        _, outputs = net(torch.as_tensor(spikes[None], dtype=torch.float32), return_all=True)
    return [o[0].numpy() for o in outputs]


def _mnist_spikes(count: int, steps: int) -> np.ndarray:
    """Real MNIST test digits, rate-encoded with a fixed seed, one after the other: [784, count * steps]."""
    from snndeploy.data.datasets import load_arrays

    _, test, _ = load_arrays("mnist")
    images = test.x[:count].reshape(count, 784)
    rng = np.random.default_rng(0)
    spikes = rng.random((count, 784, steps)) < images[..., None]
    return np.concatenate(list(spikes), axis=-1).astype(np.float32)


def _oxford_spikes(steps: int) -> np.ndarray:
    """lava-dl's 200-channel spike-train fixture (dense-cuba/in.npy), which fits oxford's 200 inputs."""
    return np.load(FIXTURES / "dense-cuba" / "in.npy")[:, :steps].astype(np.float32)


CASES = {
    "oxford": (FIXTURES / "oxford" / "network.net", lambda: _oxford_spikes(600)),
    "mnist-mlp-128": (FIXTURES / "mnist-mlp-128" / "network.net", lambda: _mnist_spikes(4, 40)),
}


@pytest.mark.lava
@pytest.mark.parametrize("case", list(CASES))
def test_import_matches_netx_lava_run_spike_for_spike(case: str):
    path, make_input = CASES[case]
    spikes = make_input()
    net = import_netx(path)
    ours = _slayer_layer_spikes(net, spikes)
    lava = _lava_layer_spikes(path, spikes)
    assert len(ours) == len(lava) == len(net.spec.blocks)
    for i, (a, b) in enumerate(zip(ours, lava, strict=True)):
        assert a.shape == b.shape, f"layer {i}"
        assert b.sum() > 0, f"layer {i} of {case} is silent: the comparison would prove nothing"
        # SLAYER's delay_shift models Lava's one step per layer: no re-alignment is needed.
        mismatches = int(np.abs(a - b).sum())
        assert mismatches == 0, f"{case} layer {i}: {mismatches} of {int(b.sum())} spikes differ"


def test_import_reads_loihi_parameters():
    spec, params = read_netx(FIXTURES / "oxford" / "network.net")
    assert [b.kind for b in spec.blocks] == ["dense", "dense"]
    assert spec.input_shape == (200,) and spec.output_shape == (200,)
    # layer 0: vThMant 6, iDecay 4096, vDecay 415; layer 1 differs only in vDecay (409)
    assert spec.neuron.threshold == 6 / 64 and spec.neuron.current_decay == 1.0
    assert spec.neuron.voltage_decay == 415 / 4096
    assert spec.block_neuron(1).voltage_decay == 409 / 4096
    net = import_netx(FIXTURES / "oxford" / "network.net")
    hdf5_weight = params["0"]["weight"]
    exported = net.blocks[0].synapse.pre_hook_fx(net.blocks[0].synapse.weight, descale=True)
    assert np.array_equal(exported.reshape(hdf5_weight.shape).detach().numpy(), hdf5_weight)
    assert net.blocks[1].neuron.device_params["vDecay"] == 409


def test_imported_model_is_trainable():
    net = import_netx(FIXTURES / "mnist-mlp-128" / "network.net")
    spikes = torch.as_tensor(_mnist_spikes(1, 20)[None])
    out = net(spikes)
    out.sum().backward()
    assert all(b.synapse.weight.grad is not None for b in net.blocks)


def test_other_fixtures_import_structurally():
    mlp512 = import_netx(FIXTURES / "mnist-mlp-512" / "network.net")
    assert [b.kind for b in mlp512.spec.blocks] == ["input", "dense", "dense", "affine"]
    assert mlp512.spec.time_steps == 16
    tiny = import_netx(FIXTURES / "tinynet" / "tiny.net")
    assert tiny.spec.input_shape == (3, 16, 16) and tiny.spec.shapes()[-1] == (36, 1, 1)
    assert tiny.spec.blocks[1].bias and tiny.blocks[1].neuron.norm.value.shape == (24,)
    out = tiny(torch.rand(1, 3, 16, 16, 8))
    assert out.shape == (1, 36, 1, 1, 8)


def test_load_model_dispatches_on_suffix(tmp_path: Path):
    net = load_model(FIXTURES / "oxford" / "network.net")
    assert net.spec.name == "network"
    with pytest.raises(UserError, match="model file not found"):
        load_model(tmp_path / "missing.net")
    (tmp_path / "model.txt").write_text("x")
    with pytest.raises(UserError, match="unknown model file type"):
        load_model(tmp_path / "model.txt")
    (tmp_path / "broken.net").write_bytes(b"not hdf5 at all")
    with pytest.raises(UserError, match="is not a netx file: its content is text, expected HDF5"):
        load_model(tmp_path / "broken.net")


@pytest.mark.lava
def test_tinynet_conv_bias_and_input_layer_match_netx():
    """tiny.net: input layer driven through its bias mantissa (lava-dl's golden input_bias.npy), two strided
    convolutions with biases. Lava's input layer fires one step earlier than SLAYER's (the bias acts from
    step 0, SLAYER's Input block is followed by its one-step delay), so every layer is compared with that shift."""
    from lava.lib.dl import netx
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink

    from snndeploy import lava_runner

    path = FIXTURES / "tinynet" / "tiny.net"
    bias_mant = np.load(FIXTURES / "tinynet" / "input_bias.npy")  # (X, Y, C) = (16, 16, 3)
    steps = 16
    lava_net = netx.hdf5.Network(net_config=str(path))
    lava_net.in_layer.neuron.bias_mant.init = bias_mant
    sinks = []
    for layer in lava_net.layers:
        sinks.append(Sink(shape=layer.out.shape, buffer=steps))
        layer.out.connect(sinks[-1].a_in)
    with lava_runner.lava_session(lava_net):
        lava_runner.run_steps(lava_net, steps, Loihi2SimCfg(select_tag="fixed_pt"), timeout_s=120,
                              stop_after=False, what="tinynet netx run")
        lava = [s.data.get().transpose(2, 1, 0, 3) for s in sinks]  # XYC -> CHW
    net = import_netx(path)
    net.blocks[0].weight.data[:] = 1.0  # feed the golden bias mantissas unchanged
    net.blocks[0].bias.data[:] = 0.0
    x = torch.as_tensor(bias_mant.transpose(2, 1, 0) / 64, dtype=torch.float32)[None, ..., None]
    ours = _slayer_layer_spikes(net, x.expand(-1, -1, -1, -1, steps).numpy()[0])
    for i, (a, b) in enumerate(zip(ours, lava, strict=True)):
        assert b.sum() > 0, f"layer {i} is silent"
        assert np.abs(a[..., 1:] - b[..., :-1]).sum() == 0, f"tinynet layer {i} differs"


def test_load_model_reads_nir_through_snndeploy_export(tmp_path: Path):
    """A .nir written by snndeploy.export loads back (lazily, through load_model) with the same behaviour."""
    from snndeploy.export.nir_io import write_nir
    from snndeploy.export.slayer_io import from_slayer

    original = import_netx(FIXTURES / "oxford" / "network.net")
    write_nir(from_slayer(original), tmp_path / "oxford.nir")
    loaded = load_model(tmp_path / "oxford.nir")
    spikes = _oxford_spikes(200)
    for a, b in zip(_slayer_layer_spikes(original, spikes), _slayer_layer_spikes(loaded, spikes), strict=True):
        assert np.array_equal(a, b)
