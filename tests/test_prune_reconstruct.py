"""Refitting kept weights to the pre-step currents (snndeploy.prune.reconstruct): the least-squares solution, checked
through the synapses' own forward and autograd; the runner's use; lava-dl's trained MNIST network on real digits."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from test_prune_engine import conv_net, mlp, spikes
from test_prune_methods import run

from snndeploy.errors import UserError
from snndeploy.loader import load_model
from snndeploy.models.build import clipped_weight
from snndeploy.prune import config as cfglib
from snndeploy.prune import scores
from snndeploy.prune.engine import PruningEngine
from snndeploy.prune.finetune import DatasetTrainer
from snndeploy.prune.graph import reset_state
from snndeploy.prune.reconstruct import reconstruct


def synapse_io(net, index: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The input of ``net.blocks[index].synapse`` and its current (output less bias) on ``x``."""
    seen = {}
    synapse = net.blocks[index].synapse

    def hook(module, args, result):
        seen["x"], seen["y"] = args[0].detach(), result.detach()

    handle = synapse.register_forward_hook(hook)
    net.eval()
    with torch.no_grad():
        net(x)
        reset_state(net)
    handle.remove()
    bias = synapse.bias
    y = seen["y"] if bias is None else seen["y"] - bias.view(1, -1, *([1] * (seen["y"].dim() - 2)))
    return seen["x"], y


def pruned(net, sparsity: float) -> tuple[PruningEngine, torch.nn.Module]:
    """An engine with ``sparsity`` of the weights pruned by magnitude, and the network as it was before."""
    engine = PruningEngine(net)
    before = copy.deepcopy(net)
    engine.prune_weights(sparsity, scores.weight_magnitude(engine), "layer")
    return engine, before


@pytest.mark.parametrize("make", [mlp, conv_net], ids=["mlp", "conv"])
def test_the_first_layers_kept_weights_are_the_least_squares_fit_of_its_currents(make):
    """With a negligible ridge the refitted first layer (same input in both networks) makes the currents' squared
    error stationary in every kept weight: autograd through the synapse's own forward finds a zero gradient."""
    net = make()
    engine, before = pruned(net, 0.5)
    batches = [spikes(net, n=8, seed=s) for s in range(3)]
    report = reconstruct(engine, net, before, batches, damping=1e-9)
    first = engine.layers[0]
    synapse = first.block.synapse
    loss = 0.0
    for x in batches:
        xin, target = synapse_io(before, first.info.index, x)
        net.train()
        current = synapse(xin)
        if synapse.bias is not None:
            current = current - synapse.bias.view(1, -1, *([1] * (current.dim() - 2)))
        loss = loss + ((current - target) ** 2).sum()
    grad = torch.autograd.grad(loss, first.weight)[0]
    kept = first.mask.mask != 0
    scale = (first.weight.detach()[kept].abs().mean() * loss.detach()).clamp(min=1e-12)
    assert float(grad[kept].abs().max()) < 1e-4 * float(scale) + 1e-6
    errors = report[first.info.name]
    assert errors["error_after"] < errors["error_before"]


@pytest.mark.parametrize("make", [mlp, conv_net], ids=["mlp", "conv"])
def test_reported_errors_are_the_measured_current_errors_and_fall_in_every_layer(make):
    net = make()
    engine, before = pruned(net, 0.7)
    batches = [spikes(net, n=8, seed=s) for s in range(3)]
    old = {layer.info.name: layer.weight.detach().clone() for layer in engine.layers}
    report = reconstruct(engine, net, before, batches, damping=0.01)
    assert set(report) == {layer.info.name for layer in engine.layers}
    for layer in engine.layers:
        errors = report[layer.info.name]
        assert errors["error_after"] <= errors["error_before"] + 1e-12
        if layer is engine.layers[-1]:  # the last layer's inputs come from every refitted layer before it
            num = den = 0.0
            for x in batches:
                _, got = synapse_io(net, layer.info.index, x)
                _, want = synapse_io(before, layer.info.index, x)
                num += float(((got - want) ** 2).sum())
                den += float((want ** 2).sum())
            assert num / den == pytest.approx(errors["error_after"], rel=1e-3, abs=1e-9)
        pruned_entries = layer.mask.mask == 0
        assert torch.equal(layer.weight.detach()[pruned_entries], old[layer.info.name][pruned_entries])
    assert engine.records[-1]["kind"] == "reconstruct"


def test_nothing_pruned_nothing_changes():
    net = mlp()
    engine = PruningEngine(net)
    before = copy.deepcopy(net)
    stored = [layer.weight.detach().clone() for layer in engine.layers]
    report = reconstruct(engine, net, before, [spikes(net, n=8)], damping=0.01)
    for layer, old in zip(engine.layers, stored, strict=True):
        assert torch.allclose(layer.weight.detach(), old, atol=1e-5)
        assert report[layer.info.name]["error_after"] < 1e-8


