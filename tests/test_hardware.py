"""Estimator counts and packing: hand-checkable networks, pruning, and published Loihi 2 compiles."""

from __future__ import annotations

import math

import nir
import numpy as np
import pytest
import scipy.sparse as sp

from snndeploy.export.nir_io import to_nir
from snndeploy.hardware import loihi1, loihi2
from snndeploy.hardware.estimate import NO_FIT, estimate_target
from snndeploy.hardware.layers import layers_from_ir, totals
from snndeploy.hardware.load import layers_from_nir, load_layers
from snndeploy.hardware.profile import load_profile
from snndeploy.loader import load_net

LOIHI2 = load_profile("loihi2")


def lif(n: int | tuple[int, ...]) -> nir.CubaLIF:
    shape = (n,) if isinstance(n, int) else n
    one = np.ones(shape)
    return nir.CubaLIF(tau_syn=one, tau_mem=one, r=one, v_leak=0 * one, v_threshold=one)


def chain(input_shape: tuple[int, ...], stages: list[tuple[str, object]]) -> nir.NIRGraph:
    """A feed-forward NIR graph: Input -> stages... -> Output."""
    nodes = {"input": nir.Input({"input": np.array(input_shape)})}
    edges, prev = [], "input"
    for name, node in stages:
        nodes[name] = node
        edges.append((prev, name))
        prev = name
    nodes["output"] = nir.Output({"output": np.array([1])})
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes, edges, type_check=False)


def conv(weight: np.ndarray, stride: int = 1, padding: int = 0, groups: int = 1) -> nir.Conv2d:
    return nir.Conv2d(input_shape=None, weight=weight, stride=stride, padding=padding, dilation=1, groups=groups,
                      bias=np.zeros(weight.shape[0]))


# ---------------------------------------------------------------- hand-checkable counts


def test_dense_counts_by_hand():
    w1 = np.array([[1.0, 0.0, 2.0], [3.0, 4.0, 0.0]])  # 2 neurons from 3 inputs, 4 non-zero
    w2 = np.array([[1.0, 1.0]])
    layers = layers_from_nir(chain((3,), [("w1", nir.Linear(w1)), ("n1", lif(2)), ("w2", nir.Linear(w2)),
                                          ("n2", lif(1))]))
    first, second = layers
    assert (first.neurons, first.synapses, first.synapses_nonzero) == (2, 6, 4)
    assert (first.fan_in_max, first.in_fanout_max) == (2, 2)  # input 0 reaches both neurons
    assert list(first.in_fanout) == [2, 1, 1]
    assert (second.synapses, second.synapses_nonzero, second.in_fanout_max) == (2, 2, 1)
    assert totals(layers) == {"layers": 2, "neurons": 3, "synapses": 8, "synapses_nonzero": 6,
                              "weights_stored": 8, "weights_nonzero": 6}


def test_sparse_matrix_weights_count_like_dense():
    rng = np.random.default_rng(1)
    w = rng.integers(-3, 4, size=(40, 30)).astype(float)
    dense = layers_from_nir(chain((30,), [("w", nir.Linear(w)), ("n", lif(40))]))[0]
    sparse = layers_from_nir(chain((30,), [("w", nir.Linear(sp.csr_matrix(w))), ("n", lif(40))]))[0]
    assert sparse.synapses_nonzero == dense.synapses_nonzero == np.count_nonzero(w)
    assert np.array_equal(sparse.in_fanout, dense.in_fanout)
    assert sparse.bits == dense.bits


def test_conv_counts_by_hand():
    w = np.ones((2, 1, 3, 3))
    layer = layers_from_nir(chain((1, 4, 4), [("c", conv(w)), ("n", lif((2, 2, 2)))]))[0]
    assert layer.out_shape == (2, 2, 2)
    assert layer.synapses == 2 * 2 * 2 * 9  # 8 output neurons x 9 taps, all in bounds
    padded = layers_from_nir(chain((1, 4, 4), [("c", conv(w, padding=1)), ("n", lif((2, 4, 4)))]))[0]
    # per channel: 4 corners x 4 taps + 8 edges x 6 taps + 4 interior x 9 taps = 100
    assert padded.out_shape == (2, 4, 4) and padded.synapses == 200
    w_zero = w.copy()
    w_zero[0, 0, 1, 1] = 0  # the centre tap of channel 0 serves all 16 output positions
    pruned = layers_from_nir(chain((1, 4, 4), [("c", conv(w_zero, padding=1)), ("n", lif((2, 4, 4)))]))[0]
    assert pruned.synapses == 200 and pruned.synapses_nonzero == 200 - 16
    assert (pruned.weights_stored, pruned.weights_nonzero) == (18, 17)


