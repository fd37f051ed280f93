"""Mask engine, dependency graph, schedules, criticality and physical shrink on small real SLAYER networks."""

from __future__ import annotations

import copy

import pytest
import torch

from snndeploy.models.build import build_model
from snndeploy.models.spec import spec_from_dict
from snndeploy.prune import criticality, schedules, scores
from snndeploy.prune.engine import PruningEngine, Selection, erk_densities
from snndeploy.prune.methods import _top_among
from snndeploy.prune.shrink import shrink

NEURON = {"threshold": 0.5, "current_decay": 0.25, "voltage_decay": 0.03}


def conv_net(seed: int = 0, quantize: bool = False):
    torch.manual_seed(seed)
    spec = spec_from_dict({
        "name": "tiny_cnn", "input_shape": [2, 8, 8], "time_steps": 6, "quantize": quantize, "neuron": NEURON,
        "blocks": [{"kind": "conv", "out": 6, "kernel": 3, "padding": 1, "weight_scale": 3, "delay": True,
                    "bias": True},
                   {"kind": "pool", "kernel": 2},
                   {"kind": "conv", "out": 5, "kernel": 3, "padding": 1, "weight_scale": 3, "weight_norm": True},
                   {"kind": "flatten"},
                   {"kind": "dense", "out": 7, "weight_scale": 3, "bias": True},
                   {"kind": "dense", "out": 3, "weight_scale": 3}]})
    net = build_model(spec)
    with torch.no_grad():
        for block in net.blocks:
            norm = getattr(getattr(block, "neuron", None), "norm", None)
            if norm is not None:
                norm.value.uniform_(0.0, 0.2)
            if getattr(block, "delay", None) is not None:
                block.delay.delay.copy_(torch.randint(0, 3, block.delay.delay.shape).float())
    return net


def mlp(seed: int = 0):
    torch.manual_seed(seed)
    spec = spec_from_dict({"name": "tiny_mlp", "input_shape": [20], "time_steps": 8, "quantize": False,
                           "neuron": NEURON,
                           "blocks": [{"kind": "dense", "out": 16, "weight_scale": 3},
                                      {"kind": "dense", "out": 12, "weight_scale": 3},
                                      {"kind": "dense", "out": 4, "weight_scale": 3}]})
    return build_model(spec)


def spikes(net, n: int = 4, rate: float = 0.3, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (n, *net.spec.input_shape, net.spec.time_steps)
    return (torch.rand(shape, generator=g) < rate).float()


def train_steps(net, engine, steps: int = 5, lr: float = 0.05):
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-3)
    engine.bind_optimizer(opt)
    x = spikes(net)
    for _ in range(steps):
        opt.zero_grad()
        out = net(x)
        loss = (out.mean(-1) - 0.3).pow(2).sum() + sum(p.pow(2).sum() for p in engine.gate_params())
        loss.backward()
        opt.step()
        engine.after_step()
    return opt


def test_graph_follows_pool_and_flatten():
    net = conv_net()
    engine = PruningEngine(net, structured=True)
    graph = engine.graph
    assert [lay.index for lay in graph.layers] == [0, 2, 4, 5]
    g0, g2 = graph.group(0), graph.group(2)
    assert (g0.passthrough, g0.consumer, g0.per_channel_inputs) == ((1,), 2, 1)
    assert (g2.consumer, g2.per_channel_inputs) == (4, 16)  # 5 channels x 4x4 after the pool
    assert graph.group(5) is None  # the classifier's outputs are never pruned
    assert graph.consumer_columns(g2, torch.tensor([1, 3])).tolist() == list(range(16, 32)) + list(range(48, 64))
    assert [layer.info.index for layer in engine.layers] == [0, 2, 4]


def test_masks_hold_after_optimizer_steps():
    net = mlp()
    engine = PruningEngine(net)
    engine.prune_weights(0.7, scores.weight_magnitude(engine))
    before = {lay.info.index: lay.weight.detach().clone() for lay in engine.layers}
    train_steps(net, engine)
    for lay in engine.layers:
        effective = net.blocks[lay.info.index].synapse.weight
        assert torch.all(effective[lay.mask.mask == 0] == 0)
        assert not torch.equal(lay.weight.detach()[lay.mask.mask == 1], before[lay.info.index][lay.mask.mask == 1])
    assert engine.weight_sparsity() == pytest.approx(0.7, abs=1e-3)


def test_gates_of_pruned_channels_stay_zero_and_keep_a_gradient():
    net = conv_net()
    engine = PruningEngine(net, structured=True)
    engine.prune_channels(0.4, scores.channel_l1(engine))
    train_steps(net, engine)
    for lay in engine.layers:
        pruned = lay.mask.channel_mask == 0
        assert torch.all(lay.mask.gate.detach()[pruned] == 0)
        assert torch.all(lay.mask.gate.detach()[~pruned] != 0)
    grads = scores.channel_gradient(engine)
    assert any(float(grads[lay.info.index][lay.mask.channel_mask == 0].abs().sum()) > 0 for lay in engine.layers)