def test_runner_refits_after_each_step_and_not_after_a_rewinding_one(tmp_path):
    _, result, _ = run(tmp_path, "gmp", 0.8, steps=2, reconstruct=True, reconstruct_batches=2,
                       reassign_ineffective=False, cut_substeps=1)  # sub-steps refit within the cut
    history = result.report["history"]
    assert all("reconstructed" in h for h in history)
    for h in history:
        for errors in h["reconstructed"].values():
            assert errors["error_after"] <= errors["error_before"] + 1e-12
    assert [r["kind"] for r in result.report["records"]] == ["prune_weights", "reconstruct"] * 2
    _, result, _ = run(tmp_path, "imp", 0.5, rate=0.5, rewind="start", reconstruct=True)
    assert not any("reconstructed" in h for h in result.report["history"])


def test_reconstruct_config_is_checked():
    with pytest.raises(UserError, match="reconstruct_batches"):
        cfglib.config_from_dict(cfglib.GMPConfig, {"reconstruct": True, "reconstruct_batches": 0})
    with pytest.raises(UserError, match="reconstruct"):
        cfglib.config_from_dict(cfglib.GMPConfig, {"reconstruct": "yes"})


def test_refitting_keeps_lava_dl_mnist_mlp_far_more_accurate_after_a_large_step(fixtures_dir):
    """lava-dl's trained netx MNIST network (784-128-64-10), 80 % of its weights removed by magnitude in one step,
    no fine-tuning: refitting the kept weights on 8 training batches keeps it far closer to its accuracy."""
    path = fixtures_dir / "mnist-mlp-128" / "network.net"
    accuracy = {}
    for refit in (False, True):
        net = load_model(path)
        data = DatasetTrainer("mnist", net, batch_size=64, subset=1000, test_subset=500, progress=False, threads=1)
        engine = PruningEngine(net)
        before = copy.deepcopy(net)
        engine.prune_weights(0.8, scores.weight_magnitude(engine), "erk")
        if refit:
            reconstruct(engine, net, before, [x for x, _ in itertools.islice(data.train_batches(), 8)], 0.01)
        accuracy[refit] = data.evaluate(net)["accuracy"]
    assert accuracy[True] > accuracy[False] + 0.08, accuracy


def test_structured_pruning_refits_the_consumer_through_its_gates():
    """Channels removed from the first convolution: the next layer's kept columns are refitted; stored weights are
    divided by the channel gates, so the effective weights are the fit, and the gates stay."""
    net = conv_net()
    engine = PruningEngine(net, structured=True)
    with torch.no_grad():
        for layer in engine.layers:
            layer.mask.gate.uniform_(0.5, 1.5)
    before = copy.deepcopy(net)
    engine.prune_channels(0.4, scores.channel_l1(engine), "layer")
    gates = [layer.mask.gate.detach().clone() for layer in engine.layers]
    batches = [spikes(net, n=8, seed=s) for s in range(3)]
    report = reconstruct(engine, net, before, batches, damping=1e-9)
    consumer = engine.layers[1]
    assert report[consumer.info.name]["error_after"] < report[consumer.info.name]["error_before"]
    output = engine.outside_consumers()  # the output layer: not pruned, but it lost input channels
    assert output == [len(net.blocks) - 1]
    out_name = f"blocks.{output[0]}"
    assert report[out_name]["error_after"] < report[out_name]["error_before"]
    assert all(torch.equal(layer.mask.gate.detach(), g) for layer, g in zip(engine.layers, gates, strict=True))
    synapse = consumer.block.synapse
    loss = 0.0
    for x in batches:
        xin, _ = synapse_io(net, consumer.info.index, x)
        _, target = synapse_io(before, consumer.info.index, x)
        loss = loss + ((synapse(xin) - target) ** 2).sum()
    grad = torch.autograd.grad(loss, consumer.weight)[0]
    live = engine.live_weight_mask(consumer) != 0
    assert float(grad[live].abs().max()) < 1e-4 * float(consumer.weight.detach()[live].abs().mean() * loss.detach())


def test_refitted_weights_stay_inside_the_8_bit_range_of_a_quantized_network():
    """A quantized network whose output layer must make up for most of its input channels: the refit would ask for
    weights past the 8-bit range; they are stored as the values the synapse computes with, so the checkpoint loads."""
    net = conv_net(quantize=True)
    output = net.blocks[-1].synapse
    with torch.no_grad():
        output.weight.copy_(output._pre_hook_fx(torch.full_like(output.weight, 3.5)))
    engine = PruningEngine(net, structured=True, gates=False)
    before = copy.deepcopy(net)
    engine.prune_channels(0.8, scores.channel_l1(engine), "layer")
    reconstruct(engine, net, before, [spikes(net, n=8, rate=0.6, seed=s) for s in range(3)], damping=1e-9)
    used = output._pre_hook_fx(output.weight.detach())
    assert float(used.abs().max()) >= 3.9  # the fit reached the end of the range
    assert clipped_weight(net) is None