def test_pool_and_flatten_counts_by_hand():
    pool = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
    layers = layers_from_nir(chain((2, 4, 4), [("p", pool), ("n", lif((2, 2, 2))), ("f", nir.Flatten(
        {"input": np.array([2, 2, 2])}, start_dim=0)), ("w", nir.Linear(np.ones((3, 8)))), ("m", lif(3))]))
    assert layers[0].out_shape == (2, 2, 2) and layers[0].synapses == 32
    assert layers[1].in_shape == (8,) and layers[1].synapses == 24


def test_unsupported_graphs_get_one_line_errors():
    from snndeploy.errors import UserError

    with pytest.raises(UserError, match="not supported"):
        conv1d = nir.Conv1d(None, np.ones((2, 3, 3)), 1, 0, 1, 1, np.zeros(2))
        layers_from_nir(chain((3, 8), [("x", conv1d), ("n", lif(2))]))
    with pytest.raises(UserError, match="does not fit the input"):
        layers_from_nir(chain((4,), [("w", nir.Linear(np.ones((2, 3)))), ("n", lif(2))]))


# ---------------------------------------------------------------- packing models


def test_loihi2_dense_emulates_the_compiler_split():
    # first try 784 axons x ceil(128/4.17) units = 24304 > 12000 -> ratio 2.03 -> 3 cores of <= 43 neurons
    point, low, high, binding = loihi2.dense_cores(784, 128, LOIHI2)
    assert (point, binding) == (3, "SynMem")
    assert low <= 3 <= high
    assert loihi2.dense_cores(64, 10, LOIHI2)[:3] == (1, 1, 1)  # small layers take one core
    assert loihi2.dense_cores(100, 9000, LOIHI2)[0] >= math.ceil(9000 / 4095)  # neuron budget
    # 200 axons x ceil(256/4.17) = 12400 units -> ratio 1.03 -> 2 cores of 128, over the 100-neuron cap -> 3
    assert loihi2.dense_cores(200, 256, LOIHI2)[0] == math.ceil(256 / 100) == 3
    assert loihi2.dense_cores(200, 150, LOIHI2)[0] == 1  # fits one core unsplit: the cap applies to split layers only


def test_loihi1_worked_example_from_hardware_notes():
    # hardware.md: dense 784->128, 8-bit weights: 2 blocks x 576 bits per axon = 903,168 bits, 86 % of a core
    assert loihi1.axon_bits(128, 8, 64, 10, 64) == 1152
    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, size=(128, 784)).astype(float)
    w[w == 0] = 1
    layer = layers_from_nir(chain((784,), [("w", nir.Linear(w)), ("n", lif(128))]))[0]
    place = loihi1.place(layer, load_profile("loihi1"))
    assert place.cores == 1 and place.usage["SynapseBits"] == 784 * 1152


