"""Many samples in one Lava build (``snndeploy.export.lava_batch``): copies of the network side by side give every
sample exactly the spikes (and read-out voltages) of a run of it alone, on real fixture networks and data."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.sparse import block_diag, csr_matrix

import snndeploy  # noqa: F401
from snndeploy.export import lava_batch
from snndeploy.loader import load_net
from snndeploy.settings import REPO_ROOT
from snndeploy.sim_inputs import prepare
from snndeploy.simulate import plan_runs, simulate_net

pytestmark = pytest.mark.lava


def all_layers(net) -> tuple[int, ...]:
    return tuple(range(len(net.layers)))


def assert_same_runs(a, b, net) -> None:
    """Every layer's spikes of every sample, the probed u/v and the activity (every sample starts afresh, back to
    back too: nothing of one sample spills into the next) are identical."""
    for i in all_layers(net):
        assert np.array_equal(a.layer_spikes[i], b.layer_spikes[i]), f"layer {i}"
    for i, values in b.probes.items():
        for key in ("u", "v"):
            assert np.array_equal(a.probes[i][key], values[key]), f"layer {i} {key}"
    assert [x.per_neuron.tolist() for x in a.activity.layers] == [x.per_neuron.tolist() for x in b.activity.layers]


def test_biased_mlp_back_to_back_in_copies_equals_one_build_per_sample(fixtures_dir, no_lava_leftovers):
    """The bootstrap MNIST network (mnist-mlp-512: every digit fed as its input layer's bias, hidden biases, voltage
    read-out): 3 digits back to back on 2 copies (the second copy padded), each digit's bias held for its steps
    and every layer starting afresh at its first step == 3 separate builds."""
    net, inputs = prepare(fixtures_dir / "mnist-mlp-512" / "network.net", None, "mnist", 3, 12)
    assert inputs.bias is not None and not inputs.spikes.any()  # the image is a current: the input layer's bias
    batched = simulate_net(net, inputs.spikes, record=all_layers(net), copies=2, input_bias=inputs.bias)
    alone = simulate_net(net, inputs.spikes, record=all_layers(net), copies=1, chunk_steps=1,
                         input_bias=inputs.bias)
    assert (batched.plan.copies, batched.plan.per_copy, batched.timing.chunks) == (2, 2, 1)
    assert (alone.plan.copies, alone.plan.per_copy, alone.timing.chunks) == (1, 1, 3)
    assert len({batched.layer_spikes[1][k].tobytes() for k in range(3)}) == 3  # three digits, three rasters
    assert all(batched.layer_spikes[i].sum() > 0 for i in range(3))
    assert batched.probes[3]["v"].shape == (3, 10, 12) and np.any(batched.probes[3]["v"])
    assert_same_runs(batched, alone, net)
    assert np.array_equal(batched.predictions(), alone.predictions())


def test_nmnist_cnn_copies_equal_back_to_back_runs(data_dir, no_lava_leftovers):
    """The N-MNIST CNN (examples/nmnist_cnn.yaml, seeded weights; unrolled conv layers of stacked copies, per-copy
    flatten) on real events: 2 copies x 2 samples back to back == one copy running all 4 back to back."""
    from snndeploy.export.slayer_io import from_slayer
    from snndeploy.loader import load_model

    torch.manual_seed(0)
    net = from_slayer(load_model(REPO_ROOT / "examples" / "nmnist_cnn.yaml"))
    _, inputs = prepare(REPO_ROOT / "examples" / "nmnist_cnn.yaml", None, "nmnist-small", 4, 30)
    batched = simulate_net(net, inputs.spikes, record=all_layers(net), copies=2)
    single = simulate_net(net, inputs.spikes, record=all_layers(net), copies=1)
    assert (batched.plan.copies, batched.plan.per_copy) == (2, 2)
    assert all(batched.layer_spikes[i].sum() > 0 for i in range(3))
    assert_same_runs(batched, single, net)


@pytest.mark.slow
def test_mlp_and_tinynet_copies_with_uneven_last_copy(fixtures_dir, no_lava_leftovers):
    """mnist-mlp-128 (no bias: copies run back to back) with 5 samples on 2 copies (the last copy padded), and
    tinynet (biased conv net, image input scale unrolled) on 3 copies, against one copy / separate builds."""
    net, inputs = prepare(fixtures_dir / "mnist-mlp-128" / "network.net", None, "mnist", 5, 15)
    batched = simulate_net(net, inputs.spikes, record=all_layers(net), copies=2)
    assert (batched.plan.copies, batched.plan.per_copy) == (2, 3)
    assert_same_runs(batched, simulate_net(net, inputs.spikes, record=all_layers(net), copies=1), net)
    tiny = load_net(fixtures_dir / "tinynet" / "tiny.net")
    x = (np.random.default_rng(0).random((3, *tiny.input_shape, 10)) < 0.2).astype(np.uint8)
    batched = simulate_net(tiny, x, record=all_layers(tiny), copies=3)
    assert batched.layer_spikes[2].sum() > 0
    assert_same_runs(batched, simulate_net(tiny, x, record=all_layers(tiny), copies=1), tiny)


@pytest.mark.slow
def test_synapse_delays_run_exactly_in_copies(fixtures_dir, no_lava_leftovers):
    """Axonal delays (DelaySparse, block-diagonal delays) start at step 0 in every copy as in a separate run."""
    mlp = load_net(fixtures_dir / "mnist-mlp-128" / "network.net")
    delays = np.random.default_rng(1).integers(0, 4, 128)
    net = mlp.with_layers([replace(mlp.layers[0], delay=delays), *mlp.layers[1:]])
    _, inputs = prepare(fixtures_dir / "mnist-mlp-128" / "network.net", None, "mnist", 2, 15)
    batched = simulate_net(net, inputs.spikes, record=all_layers(net), copies=2)
    assert batched.plan.per_copy == 1 and batched.layer_spikes[1].sum() > 0
    assert_same_runs(batched, simulate_net(net, inputs.spikes, record=all_layers(net), copies=1), net)


def test_the_plan_rule(fixtures_dir):
    mlp512 = load_net(fixtures_dir / "mnist-mlp-512" / "network.net")
    mlp128 = load_net(fixtures_dir / "mnist-mlp-128" / "network.net")
    tiny = load_net(fixtures_dir / "tinynet" / "tiny.net")
    plan = plan_runs(mlp512, 10_000, 16)  # biased: back to back too (every layer starts afresh per sample)
    assert plan.per_copy > 1 and "back to back" in plan.describe()
    delayed = mlp512.with_layers([replace(mlp512.layers[1], delay=np.ones(512, dtype=np.int64)),
                                  *mlp512.layers[2:]])
    assert plan_runs(delayed, 10_000, 16).per_copy == 1 and "delays" in plan_runs(delayed, 10_000, 16).describe()
    per_copy = lava_batch.synapses_per_copy(mlp512)
    assert plan.copies == lava_batch.DEFAULT_MEMORY_BYTES // (lava_batch.BYTES_PER_SYNAPSE * per_copy)
    assert plan_runs(mlp512, 2, 16).copies == 2  # never more copies than samples
    few = plan_runs(mlp512, 40, 16)  # 32 copies x 2 would leave 24 copies idle: the same one build on 20 copies
    assert (few.copies, few.per_copy) == (20, 2)
    assert plan_runs(mlp512, 40, 16, copies=32).copies == 32  # asked for: kept
    assert lava_batch.choose_copies(mlp512, 10_000, memory_bytes=1) == 1  # memory bound
    back_to_back = plan_runs(mlp128, 10_000, 25)
    assert back_to_back.per_copy > 1 and "back to back" in back_to_back.describe()
    # floating_pt keeps Lava's Conv: the input scale takes one Conv group per channel and copy
    assert lava_batch.max_copies(tiny, "floating_pt") == 127 // 3
    conv_plan = plan_runs(tiny, 10_000, 16, mode="floating_pt")  # Conv layers: one copy (measured faster)
    assert conv_plan.copies == 1 and conv_plan.per_copy > 1
    assert plan_runs(tiny, 10_000, 16, copies=100, mode="floating_pt").copies <= 42
    # fixed_pt unrolls every conv layer into a Sparse: no group limit, copies by memory
    assert all(lava_batch.unrolled_kernel(layer, "fixed_pt") is not None for layer in tiny.layers)
    unrolled = plan_runs(tiny, 10_000, 16)
    assert unrolled.copies == lava_batch.choose_copies(tiny, 10_000) > 42 and unrolled.per_copy > 1


def test_block_diagonal_and_replicated_layers(fixtures_dir):
    w = np.random.default_rng(0).integers(-3, 4, (5, 7)) * (np.random.default_rng(1).random((5, 7)) < 0.5)
    expected = block_diag([csr_matrix(w)] * 4, format="csr")
    assert (lava_batch.block_diagonal(w, 4) != expected).nnz == 0
    assert lava_batch.block_diagonal(w, 4) is lava_batch.block_diagonal(w.copy(), 4)  # kept for the next build
    tiny = load_net(fixtures_dir / "tinynet" / "tiny.net")
    conv = lava_batch.replicate_layer(tiny.layers[1], 3)
    assert conv.in_shape == (9, 16, 16) and conv.out_shape == (72, 6, 6) and conv.groups == 3
    assert np.array_equal(conv.weight[24:48], tiny.layers[1].weight)
    assert conv.neuron.bias.shape == (72, 6, 6)
    x = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    assert np.array_equal(lava_batch.split_copies(lava_batch.stack_copies(x), 2), x)


def test_synaptic_bias_and_recurrence_run_back_to_back_exactly(no_lava_leftovers):
    """The NIR paper's snnTorch Braille graph (a synaptic bias whose always-on axon switches on as each sample
    reaches the layer, and a recurrent layer): 3 samples back to back in one build == 3 separate builds."""
    from snndeploy.export.nir_io import read_nir

    net = read_nir(REPO_ROOT / "tests" / "data" / "nir" / "braille_noDelay_bias_zero.nir", dt=1e-4, reset="zero")
    assert any(layer.syn_bias is not None for layer in net.layers)
    assert any(layer.recurrent is not None for layer in net.layers)
    x = (np.random.default_rng(3).random((3, *net.input_shape, 30)) < 0.2).astype(np.uint8)
    together = simulate_net(net, x, mode="floating_pt", record=all_layers(net), copies=1)
    alone = simulate_net(net, x, mode="floating_pt", record=all_layers(net), copies=1, chunk_steps=1)
    assert (together.plan.per_copy, together.timing.chunks, alone.timing.chunks) == (3, 1, 3)
    assert all(together.layer_spikes[i].sum() > 0 for i in all_layers(net))
    assert_same_runs(together, alone, net)


@pytest.mark.parametrize("case", [
    {"in_shape": (4, 9, 11), "out": 6, "kernel": (3, 2), "stride": (2, 1), "padding": (1, 0), "dilation": (1, 2),
     "groups": 2},
    {"in_shape": (2, 34, 34), "out": 12, "kernel": (5, 5), "stride": (2, 2), "padding": (2, 2), "dilation": (1, 1),
     "groups": 1},
])
def test_unrolled_conv_is_the_convolution_of_every_copy(case):
    """The unrolled matrix (Lava's XYC order, copies stacked on channels) times any input == torch's conv2d of each
    copy's input, for strides, padding, dilation and groups."""
    from snndeploy.export.ir import Layer, Neuron

    rng = np.random.default_rng(0)
    c, h, w = case["in_shape"]
    kernel = rng.integers(-5, 6, (case["out"], c // case["groups"], *case["kernel"])).astype(np.float64)
    x = rng.integers(0, 3, (3, c, h, w)).astype(np.float64)
    ref = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(kernel), stride=case["stride"],
                                     padding=case["padding"], dilation=case["dilation"], groups=case["groups"]).numpy()
    neuron = Neuron(np.array(0), np.array(0), np.array(1.0))
    layer = Layer(name="c", op="conv", in_shape=(c, h, w), out_shape=ref.shape[1:], neuron=neuron,
                  weight=kernel, stride=case["stride"], padding=case["padding"], dilation=case["dilation"],
                  groups=case["groups"])
    matrix = lava_batch.unrolled_conv(layer, kernel, copies=3)
    assert matrix.shape == (3 * ref[0].size, 3 * x[0].size)
    xyc = lava_batch.stack_copies(x).transpose(2, 1, 0).reshape(-1)  # (3c, h, w) -> W, H, C flat
    out = (matrix @ xyc).reshape(ref.shape[3], ref.shape[2], 3 * ref.shape[1]).transpose(2, 1, 0)
    assert np.array_equal(lava_batch.split_copies(out, 3), ref)


def test_unrolled_conv_layers_equal_lavas_conv(data_dir, fixtures_dir, monkeypatch, no_lava_leftovers):
    """fixed_pt conv and input-scale layers run as a Sparse of their unrolled matrix (2 copies back to back) give
    every layer the spikes of Lava's own Conv processes (one copy): the N-MNIST CNN on real events and tinynet
    (biased conv net, image input scale)."""
    from snndeploy.export.slayer_io import from_slayer
    from snndeploy.loader import load_model

    torch.manual_seed(0)
    cnn = from_slayer(load_model(REPO_ROOT / "examples" / "nmnist_cnn.yaml"))
    _, events = prepare(REPO_ROOT / "examples" / "nmnist_cnn.yaml", None, "nmnist-small", 4, 30)
    tiny = load_net(fixtures_dir / "tinynet" / "tiny.net")
    noise = (np.random.default_rng(0).random((4, *tiny.input_shape, 10)) < 0.2).astype(np.uint8)
    unrolled = [simulate_net(net, x, record=all_layers(net), copies=2) for net, x in ((cnn, events.spikes),
                                                                                      (tiny, noise))]
    assert all(lava_batch.unrolled_kernel(layer, "fixed_pt") is not None for layer in tiny.layers)
    monkeypatch.setattr(lava_batch, "MAX_UNROLLED_SYNAPSES", 0)  # every conv layer a Lava Conv
    assert lava_batch.unrolled_kernel(cnn.layers[0], "fixed_pt") is None
    for (net, x), fast in zip(((cnn, events.spikes), (tiny, noise)), unrolled, strict=True):
        assert all(fast.layer_spikes[i].sum() > 0 for i in range(len(net.layers) - 1))
        assert_same_runs(fast, simulate_net(net, x, record=all_layers(net), copies=1), net)
