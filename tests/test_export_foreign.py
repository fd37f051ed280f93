"""NIR graphs written by other tools (sinabs, snnTorch, Norse; tests/data/nir): mapped exactly, or refused by name."""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import snndeploy  # noqa: F401
from snndeploy.errors import UserError
from snndeploy.export.nir_io import read_graph, read_nir

DATA = Path(__file__).parent / "data" / "nir"


def simulate_nir(graph, x: np.ndarray) -> list[np.ndarray]:
    """An independent, delay-free float64 simulation of a feed-forward NIR graph with IF neurons (sinabs style:
    ``v += r I``, spike if ``v > threshold``, reset to 0); returns every IF node's spikes ``(*shape, T)``."""
    succ = dict(graph.edges)
    order, key = [], succ["input"]
    while key != "output":
        order.append(key)
        key = succ[key]
    state, outs = {}, {k: [] for k in order if isinstance(graph.nodes[k], nir.IF)}

    def t64(a):
        return torch.as_tensor(np.asarray(a), dtype=torch.float64)

    for t in range(x.shape[-1]):
        h = t64(x[..., t])[None]
        for k in order:
            n = graph.nodes[k]
            if isinstance(n, nir.Conv2d):
                h = F.conv2d(h, t64(n.weight), t64(n.bias), stride=tuple(n.stride), padding=tuple(n.padding),
                             dilation=tuple(n.dilation), groups=n.groups)
            elif isinstance(n, nir.SumPool2d):
                h = F.avg_pool2d(h, tuple(n.kernel_size), tuple(n.stride), tuple(n.padding)) * np.prod(n.kernel_size)
            elif isinstance(n, nir.Flatten):
                h = h.reshape(1, -1)
            elif isinstance(n, nir.Affine):
                h = h @ t64(n.weight).T + t64(n.bias)
            elif isinstance(n, nir.IF):
                v = state.get(k, torch.zeros_like(h)) + t64(n.r).reshape(h.shape[1:]) * h
                s = (v > t64(n.v_threshold).reshape(h.shape[1:])).double()
                state[k] = v * (1 - s)
                h = s
                outs[k].append(s[0].numpy())
    return [np.stack(outs[k], -1) for k in outs]


def test_sinabs_cnn_maps_with_pooling_merged_and_computes_the_same_spikes():
    """Pooling followed by a conv/linear without a neuron between them is merged into one synapse; the step
    model of the converted network equals the NIR graph simulated directly, layer i lagging i + 1 steps
    (one synapse delay per layer)."""
    from snndeploy.export.onnx_export import StepNet, run_steps_torch

    graph = read_graph(DATA / "cnn_sinabs.nir")
    net = read_nir(DATA / "cnn_sinabs.nir")
    assert [layer.op for layer in net.layers] == ["conv", "conv", "conv", "dense", "dense"]
    assert net.layers[2].stride == (2, 2) and np.shape(net.layers[2].weight) == (8, 16, 6, 6)
    x = (np.random.default_rng(0).random((1, 2, 34, 34, 25)) < 0.15).astype(np.float32)
    ref = simulate_nir(graph, x[0].astype(np.float64))
    got = [o[0].numpy() for o in run_steps_torch(StepNet(net), torch.as_tensor(x))]
    assert all(r.sum() > 0 for r in ref)
    for i, (r, g) in enumerate(zip(ref, got, strict=True)):
        assert np.array_equal(g[..., i + 1:], r[..., :-(i + 1)]), i


def test_sinabs_cnn_gets_its_papers_time_steps_and_keeps_them_through_the_quantized_export(tmp_path):
    """The graph records no time step; the NIR paper feeds it 1 ms frames, 300 per digit (PUBLISHED_NIR, keyed by
    the file's SHA-256): read_nir sets them, and an export carries them; another file is not matched."""
    from snndeploy.cli import main

    net = read_nir(DATA / "cnn_sinabs.nir")
    assert net.time_steps == 300 and net.meta["io"].encoding == "events" and "1 ms" in net.meta["io"].source
    out = tmp_path / "q.nir"
    assert main(["export", str(DATA / "cnn_sinabs.nir"), "--to", "nir", "--quantize", "--out", str(out)]) == 0
    assert read_nir(out).time_steps == 300
    other = tmp_path / "other.nir"
    nir.write(other, read_graph(DATA / "cnn_sinabs.nir"))
    assert read_nir(other).time_steps is None


@pytest.mark.slow
def test_sinabs_cnn_quantized_scores_099_on_nmnist_small_at_the_papers_binning():
    """The paper's 1 ms frames (300 steps over the 300 ms our nmnist-small loader bins): the quantized graph's
    step model (Loihi's integer arithmetic in float, spike-exact with Lava fixed_pt) classes 99 of the 100 test
    digits; the float graph 100 (docs/benchmarks.md "Real networks")."""
    from snndeploy.data.datasets import load_arrays
    from snndeploy.export.onnx_export import StepNet, run_steps_torch
    from snndeploy.export.quantize import quantize_net

    net = read_nir(DATA / "cnn_sinabs.nir")
    _, test, _ = load_arrays("nmnist-small", time_steps=net.time_steps)
    x, labels = torch.as_tensor(np.asarray(test.x), dtype=torch.float32), np.asarray(test.y)
    torch.set_num_threads(1)
    for model, correct in ((quantize_net(net)[0], 99), (net, 100)):
        out = run_steps_torch(StepNet(model), x)[-1]
        assert int((out.sum(-1).argmax(1).numpy() == labels).sum()) == correct