def test_dense_gradient_reaches_pruned_weights():
    net = mlp()
    engine = PruningEngine(net)
    engine.prune_weights(0.5, scores.weight_magnitude(engine))
    engine.track_gradients(True)
    out = net(spikes(net, rate=0.5))
    (out.mean(-1) - 0.5).pow(2).sum().backward()
    grads = engine.dense_grads()
    pruned_grad = sum(float(grads[lay.info.index][lay.mask.mask == 0].abs().sum()) for lay in engine.layers)
    stored_grad = sum(float(lay.weight.grad[lay.mask.mask == 0].abs().sum()) for lay in engine.layers)
    assert pruned_grad > 0 and stored_grad == 0


@pytest.mark.parametrize("kind,steps", [("one_shot", 1), ("cubic", 4), ("iterative", 1)])
def test_schedule_targets_are_reached(kind, steps):
    targets = schedules.make(kind, 0.9, steps=steps, rate=0.3)
    assert targets[-1] == pytest.approx(0.9) and all(a < b for a, b in zip(targets[:-1], targets[1:], strict=True))
    net = mlp()
    engine = PruningEngine(net)
    total = sum(lay.mask.mask.numel() for lay in engine.layers)
    for target in targets:
        engine.prune_weights(target, scores.weight_magnitude(engine))
        assert engine.weight_sparsity() == pytest.approx(round(target * total) / total)
    by_layer = engine.prune_weights(0.95, scores.weight_magnitude(engine), scope="layer")
    assert by_layer and all(s["sparsity"] == pytest.approx(0.95, abs=0.01) for s in engine.layer_stats())


def test_erk_allocation_keeps_the_small_output_layer_and_the_overall_budget():
    shapes = [(128, 784, 1, 1, 1), (64, 128, 1, 1, 1), (10, 64, 1, 1, 1)]  # lava-dl's netx MNIST MLP
    sizes = [784 * 128, 128 * 64, 64 * 10]
    density = erk_densities(shapes, 0.1)
    assert density[2] == 1.0 and density[0] < density[1] < 1.0  # the 10-way output stays whole
    assert sum(d * n for d, n in zip(density, sizes, strict=True)) == pytest.approx(0.1 * sum(sizes))
    assert density[1] / density[0] == pytest.approx(((64 + 128) / (64 * 128)) / ((128 + 784) / (128 * 784)))
    net = conv_net()
    engine = PruningEngine(net)
    engine.prune_weights(0.8, scores.weight_magnitude(engine), scope="erk")
    assert engine.weight_sparsity() == pytest.approx(0.8, abs=2e-3)
    expect = erk_densities([tuple(lay.mask.mask.shape) for lay in engine.layers], 0.2)
    for stat, d in zip(engine.layer_stats(), expect, strict=True):
        assert 1.0 - stat["sparsity"] == pytest.approx(d, abs=1.0 / stat["weights"] + 1e-9)


def test_regrowth_restores_exactly_the_chosen_weights():
    net = mlp()
    engine = PruningEngine(net)
    original = {lay.info.index: lay.weight.detach().clone() for lay in engine.layers}
    pruned = engine.prune_weights(0.6, scores.weight_magnitude(engine))
    train_steps(net, engine, steps=2)  # optimizer state and weight decay must not leak into the restored values
    chosen = {i: idx[::3] for i, idx in pruned.items()}
    masks_before = {lay.info.index: lay.mask.mask.clone() for lay in engine.layers}
    engine.regrow_weights(chosen, init="restore")
    for lay in engine.layers:
        i = lay.info.index
        changed = torch.nonzero((lay.mask.mask != masks_before[i]).view(-1)).view(-1)
        assert torch.equal(changed, chosen[i])
        assert torch.equal(lay.weight.detach().view(-1)[chosen[i]], original[i].view(-1)[chosen[i]])
    assert engine.records[-1]["kind"] == "regrow_weights"


def test_share_score_gives_each_neuron_regrowth_in_proportion_to_its_criticality_in_magnitude_order():
    magnitude = {0: torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0, 0.5], [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]])}
    chosen = {0: torch.tensor([1, 2, 3, 4, 5, 7, 8, 9, 10, 11])}  # row 0: all but the largest; row 1: the smallest 5
    share = scores.weight_share({0: torch.tensor([3.0, 1.0])}, chosen, magnitude)
    regrown = _top_among(chosen, share, 4)[0].tolist()
    assert regrown == [1, 2, 3, 7]  # 3 : 1, each row's largest just-pruned first
    assert float(share[0].view(-1)[0]) == 0.0  # entries not just pruned score nothing


