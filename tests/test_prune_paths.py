"""Effective weights (on an input-to-output path) and moving the ineffective ones, on built and real networks."""

from __future__ import annotations

import pytest
import torch
from test_prune_engine import conv_net, mlp
from test_prune_methods import run

from snndeploy.loader import load_model
from snndeploy.prune import paths, scores
from snndeploy.prune.engine import PruningEngine


def brute_force_effective(masks: list[torch.Tensor]) -> list[torch.Tensor]:
    """For a chain of dense masks ``[out, in]``: a kept weight is effective when the product of the 0/1 matrices
    before it reaches its input and the product after it reaches an output."""
    reach = torch.ones(masks[0].shape[1])
    forward = []
    for m in masks:
        forward.append(reach > 0)
        reach = (m.float() @ reach).clamp(max=1)
    back = torch.ones(masks[-1].shape[0])
    backward = [None] * len(masks)
    for k in range(len(masks) - 1, -1, -1):
        backward[k] = back > 0
        back = (masks[k].float().t() @ back).clamp(max=1)
    return [(m != 0) & backward[k].view(-1, 1) & forward[k].view(1, -1) for k, m in enumerate(masks)]


def test_effective_matches_path_enumeration_on_a_chain():
    net = mlp()
    engine = PruningEngine(net)
    g = torch.Generator().manual_seed(3)
    for layer in engine.layers:  # 85 % random sparsity leaves dead ends in every layer
        layer.mask.mask.copy_((torch.rand(layer.mask.mask.shape, generator=g) > 0.85).float())
    on_path = engine.effective_masks()
    masks = [layer.mask.mask.reshape(layer.mask.mask.shape[:2]) for layer in engine.layers]
    expect = brute_force_effective(masks)
    got = [(layer.mask.mask != 0) & on_path[layer.info.index] for layer in engine.layers]
    for e, k in zip(expect, got, strict=True):
        assert torch.equal(e, k.reshape(e.shape))
    assert sum(int(e.sum()) for e in expect) < sum(int((m != 0).sum()) for m in masks)  # some are ineffective


def test_a_neuron_without_fan_out_makes_its_inputs_ineffective():
    net = mlp()
    engine = PruningEngine(net)
    first, second = engine.layers[0], engine.layers[1]
    second.mask.mask[:, 5] = 0  # hidden neuron 5 of the first layer feeds nothing
    counts = {s["layer"]: s for s in engine.layer_stats()}
    assert counts[first.info.name]["effective_weights"] == first.mask.mask.numel() - first.mask.mask.shape[1]
    assert counts[second.info.name]["effective_weights"] == counts[second.info.name]["live_weights"]


def test_reassign_keeps_sparsity_and_leaves_only_effective_weights_through_pool_and_flatten():
    net = conv_net()
    engine = PruningEngine(net)
    engine.prune_weights(0.9, scores.weight_magnitude(engine), "erk")
    engine.layers[-2].mask.mask[:, :10] = 0  # cut columns of the flattened conv output: dead ends upstream
    before = engine.weight_sparsity()
    stats = engine.layer_stats()
    assert any(s["effective_weights"] < s["live_weights"] for s in stats)
    moved = engine.reassign_ineffective()
    assert sum(moved.values()) > 0
    assert engine.weight_sparsity() == pytest.approx(before)
    for s in engine.layer_stats():
        assert s["effective_weights"] == s["live_weights"]


def test_moved_weights_keep_their_stored_values_and_the_count():
    net = mlp()
    engine = PruningEngine(net)
    first, second = engine.layers[0], engine.layers[1]
    stored = first.weight.detach().clone()
    first.mask.mask[:, :10] = 0  # plenty of pruned positions on live paths
    second.mask.mask[:, 3] = 0  # neuron 3 feeds nothing: its 10 kept inputs are wasted
    engine.reassign_ineffective()
    assert int(first.mask.mask[3].sum()) == 0
    assert int(first.mask.mask.sum()) == 16 * 10  # 10 moved out of row 3 into the pruned columns of live rows
    assert torch.equal(first.weight.detach(), stored)  # values untouched: the mask decides


def test_gmp_at_98_percent_on_lava_dl_mnist_mlp_wastes_weights_until_reassigned(fixtures_dir):
    """lava-dl's trained netx MNIST network (784-128-64-10): magnitude pruning to 98 % leaves neurons with no fan-in
    or fan-out; reassigning makes every kept weight effective at the same sparsity."""
    net = load_model(fixtures_dir / "mnist-mlp-128" / "network.net")
    engine = PruningEngine(net)
    engine.prune_weights(0.98, scores.weight_magnitude(engine), "erk")
    stats = engine.layer_stats()
    live = sum(s["live_weights"] for s in stats)
    wasted = live - sum(s["effective_weights"] for s in stats)
    assert wasted > 0.05 * live
    engine.reassign_ineffective()
    after = engine.layer_stats()
    assert sum(s["live_weights"] for s in after) == live
    assert all(s["effective_weights"] == s["live_weights"] for s in after)


def test_runner_reassigns_after_each_pruning_step(tmp_path):
    runner, result, _ = run(tmp_path, "gmp", 0.95, steps=2, reassign_ineffective=True, reconstruct=False,
                            cut_substeps=1)  # sub-steps reassign within the cut (test_prune_descent.py)
    report = result.report
    assert all("reassigned" in h for h in report["history"])
    assert report["sparsity"]["weights"] == pytest.approx(0.95, abs=1e-3)
    assert [r["kind"] for r in report["records"]] == ["prune_weights", "reassign_ineffective"] * 2
    assert all(s["effective_weights"] == s["live_weights"] for s in report["sparsity"]["per_layer"])


@pytest.mark.parametrize("bias,reached", [(0.5, True), (0.0, False)])
def test_a_neuron_bias_counts_as_reached(bias, reached):
    net = conv_net()  # the first dense block carries a bias (NeuronBias on the neuron's norm hook)
    engine = PruningEngine(net)
    dense = engine.layers[-2]
    with torch.no_grad():
        net.blocks[dense.info.index].neuron.norm.value.fill_(bias)
    dense.mask.mask.zero_()  # no inputs at all: only a bias drives it
    forward, _ = paths.live_channels(net, engine.graph, {dense.info.index: dense.mask.mask})
    assert bool(forward[dense.info.index].all()) is reached


def test_ineffective_share_counts_stranded_kept_weights():
    net = mlp()
    engine = PruningEngine(net)
    assert engine.ineffective_share() == 0.0
    first, second = engine.layers[0], engine.layers[1]
    second.mask.mask[:, 0] = 0.0  # hidden neuron 0 of the first layer now feeds nothing
    kept = sum(int(layer.mask.mask.sum()) for layer in engine.layers)
    stranded = int(first.mask.mask[0].sum())
    assert engine.ineffective_share() == pytest.approx(stranded / kept)


def test_runner_records_each_steps_ineffective_share(tmp_path):
    _, result, _ = run(tmp_path, "gmp", 0.95, steps=2, reassign_ineffective=False)  # nothing moved after the share
    shares = [h["ineffective_share"] for h in result.report["history"]]
    assert len(shares) == 2 and all(0.0 <= s < 1.0 for s in shares)
    stats = result.report["sparsity"]["per_layer"]
    live = sum(s["live_weights"] for s in stats)
    assert shares[-1] == pytest.approx(1 - sum(s["effective_weights"] for s in stats) / live)
