"""Our own LoihiNet -> Lava converter reproduces lava-dl's golden spikes and currents bit for bit (fixed_pt)."""

from __future__ import annotations

import numpy as np
import pytest

import snndeploy  # noqa: F401
from snndeploy.errors import UserError
from snndeploy.export.ir import Layer, LoihiNet, Neuron
from snndeploy.export.lava_net import build_lava, run_lava
from snndeploy.export.netx_io import read_netx
from snndeploy.export.quantize import fit_weights

TINY_SAMPLE = 17  # lava-dl's tinynet goldens: one sample of 17 steps


def dense_cuba_net(fixtures_dir) -> LoihiNet:
    """lava-dl's dense golden: one Dense + CUBA layer, vThMant 6, iDecay 4096, vDecay 415 (its test's values)."""
    weight = np.load(fixtures_dir / "dense-cuba" / "weight.npy")
    neuron = Neuron(i_decay=np.array(4096), v_decay=np.array(415), threshold=np.array(6 / 64))
    return LoihiNet("dense-cuba", (200,), (Layer("dense", "dense", (200,), (256,), neuron, weight / 64),))


def test_dense_cuba_spikes_and_current_match_goldens(fixtures_dir, no_lava_leftovers):
    gold = fixtures_dir / "dense-cuba"
    steps = 400
    spikes_in = np.load(gold / "in.npy")[:, :steps]
    run = run_lava(build_lava(dense_cuba_net(fixtures_dir), spikes_in), probe=(0,))
    expected = np.load(gold / "out.npy")[:, :steps]
    assert expected.sum() > 0
    assert np.array_equal(run.spikes[0], expected)
    # the golden current is in SLAYER units: Lava's u / 64
    assert np.array_equal(run.u[0], np.load(gold / "current.npy")[:, :steps] * 64)


def test_dense_cuba_sparse_process_gives_the_same_spikes(fixtures_dir, no_lava_leftovers):
    gold = fixtures_dir / "dense-cuba"
    steps = 200
    lava = build_lava(dense_cuba_net(fixtures_dir), np.load(gold / "in.npy")[:, :steps], sparse_below=1.01)
    assert lava.layers[0].synapse_kind == "Sparse"
    run = run_lava(lava)
    assert np.array_equal(run.spikes[0], np.load(gold / "out.npy")[:, :steps])


def _tinynet(gold, source: str, tmp_path) -> LoihiNet:
    if source == "netx":
        return read_netx(gold / "tiny.net")
    from snndeploy.export.nir_io import read_nir, write_nir
    from snndeploy.export.slayer_io import from_slayer
    from snndeploy.models.netx_import import import_netx

    return read_nir(write_nir(from_slayer(import_netx(gold / "tiny.net")), tmp_path / "tiny.nir"))


@pytest.mark.parametrize("source", ["netx", "slayer-nir"])
def test_tinynet_all_layers_match_goldens(fixtures_dir, tmp_path, source, no_lava_leftovers):
    """Per-layer alignment of lava-dl's tinynet goldens (docs/export.md): with netx's reset scheme, layer i's
    Lava spikes at step t equal the golden at step t - (i - 1); layer 1's current equals the golden * 64.
    The network comes straight from the netx file, or through SLAYER and a .nir file."""
    gold = fixtures_dir / "tinynet"
    net = _tinynet(gold, source, tmp_path)
    assert [layer.op for layer in net.layers] == ["input", "conv", "conv"]
    steps = TINY_SAMPLE + len(net.layers)
    lava = build_lava(net, np.zeros((*net.input_shape, steps)), reset_interval=TINY_SAMPLE)
    lava.layers[0].neuron.bias_mant.init = np.load(gold / "input_bias.npy")  # the image enters as input bias
    run = run_lava(lava, probe=(1,))
    goldens = [np.load(gold / f"{name}.npy")[0] for name in ("input", "layer1", "output")]
    for i, expected in enumerate(goldens):
        assert expected.sum() > 0
        shift = i - 1
        for t in range(1, 16):
            assert np.array_equal(run.spikes[i][..., t + shift], expected[..., t]), (i, t)
    current = np.load(gold / "current.npy")[0] * 64
    assert np.array_equal(run.u[1][..., :16], current)


def test_tinynet_floating_pt_runs_close_to_fixed(fixtures_dir, no_lava_leftovers):
    """netx has no floating_pt path; ours runs the same network in floats (not bit-exact, same activity scale)."""
    gold = fixtures_dir / "tinynet"
    net = read_netx(gold / "tiny.net")
    steps = TINY_SAMPLE
    bias = np.load(gold / "input_bias.npy")
    counts = {}
    for mode in ("fixed_pt", "floating_pt"):
        lava = build_lava(net, np.zeros((*net.input_shape, steps)), mode=mode)
        lava.layers[0].neuron.bias_mant.init = bias if mode == "fixed_pt" else bias / 64.0
        counts[mode] = [float(s.sum()) for s in run_lava(lava).spikes]
    assert counts["floating_pt"][0] == counts["fixed_pt"][0]  # input layer: no rounding involved
    assert all(c > 0 for c in counts["floating_pt"])


def test_fit_weights_keeps_every_integer_weight():
    rng = np.random.default_rng(0)
    for lo, hi in ((-10, 11), (-256, 255), (0, 256), (-255, 1)):
        w = rng.integers(lo, hi, size=(20, 30))
        if lo < 0 < hi - 1:
            w = w & ~1 if hi > 128 else w  # mixed weights beyond 7 bits must be even (Loihi drops the LSB)
        mant, bits, exp = fit_weights(w, "w")
        assert bits == 8
        assert np.array_equal(mant.astype(np.int64) * 2.0**exp, w)
    with pytest.raises(ValueError):
        fit_weights(np.array([[-255, 3]]), "w")


def test_bad_inputs_are_one_line_user_errors(fixtures_dir, tmp_path):
    net = dense_cuba_net(fixtures_dir)
    with pytest.raises(UserError, match="does not match"):
        build_lava(net, np.zeros((10, 5)))
    with pytest.raises(UserError, match="mode"):
        build_lava(net, np.zeros((200, 5)), mode="double")
    bad = tmp_path / "bad.net"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(UserError, match="netx"):
        read_netx(bad)
