"""SCA (spiking channel activity pruning with gate-gradient regrowth) on a small SLAYER CNN and real N-MNIST events."""

from __future__ import annotations

import pytest
import torch
from lava.lib.dl.slayer.neuron.norm import MeanOnlyBatchNorm

from snndeploy.data.datasets import make_splits
from snndeploy.errors import UserError
from snndeploy.models.build import build_model
from snndeploy.models.spec import spec_from_dict
from snndeploy.prune import sca
from snndeploy.prune.config import config_from_dict
from snndeploy.prune.engine import PruningEngine
from snndeploy.prune.graph import reset_state
from snndeploy.prune.registry import find_method
from snndeploy.prune.shrink import shrink
from snndeploy.train.loop import Callback, TrainConfig, Trainer

T = 8


@pytest.fixture(scope="module")
def nmnist(data_dir):
    torch.manual_seed(0)
    return make_splits("nmnist-small", time_steps=T, subset=48, test_subset=16, seed=0, data_dir=data_dir)


def cnn(seed: int = 0, bias: bool = True):
    torch.manual_seed(seed)
    spec = spec_from_dict({
        "name": "sca_cnn", "input_shape": [2, 34, 34], "time_steps": T, "quantize": True,
        "neuron": {"threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03},
        "blocks": [{"kind": "conv", "out": 8, "kernel": 5, "stride": 2, "padding": 2, "bias": bias, "weight_scale": 4},
                   {"kind": "conv", "out": 8, "kernel": 3, "stride": 2, "padding": 1, "weight_scale": 4},
                   {"kind": "flatten"},
                   {"kind": "dense", "out": 16, "bias": bias, "weight_scale": 4},
                   {"kind": "dense", "out": 10, "weight_scale": 4}]})
    return build_model(spec)


class Hold(Callback):
    """Keeps pruned gates (and norm biases) at zero after every optimizer step, as the pruning runner does."""

    def __init__(self, engine: PruningEngine):
        self.engine = engine

    def after_step(self, trainer, step):
        self.engine.after_step()


def train(net, engine, dataset, epochs: int = 1, lr: float = 1e-3):
    config = TrainConfig(epochs=epochs, batch_size=16, lr=lr, threads=1, device="cpu")
    trainer = Trainer(net, config, callbacks=[Hold(engine)], log=None, progress=False)
    engine.bind_optimizer(trainer.optimizer)
    for _ in range(epochs):
        trainer.train_epoch(dataset)
        trainer.epoch += 1
    engine.bind_optimizer(None)
    return trainer


def batch(dataset, n: int = 16) -> torch.Tensor:
    return torch.stack([dataset[i][0] for i in range(n)])


def test_activity_scores_are_mean_membrane_potential_of_real_passes(nmnist):
    net = cnn()
    engine = PruningEngine(net, structured=True)
    assert [layer.info.index for layer in engine.layers] == [0, 1, 3]  # the readout (blocks.4) is never pruned
    x = batch(nmnist.train)
    labels = torch.tensor([nmnist.train[i][1] for i in range(16)])
    observer = sca.observe(engine, 0)
    out = net(x)
    torch.nn.functional.cross_entropy(out.mean(-1), labels).backward()
    with torch.no_grad():  # evaluation passes do not count
        net.eval()
        net(x)
        net.train()
    sca.stop_observing(engine)
    stats = sca.latest_stats(engine, 0)
    assert observer.act_n[0] == 16 * T * 17 * 17 and observer.grad_n[0] == 1
    # independent recomputation: block 0's voltage from lava-dl's own CUBA dynamics on the synapse output
    block = net.blocks[0]
    with torch.no_grad():
        _, voltage = type(block.neuron).dynamics(block.neuron, block.synapse(x))
    expected = voltage.abs().mean(dim=(0, 2, 3, 4)).to(torch.float64)
    torch.testing.assert_close(stats.activity[0], expected, rtol=1e-5, atol=1e-7)
    assert float(expected.std()) > 0  # channels differ in activity
    for layer in engine.layers:
        torch.testing.assert_close(stats.gate_grad[layer.info.index],
                                   layer.mask.gate.grad.abs().to(torch.float64))
    # the depolarisation-only option: mean max(U, 0)
    sca.observe(engine, 1, activity="positive")
    torch.nn.functional.cross_entropy(net(x).mean(-1), labels).backward()
    sca.stop_observing(engine)
    positive = voltage.clamp(min=0).mean(dim=(0, 2, 3, 4)).to(torch.float64)
    torch.testing.assert_close(sca.latest_stats(engine, 1).activity[0], positive, rtol=1e-5, atol=1e-7)
    assert not hasattr(net.blocks[0].neuron, "__dict__") or "dynamics" not in vars(net.blocks[0].neuron)


def test_update_prunes_least_active_and_regrows_by_gate_gradient(nmnist):
    net = cnn()
    engine = PruningEngine(net, structured=True)
    sca.observe(engine, 0)
    train(net, engine, nmnist.train)
    sca.stop_observing(engine)
    stats = sca.latest_stats(engine, 0)
    info = sca.update(engine, stats, target=0.5, regrow=0.0)
    for layer in engine.layers:
        i, mask = layer.info.index, layer.mask.channel_mask
        assert int((mask == 0).sum()) == round(0.5 * mask.numel())
        assert float(stats.activity[i][mask == 0].max()) <= float(stats.activity[i][mask == 1].min())
    assert info["regrown"] == 0
    # second round: prune beyond the target by activity, then regrow the pruned channels with the largest |dL/dg|
    sca.observe(engine, 1)
    train(net, engine, nmnist.train)
    sca.stop_observing(engine)
    stats = sca.latest_stats(engine, 1)
    before = {layer.info.index: layer.mask.channel_mask.clone() for layer in engine.layers}
    pruned_before = {i: set(torch.nonzero(m == 0).view(-1).tolist()) for i, m in before.items()}
    for layer in engine.layers:  # pruned channels still have a gate gradient
        assert float(stats.gate_grad[layer.info.index][before[layer.info.index] == 0].sum()) > 0
    info = sca.update(engine, stats, target=0.5, regrow=0.5)
    assert info["regrown"] > 0
    regrow_record = [r for r in engine.records if r["kind"] == "regrow_channels"][-1]
    came_back = 0
    for layer in engine.layers:
        i, mask = layer.info.index, layer.mask.channel_mask
        assert int((mask == 0).sum()) == round(0.5 * mask.numel())
        regrown = regrow_record["channels"].get(layer.info.name, [])
        still = torch.nonzero(mask == 0).view(-1)
        if regrown:  # every regrown channel outranks every channel left pruned
            assert float(stats.gate_grad[i][regrown].min()) >= float(stats.gate_grad[i][still].max())
            assert torch.all(layer.mask.gate.detach()[regrown] == 1.0)
        came_back += len(pruned_before[i] & set(regrown))
    assert came_back > 0, "no channel pruned in the first update came back through its gate gradient"
    # a regrown channel carries signal again: its output spikes are back
    net.eval()
    with torch.no_grad():
        _, outs = net(batch(nmnist.test), return_all=True)
    revived = [(layer.info.index, c) for layer in engine.layers
               for c in pruned_before[layer.info.index] if layer.mask.channel_mask[c] == 1]
    assert revived and any(float(outs[i][:, c].sum()) > 0 for i, c in revived)


def test_shrunk_model_equals_gated_model(nmnist):
    net = cnn(seed=1)
    engine = PruningEngine(net, structured=True)
    sca.observe(engine, 0)
    train(net, engine, nmnist.train)
    sca.stop_observing(engine)
    sca.update(engine, sca.latest_stats(engine, 0), target=0.4, regrow=0.0)
    train(net, engine, nmnist.train)
    x = batch(nmnist.test)
    net.eval()
    with torch.no_grad():
        gated, gated_all = net(x, return_all=True)
    reset_state(net)
    keep = {layer.info.index: torch.nonzero(layer.mask.channel_mask).view(-1) for layer in engine.layers}
    engine.finalize()
    shrink(net, engine.graph, keep)
    assert [b.out for b in net.spec.blocks if b.kind in ("conv", "dense")] == [5, 5, 10, 10]
    with torch.no_grad():
        small, small_all = net(x, return_all=True)
    assert torch.equal(gated, small)
    assert gated.sum() > 0
    for i, kept in keep.items():
        assert torch.equal(gated_all[i][:, kept], small_all[i])
        dropped = torch.ones(gated_all[i].shape[1], dtype=torch.bool)
        dropped[kept] = False
        assert float(gated_all[i][:, dropped].abs().sum()) == 0.0


def test_pruned_channels_do_not_leak_spikes_through_a_bias_or_norm(nmnist):
    net = cnn(seed=2)
    norm_block = net.blocks[1]
    norm_block.neuron.norm = MeanOnlyBatchNorm(num_features=8)  # lava-dl's own norm: a running mean acts as a bias
    with torch.no_grad():
        net.blocks[0].neuron.norm.value.fill_(2.0)  # bias alone crosses the threshold (1.25) every few steps
        net.blocks[3].neuron.norm.value.fill_(2.0)
    engine = PruningEngine(net, structured=True)
    x = batch(nmnist.train)
    with torch.no_grad():  # dense: every channel of blocks 0 and 3 spikes (from the bias at least)
        _, outs = net(x, return_all=True)
    assert all(float(outs[i].sum(dim=(0, -1)).reshape(outs[i].shape[1], -1).sum(1).min()) > 0 for i in (0, 3))
    sca.observe(engine, 0)
    train(net, engine, nmnist.train)
    sca.stop_observing(engine)
    assert float(norm_block.neuron.norm.running_mean.abs().min()) > 0
    sca.update(engine, sca.latest_stats(engine, 0), target=0.5, regrow=0.0)
    train(net, engine, nmnist.train, lr=0.05)  # large steps: the optimizer would move pruned biases
    for mode in ("train", "eval"):
        net.train(mode == "train")
        with torch.no_grad():
            _, outs = net(x, return_all=True)
        for layer in engine.layers:
            pruned = layer.mask.channel_mask == 0
            assert float(outs[layer.info.index][:, pruned].abs().sum()) == 0.0, (mode, layer.info.name)
    assert torch.all(net.blocks[0].neuron.norm.value.detach()[engine.layers[0].mask.channel_mask == 0] == 0)
    assert torch.all(norm_block.neuron.norm.running_mean[engine.layers[1].mask.channel_mask == 0] == 0)


def test_schedule_ramps_to_the_target_and_decays_regrowth():
    config = sca.SCAConfig(epochs=20, warmup_epochs=5, ramp_end=0.75)
    phases = sca.plan(config, 0.8)
    assert sum(p.end - p.start for p in phases) == 20
    updates = [p for p in phases if p.update]
    assert [p.start for p in updates] == list(range(6, 16))
    targets = [p.target for p in updates]
    assert all(b > a for a, b in zip(targets, targets[1:], strict=False)) and targets[-1] == pytest.approx(0.8)
    assert all(p.target == 0.0 for p in phases if p.start < 6)
    assert all(p.target == pytest.approx(0.8) for p in phases if p.start >= 15)
    regrow = [p.regrow for p in updates]
    assert regrow[0] <= 0.3 and all(b < a for a, b in zip(regrow, regrow[1:], strict=False))
    assert regrow[-1] == pytest.approx(0.0, abs=1e-12)
    rounds = find_method("sca").rounds(config, 0.8)
    assert [r.epochs for r in rounds] == [p.end - p.start for p in phases]
    slow = sca.plan(sca.SCAConfig(epochs=12, warmup_epochs=2, epochs_per_step=3, ramp_end=1.0), 0.5)
    assert [(p.start, p.end, p.update) for p in slow] == [(0, 1, False), (1, 2, False), (2, 5, False),
                                                          (5, 8, True), (8, 11, True), (11, 12, True)]


def test_config_errors_are_one_line_user_errors():
    with pytest.raises(UserError, match="regrow_gate"):
        config_from_dict(sca.SCAConfig, {"regrow_gate": "zero"})
    with pytest.raises(UserError, match="no structure update fits"):
        config_from_dict(sca.SCAConfig, {"epochs": 4, "warmup_epochs": 5})
    with pytest.raises(UserError, match="unknown method config key"):
        config_from_dict(sca.SCAConfig, {"momentum": 0.9})
    assert config_from_dict(sca.SCAConfig, {"scope": "global", "epochs": 10}).scope == "global"


def test_global_scope_ranks_on_per_layer_zscores(nmnist):
    net = cnn(seed=3)
    engine = PruningEngine(net, structured=True)
    x = batch(nmnist.train)
    labels = torch.tensor([nmnist.train[i][1] for i in range(16)])
    sca.observe(engine, 0)
    torch.nn.functional.cross_entropy(net(x).mean(-1), labels).backward()
    sca.stop_observing(engine)
    stats = sca.latest_stats(engine, 0)
    sca.update(engine, stats, target=0.5, regrow=0.0, scope="global", min_channels=2)
    total = sum(layer.mask.channel_mask.numel() for layer in engine.layers)
    assert sum(int((layer.mask.channel_mask == 0).sum()) for layer in engine.layers) == round(0.5 * total)
    z = {layer.info.index: sca.zscore(stats.activity[layer.info.index],
                                      torch.ones(layer.mask.channel_mask.numel(), dtype=torch.bool))
         for layer in engine.layers}
    pruned = torch.cat([z[lay.info.index][lay.mask.channel_mask == 0] for lay in engine.layers])
    kept = torch.cat([z[lay.info.index][lay.mask.channel_mask == 1] for lay in engine.layers])
    protected = {(lay.info.index, int(c)) for lay in engine.layers
                 for c in torch.topk(stats.activity[lay.info.index], 2).indices}
    free = torch.cat([z[lay.info.index][torch.tensor([lay.mask.channel_mask[c] == 1 and (lay.info.index, c)
                                                      not in protected for c in range(lay.mask.channel_mask.numel())])]
                      for lay in engine.layers])
    assert float(pruned.max()) <= float(free.min()) and kept.numel() == total - pruned.numel()
    assert all(int(layer.mask.channel_mask.sum()) >= 2 for layer in engine.layers)
    # regrowth in global scope brings the total back to the target by z-scored gate gradient
    sca.update(engine, stats, target=0.25, regrow=0.0, scope="global")
    assert sum(int((layer.mask.channel_mask == 0).sum()) for layer in engine.layers) == round(0.25 * total)


def test_min_channels_holds_over_successive_global_prunes():
    """Engine fix: the min_channels guard protects live channels, also once some of a layer are pruned."""
    net = cnn(seed=4)
    engine = PruningEngine(net, structured=True)
    low = {layer.info.index: torch.arange(layer.mask.channel_mask.numel(), dtype=torch.float64)
           + (0.0 if layer.info.index == 3 else 1000.0) for layer in engine.layers}  # blocks.3 ranks lowest
    engine.prune_channels(0.3, low, "global", min_channels=2)
    assert int(engine.by_index(3).mask.channel_mask.sum()) < 16
    engine.prune_channels(0.9, low, "global", min_channels=2)
    assert all(int(layer.mask.channel_mask.sum()) >= 2 for layer in engine.layers)
    assert torch.equal(engine.by_index(3).mask.channel_mask.nonzero().view(-1), torch.tensor([14, 15]))