@pytest.mark.slow
def test_sinabs_cnn_runs_in_lava_floating_pt(no_lava_leftovers):
    """The same graph on Lava processes (netx can run neither its pooling nor floating_pt); slow: Lava's CPU
    convolution takes about 2 s per step here."""
    from snndeploy.export.lava_net import simulate_lava

    graph = read_graph(DATA / "cnn_sinabs.nir")
    x = (np.random.default_rng(1).random((2, 34, 34, 12)) < 0.15).astype(np.float64)
    ref = simulate_nir(graph, x)
    run = simulate_lava(read_nir(DATA / "cnn_sinabs.nir"), x, mode="floating_pt")
    for i, (r, s) in enumerate(zip(ref, run.spikes, strict=True)):
        assert np.array_equal(s[..., i + 1:], r[..., :-(i + 1)]), i


def test_snntorch_braille_needs_dt_and_maps_the_synaptic_bias_as_an_always_on_axon():
    """fc1's and the recurrent Affine's biases flow into a CubaLIF with current memory (tau_syn > dt): not a voltage
    bias but one constant synaptic input, their sum; fc2's bias likewise."""
    with pytest.raises(UserError, match="pass dt"):
        read_nir(DATA / "braille_noDelay_bias_zero.nir")
    graph = read_graph(DATA / "braille_noDelay_bias_zero.nir")
    net = read_nir(DATA / "braille_noDelay_bias_zero.nir", dt=1e-4)
    first, second = net.layers
    assert first.recurrent is not None and first.neuron.bias is None and second.neuron.bias is None
    assert np.allclose(first.syn_bias, graph.nodes["fc1"].bias + graph.nodes["lif1.w_rec"].bias, atol=1e-6)
    assert np.allclose(second.syn_bias, graph.nodes["fc2"].bias, atol=1e-6)


def conv_bias_graph() -> nir.NIRGraph:
    """Input 2x6x6 -> Conv2d 4x3x3 (padding 1) with a bias -> CubaLIF with current memory (iDecay 2048 at dt 1)."""
    rng = np.random.default_rng(3)
    one = np.ones((4, 6, 6))
    nodes = {"input": nir.Input({"input": np.array([2, 6, 6])}),
             "conv": nir.Conv2d(input_shape=(6, 6), weight=rng.integers(-8, 9, (4, 2, 3, 3)) / 8.0, stride=1,
                                padding=1, dilation=1, groups=1, bias=np.array([0.25, -0.125, 0.0, 0.5])),
             "lif": nir.CubaLIF(tau_syn=2 * one, tau_mem=4 * one, r=4 * one, v_leak=0 * one, v_threshold=one,
                                w_in=2 * one),
             "output": nir.Output({"output": np.array([4, 6, 6])})}
    return nir.NIRGraph(nodes, [("input", "conv"), ("conv", "lif"), ("lif", "output")], type_check=False)


def test_conv_synaptic_bias_is_an_always_on_axon_and_round_trips(tmp_path):
    """A conv bias into a neuron with current memory: the channel's bias for every neuron of the channel, through
    one always-on axon like a dense layer's; NIR writes it back as the Conv2d bias."""
    from snndeploy.export.ir import first_difference
    from snndeploy.export.nir_io import from_nir, write_nir

    net = from_nir(conv_bias_graph(), dt=1.0)
    layer = net.layers[0]
    assert layer.op == "conv" and layer.neuron.bias is None and int(layer.neuron.i_decay) == 2048
    assert np.array_equal(np.asarray(layer.syn_bias).reshape(4, 36), np.repeat([[0.25], [-0.125], [0.0], [0.5]], 36,
                                                                                axis=1))
    back = read_nir(write_nir(net, tmp_path / "conv.nir"))
    assert first_difference(net, back, names=False) is None
    assert np.array_equal(nir.read(tmp_path / "conv.nir").nodes[f"{layer.name}_syn"].bias, [0.25, -0.125, 0, 0.5])
    from snndeploy.hardware.layers import layers_from_ir

    count = layers_from_ir(net)[0]  # the axon: one more input axon, a synapse per neuron, 3 channels non-zero
    assert (count.bias_axons, count.bias_fanout, count.axons_in) == (1, 3 * 36, 2 * 36 + 1)