def _pilotnet(with_input_layer: bool) -> nir.NIRGraph:
    """PilotNet as printed in lava-dl's netx benchmarks (S7), with 8-bit weights."""
    rng = np.random.default_rng(0)

    def weights(*shape):
        w = rng.integers(-128, 128, size=shape).astype(float)
        w[w == 0] = 1
        return w

    stages: list = []
    if with_input_layer:
        stages += [("in", lif((3, 66, 200)))]
    convs = [(3, 24, (2, 2), (0, 0)), (24, 36, (2, 2), (0, 0)), (36, 48, (2, 2), (0, 0)), (48, 64, (2, 1), (1, 0)),
             (64, 64, (1, 1), (0, 0))]
    shape = (3, 66, 200)
    for i, (c_in, c_out, stride, pad) in enumerate(convs):
        node = nir.Conv2d(input_shape=None, weight=weights(c_out, c_in, 3, 3), stride=np.array(stride),
                          padding=np.array(pad), dilation=1, groups=1, bias=np.zeros(c_out))
        h = (shape[1] + 2 * pad[0] - 3) // stride[0] + 1
        w = (shape[2] + 2 * pad[1] - 3) // stride[1] + 1
        shape = (c_out, h, w)
        stages += [(f"c{i}", node), (f"cn{i}", lif(shape))]
    stages += [("flat", nir.Flatten({"input": np.array(shape)}, start_dim=0))]
    sizes = [int(np.prod(shape)), 100, 50, 10, 1]
    for i in range(4):
        stages += [(f"d{i}", nir.Linear(weights(sizes[i + 1], sizes[i]))), (f"dn{i}", lif(sizes[i + 1]))]
    return chain((3, 66, 200), stages)


def test_loihi2_reproduces_published_pilotnet_compiles():
    # lava-dl pilotnet_snn / pilotnet_sdnn benchmark printouts: 74 cores (13+25+13+3+3+2+12+1+1+1) and 61
    snn = estimate_target(layers_from_nir(_pilotnet(True)), LOIHI2)
    assert [p.cores for p in snn.placements] == [13, 25, 13, 3, 3, 2, 12, 1, 1, 1]
    assert snn.cores == 74
    sdnn = estimate_target(layers_from_nir(_pilotnet(False)), LOIHI2)
    assert sdnn.cores == 61


@pytest.fixture(scope="module")
def mnist_layers(fixtures_dir):
    return load_layers(fixtures_dir / "mnist-mlp-128" / "network.net")


@pytest.fixture(scope="module")
def oxford_layers(fixtures_dir):
    return load_layers(fixtures_dir / "oxford" / "network.net")


def test_mnist_matches_its_published_loihi2_compile(mnist_layers):
    # lava-dl tutorials/.../netx/mnist/run.ipynb: 5 cores, 3 + 1 + 1
    est = estimate_target(mnist_layers, LOIHI2)
    assert [p.cores for p in est.placements] == [3, 1, 1]
    assert est.cores == 5 and est.chips == 1 and est.verdict == "fits"
    assert est.placements[0].binding == "SynMem"


def test_oxford_matches_its_published_loihi2_compile(oxford_layers):
    # lava-dl tutorials/.../netx/oxford/run.ipynb: 5 cores, 3 + 2 (a 2022 compiler)
    est = estimate_target(oxford_layers, LOIHI2)
    assert [p.cores for p in est.placements] == [3, 2] and est.cores == 5
    assert [p.binding for p in est.placements] == ["SynMem", "SynMem"]
    for place, published in zip(est.placements, (3, 2), strict=True):
        assert place.cores_low <= published <= place.cores_high
    assert est.cores_low <= 5 <= est.cores_high
    assert [lay.bits.bits for lay in oxford_layers] == [8, 7]  # netx optimize_weight_bits gives 8 and 7


def _zero_smallest(graph: nir.NIRGraph, node: str, fraction: float) -> None:
    w = np.array(graph.nodes[node].weight)
    cut = np.quantile(np.abs(w[w != 0]), fraction)
    w[np.abs(w) <= cut] = 0
    graph.nodes[node].weight = w


def test_unstructured_pruning_lowers_nonzero_synapses(fixtures_dir):
    from snndeploy.hardware.load import graph_of

    graph = graph_of(fixtures_dir / "mnist-mlp-128" / "network.net")
    before = layers_from_nir(graph)
    _zero_smallest(graph, "b0_dense_syn", 0.8)
    after = layers_from_nir(graph)
    assert after[0].synapses == before[0].synapses
    assert after[0].synapses_nonzero < 0.3 * before[0].synapses_nonzero
    # Loihi 1's sparse synapse encoding turns the zeros into fewer synapse bits
    l1 = load_profile("loihi1")
    assert loihi1.place(after[0], l1).usage["SynapseBits"] < loihi1.place(before[0], l1).usage["SynapseBits"]