def test_post_times_scores_are_the_products_of_criticality_rate_and_magnitude():
    net = mlp()
    engine = PruningEngine(net)
    indices = [lay.info.index for lay in engine.layers]
    rates: dict = {}
    crit = criticality.criticality(net, indices, [spikes(net)], rates=rates)
    chosen = engine.prune_weights(0.5, scores.weight_magnitude(engine))
    by_kind = {kind: scores.weight_criticality(engine, kind, crit, rates, chosen, scores.weight_magnitude(engine))
               for kind in ("post_magnitude", "post_rate", "post_rate_magnitude")}
    for lay in engine.layers:
        # (out, in) of the stored values: pruned weights keep theirs for regrowth
        i, w = lay.info.index, lay.weight.detach().abs().reshape(lay.weight.shape[0], -1)
        c_r = crit[i].view(-1, 1) * rates[i].view(1, -1)
        got = {kind: score[i].reshape(w.shape) for kind, score in by_kind.items()}
        assert torch.allclose(got["post_magnitude"], crit[i].view(-1, 1) * w)
        assert torch.allclose(got["post_rate"], c_r.expand(w.shape))
        assert torch.allclose(got["post_rate_magnitude"], c_r * w)
        assert bool((w.reshape(-1)[chosen[i]] > 0).all())


def test_channel_regrowth_restores_exactly_the_chosen_channels():
    net = conv_net()
    engine = PruningEngine(net, structured=True)
    pruned = engine.prune_channels(0.5, scores.channel_l1(engine))
    chosen = {i: idx[:1] for i, idx in pruned.items()}
    engine.regrow_channels(chosen)
    for lay in engine.layers:
        expect = torch.ones_like(lay.mask.channel_mask)
        expect[pruned.get(lay.info.index, torch.tensor([], dtype=torch.long))] = 0
        expect[chosen.get(lay.info.index, torch.tensor([], dtype=torch.long))] = 1
        assert torch.equal(lay.mask.channel_mask, expect)


@pytest.mark.parametrize("quantize", [False, True])
def test_structured_shrink_matches_the_masked_model(quantize):
    net = conv_net(quantize=quantize)
    engine = PruningEngine(net, structured=True)
    engine.prune_channels(0.5, scores.channel_l1(engine))
    train_steps(net, engine, steps=2)
    x = spikes(net, rate=0.4)
    net.eval()
    with torch.no_grad():
        masked = net(x)
    keep = {lay.info.index: torch.nonzero(lay.mask.channel_mask).view(-1) for lay in engine.layers}
    engine.finalize()
    small = copy.deepcopy(net)
    shrink(small, engine.graph, keep)
    with torch.no_grad():
        out = small(x)
    assert masked.sum() > 0 and torch.equal(out, masked)
    assert small.blocks[0].synapse.weight.shape[0] == keep[0].numel() == small.spec.blocks[0].out
    assert small.blocks[2].synapse.weight.shape[1] == keep[0].numel()
    assert small.blocks[4].synapse.weight.shape[1] == keep[2].numel() * 16
    assert small.blocks[0].delay.delay.shape[0] == keep[0].numel()
    assert small.blocks[4].neuron.norm.value.shape[0] == keep[4].numel()
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in net.parameters())


def test_selection_rules():
    net = conv_net()
    engine = PruningEngine(net, selection=Selection(exclude=("conv",), exclude_last=False))
    assert [lay.info.index for lay in engine.layers] == [4, 5]
    engine2 = PruningEngine(mlp(), selection=Selection(exclude_first=True, exclude_last=True))
    assert [lay.info.index for lay in engine2.layers] == [1]


def test_criticality_kernel_peaks_at_threshold_and_scores_channels():
    x = torch.linspace(-2, 2, 401)
    for kind in criticality.KERNELS:
        h = criticality.kernel(x, kind, 2.0)
        assert int(h.argmax()) == 200
    net = mlp()
    crit = criticality.criticality(net, [0, 1, 2], [spikes(net, rate=0.5)])
    assert set(crit) == {0, 1, 2} and crit[0].shape == (16,) and torch.all(crit[0] > 0)
    # by hand for one block: record voltages and average the kernel
    seen = []
    with criticality.record_voltages(net, [1], lambda i, v: seen.append(v)):
        net(spikes(net, rate=0.5))
    theta = float(net.blocks[1].neuron.threshold)
    manual = criticality.kernel((seen[0] - theta) / theta).mean(dim=(0, 2))
    assert torch.allclose(manual, crit[1], atol=1e-6)