@pytest.mark.lava
def test_conv_synaptic_bias_runs_in_lava_as_the_step_model(no_lava_leftovers):
    """Lava floating_pt (2 samples in 2 network copies, the axon in Lava's XYC layout) equals the step model spike
    for spike; fixed_pt runs the quantized network as its own floating_pt run does."""
    from snndeploy.export.nir_io import from_nir
    from snndeploy.export.onnx_export import StepNet, run_steps_torch
    from snndeploy.export.quantize import quantize_net
    from snndeploy.simulate import simulate_net

    net = from_nir(conv_bias_graph(), dt=1.0)
    x = (np.random.default_rng(4).random((2, 2, 6, 6, 12)) < 0.2).astype(np.float32)
    ref = run_steps_torch(StepNet(net), torch.as_tensor(x))[0].numpy()
    run = simulate_net(net, x, mode="floating_pt", record=(0,), copies=2)
    assert ref.sum() > 0 and np.array_equal(run.layer_spikes[0], ref)
    quantized = quantize_net(net)[0]
    fixed = simulate_net(quantized, x, record=(0,), copies=2)
    floating = simulate_net(quantized, x, mode="floating_pt", record=(0,), copies=1)
    assert fixed.layer_spikes[0].sum() > 0 and np.array_equal(fixed.layer_spikes[0], floating.layer_spikes[0])


def test_norse_lif_graph_maps_to_one_dense_layer():
    net = read_nir(DATA / "lif_norse.nir", dt=1e-4)
    graph = read_graph(DATA / "lif_norse.nir")
    lif = graph.nodes["1"]
    layer = net.layers[0]
    assert layer.op == "dense" and layer.out_shape == (1,)
    assert int(layer.neuron.i_decay) == 4096
    assert int(layer.neuron.v_decay) == int(np.round(1e-4 / float(np.ravel(lif.tau)[0]) * 4096))
    gain = float(np.ravel(lif.r)[0]) * 1e-4 / float(np.ravel(lif.tau)[0])
    assert np.allclose(layer.weight, np.asarray(graph.nodes["0"].weight) * gain)


def test_quantize_puts_a_float_graph_on_the_loihi_grid(no_lava_leftovers):
    """A float NIR graph (random Affine + CubaLIF) quantized layer by layer runs in Lava fixed_pt with nearly the
    float network's activity; quantized SLAYER layers are left untouched."""
    from snndeploy.export.lava_net import simulate_lava
    from snndeploy.export.nir_io import from_nir
    from snndeploy.export.quantize import quantize_net

    rng = np.random.default_rng(4)
    n_in, n_hid = 40, 30
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([n_in])}),
               "fc": nir.Linear(weight=rng.normal(0.15, 0.3, size=(n_hid, n_in))),
               "lif": nir.CubaLIF(tau_syn=np.full(n_hid, 2e-3), tau_mem=np.full(n_hid, 1e-2),
                                  r=np.full(n_hid, 1e-2 / 1e-3), v_leak=np.zeros(n_hid),
                                  v_threshold=np.full(n_hid, 1.3), w_in=np.full(n_hid, 2e-3 / 1e-3)),
               "output": nir.Output(output_type={"output": np.array([n_hid])})},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")])
    net = from_nir(graph, dt=1e-3)
    with pytest.raises(UserError, match="off Loihi's grid"):
        simulate_lava(net, np.zeros((n_in, 2)))
    quantized, report = quantize_net(net)
    assert report[0]["changed"] and report[0]["max_weight_error"] < 0.01
    x = (rng.random((n_in, 200)) < 0.2).astype(np.float64)
    fixed = simulate_lava(quantized, x).spikes[0].sum()
    floating = simulate_lava(net, x, mode="floating_pt").spikes[0].sum()
    assert floating > 50 and abs(fixed - floating) / floating < 0.1
    again, report2 = quantize_net(quantized)
    assert not report2[0]["changed"] and np.array_equal(again.layers[0].weight, quantized.layers[0].weight)


def test_nested_recurrent_subgraph_is_inlined(tmp_path):
    """snnTorch-style recurrent layer as a nested NIRGraph (Input -> CubaLIF <-> Linear -> Output)."""
    rng = np.random.default_rng(0)
    lif = nir.CubaLIF(tau_syn=np.full(5, 2.0), tau_mem=np.full(5, 4.0), r=np.full(5, 4.0), v_leak=np.zeros(5),
                      v_threshold=np.ones(5), w_in=np.full(5, 2.0))
    rnn = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([5])}), "lif": lif,
                              "w_rec": nir.Linear(weight=rng.normal(size=(5, 5))),
                              "output": nir.Output(output_type={"output": np.array([5])})},
                       edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
                       type_check=False)
    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([3])}),
                                "fc": nir.Linear(weight=rng.normal(size=(5, 3))), "rnn": rnn,
                                "output": nir.Output(output_type={"output": np.array([5])})},
                         edges=[("input", "fc"), ("fc", "rnn"), ("rnn", "output")], type_check=False)
    nir.write(tmp_path / "rnn.nir", graph)
    net = read_nir(tmp_path / "rnn.nir", dt=1.0)
    (layer,) = net.layers
    assert layer.op == "dense" and layer.recurrent is not None
    assert np.allclose(layer.recurrent, graph.nodes["rnn"].nodes["w_rec"].weight)  # gain 1 with dt = tau/2 etc.
    assert int(layer.neuron.i_decay) == 2048 and int(layer.neuron.v_decay) == 1024