def test_structured_pruning_lowers_neurons_and_cores(fixtures_dir):
    from snndeploy.hardware.load import graph_of

    graph = graph_of(fixtures_dir / "mnist-mlp-128" / "network.net")
    full = estimate_target(layers_from_nir(graph), LOIHI2)
    keep = np.arange(0, 128, 2)  # drop half the hidden neurons: rows of layer 0, columns of layer 1
    graph.nodes["b0_dense_syn"].weight = np.array(graph.nodes["b0_dense_syn"].weight)[keep]
    graph.nodes["b1_dense_syn"].weight = np.array(graph.nodes["b1_dense_syn"].weight)[:, keep]
    graph.nodes["b0_dense_lif"] = lif(64)
    pruned_layers = layers_from_nir(graph)
    pruned = estimate_target(pruned_layers, LOIHI2)
    assert pruned_layers[0].neurons == 64 and totals(pruned_layers)["neurons"] < 202
    assert pruned.cores < full.cores


def test_budget_decides_fit(mnist_layers):
    from snndeploy.hardware.budget import parse_budget

    tight = estimate_target(mnist_layers, LOIHI2, parse_budget("cores=4"))
    assert tight.verdict == NO_FIT and not tight.fits
    exact = estimate_target(mnist_layers, LOIHI2, parse_budget("cores=5"))
    assert exact.fits  # the point fits; the band's top (8) does not, which the verdict says
    assert exact.verdict != "fits"
    roomy = estimate_target(mnist_layers, LOIHI2, parse_budget("cores=8"))
    assert roomy.verdict == "fits"


def test_other_targets_report_limits_and_unknowns(mnist_layers, oxford_layers):
    speck = estimate_target(mnist_layers, load_profile("speck"))
    assert speck.verdict == NO_FIT  # 784 x 128 kernel entries exceed every core's 64Ki kernel memory
    assert estimate_target(oxford_layers, load_profile("speck")).fits
    xylo = estimate_target(mnist_layers, load_profile("xylo"))
    assert xylo.verdict == NO_FIT and "16 input channels" in xylo.placements[0].problem
    spinn = estimate_target(mnist_layers, load_profile("spinnaker2"))
    assert spinn.cores is None and spinn.verdict == "unknown"
    truenorth = estimate_target(mnist_layers, load_profile("truenorth"))
    assert [p.cores for p in truenorth.placements] == [4, 1, 1]  # ceil(128/256) x ceil(784/256) crossbars


def test_conv_fanout_respects_stride_and_speck_memory_by_hand():
    from snndeploy.hardware.edge import speck_memory

    w = np.ones((5, 2, 3, 3))
    strided = layers_from_nir(chain((2, 13, 13), [("c", conv(w, stride=2)), ("n", lif((5, 6, 6)))]))[0]
    # an interior input pixel is reached by 2 x 2 of the 3 x 3 taps (offsets 0 and 2 share residue 0) per output channel
    assert strided.in_fanout_max == 5 * 4
    dense = layers_from_nir(chain((2, 8, 8), [("c", conv(w)), ("n", lif((5, 6, 6)))]))[0]
    assert dense.in_fanout_max == 5 * 9
    # sinabs rule: kernel c_in * 2^(ceil log2 9 + ceil log2 5) = 2 * 16 * 8; neurons 5 * 2^3 * 2^3 (6 -> 8)
    assert speck_memory(strided) == (256, 320)


@pytest.mark.parametrize("name", ["mnist-mlp-128/network.net", "oxford/network.net", "tinynet/tiny.net"])
def test_counting_the_ir_equals_counting_its_exported_graph(fixtures_dir, name):
    """The estimator counts the IR directly; the NIR graph the exporter writes for it gives the same numbers."""
    net = load_net(fixtures_dir / name)
    from_ir, from_graph = layers_from_ir(net), layers_from_nir(to_nir(net))
    assert from_ir == from_graph
    for a, b in zip(from_ir, from_graph, strict=True):
        assert np.array_equal(a.in_fanout, b.in_fanout) if b.in_fanout is not None else a.in_fanout is None
