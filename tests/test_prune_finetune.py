"""Fine-tuning that keeps what a trained network knows: distillation objective, optimizer across rounds, IMP rewinding,
structured scores across layers, Deep R's connection count (real lava-dl MNIST network and real data)."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
import torch

from snndeploy.errors import UserError
from snndeploy.loader import load_model
from snndeploy.models.build import clipped_weight
from snndeploy.models.checkpoint import make_checkpoint, save_checkpoint
from snndeploy.prune import config as cfglib
from snndeploy.prune import scores
from snndeploy.prune.criticality import record_voltages
from snndeploy.prune.distill import (
    Objective,
    count_cross_entropy,
    distillation,
    logits,
    make_objective,
    recorded_training,
)
from snndeploy.prune.drive import limit_drive, median_drives
from snndeploy.prune.engine import PruningEngine
from snndeploy.prune.finetune import DatasetTrainer
from snndeploy.prune.gradr import RewiringAdam, RewiringHyper
from snndeploy.prune.methods import prune_channels
from snndeploy.prune.registry import find_method
from snndeploy.prune.runner import Runner, RunSpec


@pytest.fixture(scope="module")
def mlp_path(fixtures_dir):
    return fixtures_dir / "mnist-mlp-128" / "network.net"


def _runner(tmp_path, net, method: str, target: float, subset: int, test_subset: int, **cfg) -> Runner:
    """A runner as ``run_prune`` makes it for an imported network (lava-dl's netx file: ``lr_rule`` auto)."""
    m = find_method(method)
    config = cfglib.with_lr_rule(dataclasses.replace(m.config_class(), **cfg), imported=True)
    trainer = DatasetTrainer("mnist", net, batch_size=64, subset=subset, test_subset=test_subset, progress=False,
                             objective=make_objective(config, net))
    return Runner(RunSpec(m, config, target, False, "test"), net, trainer, tmp_path / method)


def test_distillation_of_the_dense_network_itself_is_the_label_loss_alone(mlp_path):
    net = load_model(mlp_path)
    assert make_objective(cfglib.MagnitudeConfig(distill_weight=0.7), net).weight == 1.0  # imported: no label term
    objective = make_objective(cfglib.MagnitudeConfig(distill_weight=0.7, label_loss="cross_entropy"), net)
    trainer = DatasetTrainer("mnist", net, batch_size=16, subset=64, test_subset=16, progress=False)
    x, y = next(trainer.train_batches())
    with torch.no_grad():
        output = net(x)
    # the student is still the teacher: the KL term is 0 and only (1 - w) of the label loss remains
    assert float(objective(output, y, x)) == pytest.approx(0.3 * float(count_cross_entropy(output, y)), rel=1e-5)
    assert not any(p.requires_grad for p in objective.teacher.parameters())
    label_only = make_objective(cfglib.MagnitudeConfig(objective="label"), net)
    assert label_only.teacher is None and float(label_only(output, y, x)) == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits(output), y)), rel=1e-6)
    # a changed student is pulled back: the distillation term is positive
    changed = Objective(count_cross_entropy, objective.teacher, weight=1.0)
    assert float(changed(output * 0.5, y, x)) > 0


def test_distillation_gradient_is_the_kl_gradient_and_exactly_zero_at_the_teacher():
    torch.manual_seed(0)
    student, teacher = torch.randn(8, 10) * 5, torch.randn(8, 10) * 5
    mine = student.clone().requires_grad_(True)
    reference = student.clone().requires_grad_(True)
    value = distillation(mine, teacher, 2.0)
    kl = torch.nn.functional.kl_div(torch.log_softmax(reference / 2, 1), torch.log_softmax(teacher / 2, 1),
                                    log_target=True, reduction="batchmean") * 4
    (value + 0).backward()
    kl.backward()
    assert value.item() == pytest.approx(kl.item(), rel=1e-6)
    torch.testing.assert_close(mine.grad, reference.grad)
    same = teacher.clone().requires_grad_(True)
    distillation(same, teacher, 2.0).backward()
    assert torch.count_nonzero(same.grad) == 0  # F.kl_div leaves ~1e-8 here, which Adam turns into lr-sized steps


def test_pure_distillation_leaves_the_dense_network_unchanged_at_any_rate(tmp_path, mlp_path, one_thread):
    net = load_model(mlp_path)
    before = [block.synapse.weight.detach().clone() for block in net.blocks]
    runner = _runner(tmp_path, net, "magnitude", 0.0, subset=300, test_subset=50, epochs_per_step=1,
                     distill_weight=1.0, lr=1e-2, eval_each_step=False)
    report = runner.run().report
    assert report["cost"]["optimizer_steps"] > 0
    assert len(runner.engine.layers) == len(before)
    for layer, weight in zip(runner.engine.layers, before, strict=True):
        assert torch.equal(layer.weight.detach(), weight), layer.info.name


def test_fine_tuning_at_sparsity_zero_keeps_the_imported_networks_accuracy(tmp_path, mlp_path, one_thread):
    """lava-dl's trained netx MNIST network: one epoch at sparsity 0 (it fell from 95.6 % to 64.6 % before)."""
    net = load_model(mlp_path)
    runner = _runner(tmp_path, net, "magnitude", 0.0, subset=3000, test_subset=1000, epochs_per_step=1)
    report = runner.run().report
    assert report["cost"]["optimizer_steps"] > 0
    assert abs(report["accuracy_after"] - report["accuracy_before"]) < 0.005, report["history"]


def test_lr_rule_auto_is_relative_for_an_imported_network_and_absolute_for_a_recorded_training(tmp_path, mlp_path):
    net = load_model(mlp_path)
    assert recorded_training(mlp_path) is None  # a netx file does not say how it was trained
    own = save_checkpoint(tmp_path / "own.pt", make_checkpoint(net, extra={"config": {"loss": "spike_rate"}}))
    assert recorded_training(own).loss == "spike_rate"
    auto = cfglib.CriticalityConfig()
    assert auto.lr_rule == "auto" and cfglib.IMPConfig().lr_rule == "absolute"
    assert cfglib.with_lr_rule(auto, imported=True).lr_rule == "relative"
    assert cfglib.with_lr_rule(auto, imported=False).lr_rule == "absolute"
    absolute = dataclasses.replace(auto, lr_rule="absolute")
    assert cfglib.with_lr_rule(absolute, imported=True) is absolute  # an explicit rule stays
    runner = _runner(tmp_path, net, "magnitude", 0.5, subset=64, test_subset=16, lr_rule="absolute")
    assert [g["lr"] for g in runner._new_optimizer().param_groups] == [runner.spec.config.lr]


@pytest.mark.parametrize("method", ["gradr", "deepr", "soft_deepr"])
def test_the_rewiring_methods_train_at_one_absolute_rate_and_refuse_the_relative_rule(method):
    config_class = find_method(method).config_class
    assert cfglib.with_lr_rule(config_class(), imported=True).lr_rule == "absolute"  # what the report shows ran
    with pytest.raises(UserError, match="lr_rule must be absolute"):
        config_class(lr_rule="relative")


def test_the_optimizer_carries_over_rounds_and_resume(tmp_path, mlp_path):
    net = load_model(mlp_path)
    runner = _runner(tmp_path, net, "gmp", 0.5, subset=200, test_subset=50, steps=2, epochs_per_step=1,
                     eval_each_step=False)
    runner.run()
    steps = runner.cost.optimizer_steps
    adam = runner.optimizer
    assert all(int(adam.state[p]["step"]) == steps for p in adam.state)  # one Adam for both rounds
    resumed = _runner(tmp_path, load_model(mlp_path), "gmp", 0.5, subset=200, test_subset=50, steps=2,
                      epochs_per_step=1, eval_each_step=False)
    resumed.load_state()
    pairs = [(p, q) for p, q in zip(adam.param_groups[0]["params"], resumed.optimizer.param_groups[0]["params"],
                                    strict=True) if p in adam.state]
    assert pairs
    for p, q in pairs:
        torch.testing.assert_close(adam.state[p]["exp_avg"], resumed.optimizer.state[q]["exp_avg"])


def test_rounds_of_a_fraction_of_an_epoch_see_the_next_samples_of_one_shuffled_sequence(mlp_path):
    trainer = DatasetTrainer("mnist", load_model(mlp_path), batch_size=64, subset=200, test_subset=50,
                             progress=False)
    quarters = [trainer.window(k / 4, 0.25) for k in range(4)]
    assert [len(q) for q in quarters] == [50] * 4
    assert sorted(itertools.chain(*quarters)) == list(range(200))  # four quarters: every sample once
    across = trainer.window(0.75, 0.5)  # the last quarter of one pass and the first of the next
    assert across[:50] == quarters[3] and len(across) == 100
    assert across[50:] != quarters[0] and len(set(across[50:])) == 50  # the next pass is shuffled anew


def test_gradual_methods_take_fractional_epochs_per_step_and_count_them(tmp_path, mlp_path):
    config = cfglib.config_from_dict(cfglib.CriticalityConfig, {"steps": 4, "epochs_per_step": 0.25})
    assert config.epochs_per_step == 0.25
    assert cfglib.config_from_dict(cfglib.GMPConfig, {"epochs_per_step": 2}).epochs_per_step == 2
    with pytest.raises(UserError, match="epochs_per_step.*an integer"):  # IMP's rounds are whole training runs
        cfglib.config_from_dict(cfglib.IMPConfig, {"epochs_per_step": 0.5})
    runner = _runner(tmp_path, load_model(mlp_path), "criticality", 0.8, subset=200, test_subset=50, steps=4,
                     epochs_per_step=0.25, calib_batches=1, eval_each_step=False)
    runner.run()
    assert runner.cost.epochs == 1.0
    assert runner.cost.optimizer_steps == 4  # 50 samples a round: one batch of 64
    assert [h["epochs"] for h in runner.history] == [0.25] * 4
    assert runner.engine.sparsity() == pytest.approx(0.8, abs=0.01)


def test_imp_trains_from_init_and_rewinds_to_an_early_iterate(tmp_path, mlp_path):
    net = load_model(mlp_path)
    imp = find_method("imp")
    plan = imp.rounds(cfglib.IMPConfig(rate=0.6), 0.8)
    assert not plan[0].rewind and plan[0].target == 0 and all(r.rewind and r.fresh_optimizer for r in plan[1:])
    runner = _runner(tmp_path, net, "imp", 0.8, subset=200, test_subset=50, rate=0.6, epochs_per_step=1,
                     dense_epochs=2, rewind_epoch=1, eval_each_step=False)
    loaded = {k: v.clone() for k, v in runner.start_state.items()}
    report = runner.run().report
    assert report["history"][0]["dense_epochs"] == 2 and report["history"][0]["rewind_epoch"] == 1
    assert report["cost"]["epochs"] == 2 + (len(plan) - 1)  # the dense training run is counted
    assert report["sparsity"]["weights"] == pytest.approx(0.8, abs=1e-3)
    key = "blocks.0.synapse.parametrizations.weight.original"
    assert not torch.equal(runner.start_state[key], loaded[key])  # the rewind point is the new run's iterate


def test_structured_global_scores_compare_layers_and_keep_a_minimum_width(mlp_path):
    net = load_model(mlp_path)
    engine = PruningEngine(net, structured=True)
    raw = scores.channel_scale(engine)
    normed = scores.normalise_channels(engine, raw)
    for layer in engine.layers:
        assert float(normed[layer.info.index].mean()) == pytest.approx(1.0, rel=1e-6)
    config = cfglib.MagnitudeConfig(scope="global", min_width=0.25)
    prune_channels(engine, config, 0.7, raw)
    for layer in engine.layers:
        n = layer.mask.channel_mask.numel()
        assert int(layer.mask.channel_mask.sum()) >= math.ceil(0.25 * n)
    assert engine.channel_sparsity() == pytest.approx(0.7, abs=1 / 192)


def test_deep_r_holds_the_target_connection_count_exactly(mlp_path):
    net = load_model(mlp_path)
    engine = PruningEngine(net)
    engine.prune_weights(0.95, scores.weight_magnitude(engine), "layer")  # every layer below its target count
    opt = RewiringAdam(engine, net.parameters(), RewiringHyper(rule="deepr", target=0.9, alpha=0.05, lr=0.05))
    trainer = DatasetTrainer("mnist", net, batch_size=32, subset=64, test_subset=16, progress=False)
    x, y = next(trainer.train_batches())
    for _ in range(2):
        opt.zero_grad()
        count_cross_entropy(net(x), y).backward()
        opt.step()
        for layer in engine.layers:  # after every step: exactly (1 - p) of each layer's connections active
            w = layer.weight.detach()
            assert int((w != 0).sum()) == round(0.1 * w.numel()), layer.info.name


@pytest.mark.parametrize("method", ["deepr", "soft_deepr"])
def test_deep_r_from_an_imported_network_reaches_its_target_and_keeps_finite_weights(tmp_path, mlp_path, method,
                                                                                     one_thread):
    """Deep R's noise ``temperature`` (0) was also the distillation temperature: every loss was NaN; and from a
    dense start Deep R never left full connectivity (it only wakes connections)."""
    net = load_model(mlp_path)
    runner = _runner(tmp_path, net, method, 0.9, subset=640, test_subset=300, epochs=1)
    report = runner.run().report
    assert all(bool(torch.isfinite(layer.weight).all()) for layer in runner.engine.layers)
    if method == "deepr":  # cut to its connection count at the start, and scaled down before it trains
        assert report["sparsity"]["weights"] == pytest.approx(0.9, abs=1e-3)
        assert report["history"][0]["drive"]["factor"] < 1.0
    # far above chance (the NaN loss left it at 8 %); ten steps after a one-shot cut to 90 % recover only part
    assert report["accuracy_after"] > 0.3, report["history"]


def test_rescale_scales_the_pruned_layers_once_after_the_first_step(tmp_path, mlp_path):
    net = load_model(mlp_path)
    before = [block.synapse.weight.detach().clone() for block in net.blocks]
    runner = _runner(tmp_path, net, "gmp", 0.5, subset=64, test_subset=16, steps=2, epochs_per_step=0,
                     rescale=0.25, drive_limit=0.0, eval_each_step=False, reassign_ineffective=False,
                     reconstruct=False, cut_substeps=1)  # weights moved or refitted would not be the old ones x 0.25
    history = runner.run().report["history"]
    assert [h.get("rescaled") for h in history] == [0.25, None]
    for layer, weight in zip(runner.engine.layers, before, strict=True):
        live = layer.mask.mask.bool()
        torch.testing.assert_close(layer.weight.detach()[live], weight[live] * 0.25)


class _RateRecorder(DatasetTrainer):
    """A trainer that records, for every fine-tuning call, whether it anneals and the rates of every step."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[bool, list[list[float]]]] = []

    def train_epochs(self, net, optimizer, epochs, after_step, seed_offset=0, anneal=False, start=0.0):
        rates: list[list[float]] = []

        def spy() -> None:
            rates.append([group["lr"] for group in optimizer.param_groups])
            after_step()

        steps = super().train_epochs(net, optimizer, epochs, spy, seed_offset=seed_offset, anneal=anneal, start=start)
        self.calls.append((anneal, rates))
        self.optimizer = optimizer
        return steps


@pytest.mark.parametrize("method, cfg", [("gmp", {"steps": 2, "epochs_per_step": 1}),
                                         ("gradr", {"epochs": 2, "epochs_per_round": 1})])
def test_lr_decay_final_anneals_the_last_rounds_rates_to_zero_and_restores_them(tmp_path, mlp_path, method, cfg):
    net = load_model(mlp_path)
    m = find_method(method)
    config = cfglib.with_lr_rule(dataclasses.replace(m.config_class(), lr_decay="final", eval_each_step=False,
                                                     **cfg), imported=True)
    trainer = _RateRecorder("mnist", net, batch_size=40, subset=200, test_subset=40, progress=False,
                            objective=make_objective(config, net))
    runner = Runner(RunSpec(m, config, 0.6, False, "test"), net, trainer, tmp_path / method)
    runner.run()
    (first_anneals, first), (last_anneals, last) = trainer.calls
    assert not first_anneals and all(rates == first[0] for rates in first)  # earlier rounds: constant rates
    assert last_anneals and len(last) == trainer.steps_per_epoch() == 5
    base = torch.tensor(last[0])
    factors = torch.tensor(last) / base
    expected = [0.5 * (1 + math.cos(math.pi * k / 5)) for k in range(5)]  # the rate the k-th step trained at
    torch.testing.assert_close(factors, torch.tensor(expected).unsqueeze(1).expand_as(factors), rtol=1e-5, atol=0)
    assert [group["lr"] for group in trainer.optimizer.param_groups] == last[0]  # restored after the round


def test_lr_decay_refuses_an_unknown_schedule():
    with pytest.raises(UserError, match="lr_decay"):
        cfglib.config_from_dict(cfglib.GMPConfig, {"lr_decay": "cosine"})


def test_relative_lr_gives_each_pruned_layer_a_rate_in_proportion_to_its_weights(tmp_path, mlp_path):
    net = load_model(mlp_path)
    runner = _runner(tmp_path, net, "magnitude", 0.5, subset=64, test_subset=16, relative_lr=0.004)
    groups = runner._new_optimizer().param_groups
    assert len(groups) == len(runner.engine.layers) + 1  # the neurons' decays (not trained here) at lr
    for group, layer in zip(groups, runner.engine.layers, strict=False):
        rms = float(layer.weight.detach().pow(2).mean().sqrt())
        assert group["params"] == [layer.weight] and group["lr"] == pytest.approx(0.004 * rms, rel=1e-5)
    assert groups[-1]["lr"] == runner.spec.config.lr


def test_drive_limit_scales_a_network_driven_far_beyond_threshold_and_leaves_others(mlp_path, fixtures_dir):
    """lava-dl's netx MNIST network sits ~100 thresholds from threshold in its first layer; bootstrap MNIST ~2."""
    net = load_model(mlp_path)
    trainer = DatasetTrainer("mnist", net, batch_size=64, subset=256, test_subset=16, progress=False)
    batches = [x for x, _ in itertools.islice(trainer.train_batches(), 2)]
    before = median_drives(net, range(len(net.blocks)), batches)
    assert before[0] > 50 and before[2] < 10
    weights = [block.synapse.weight.detach().clone() for block in net.blocks]
    scaled = limit_drive(PruningEngine(net), net, batches, 10.0)
    largest = max(before.values())
    assert scaled["largest"] == pytest.approx(largest) and scaled["factor"] == pytest.approx(10.0 / largest)
    for block, weight in zip(net.blocks, weights, strict=True):  # one factor for every pruned layer
        torch.testing.assert_close(block.synapse.weight.detach(), weight * scaled["factor"])
    assert median_drives(net, [0], batches)[0] < before[0] / 5
    bootstrap = load_model(fixtures_dir / "mnist-mlp-512" / "network.net")  # fed as it records (not like mlp-128)
    own = DatasetTrainer("mnist", bootstrap, batch_size=64, subset=256, test_subset=16, progress=False)
    own_batches = [x for x, _ in itertools.islice(own.train_batches(), 2)]
    assert limit_drive(PruningEngine(bootstrap), bootstrap, own_batches, 10.0)["factor"] == 1.0


def test_drive_limit_acts_once_after_weights_are_removed_and_never_at_sparsity_zero(tmp_path, mlp_path):
    net = load_model(mlp_path)
    dense = _runner(tmp_path / "dense", net, "magnitude", 0.0, subset=64, test_subset=16, epochs_per_step=0,
                    drive_limit=10.0, eval_each_step=False)
    weights = [block.synapse.weight.detach().clone() for block in net.blocks]
    assert all("drive" not in h for h in dense.run().report["history"])
    assert all(torch.equal(b.synapse.weight.detach(), w) for b, w in zip(net.blocks, weights, strict=True))
    pruned = _runner(tmp_path / "gmp", load_model(mlp_path), "gmp", 0.5, subset=64, test_subset=16, steps=2,
                     epochs_per_step=0, drive_limit=10.0, eval_each_step=False)
    history = pruned.run().report["history"]
    assert 0 < history[0]["drive"]["factor"] < 1 and "drive" not in history[1]


def test_fine_tuning_keeps_stored_weights_inside_what_the_quantized_model_computes_with(mlp_path):
    """A rate large for a layer's weights pushed one past lava-dl's 8-bit range; the checkpoint was then refused."""
    net = load_model(mlp_path)
    engine = PruningEngine(net)
    weight, hook = engine.layers[1].weight, net.blocks[1].synapse._pre_hook_fx
    with torch.no_grad():
        weight.view(-1)[:2] = torch.tensor([10.0, -10.0])
    used = hook(weight.detach()).view(-1)[:2].clone()
    assert used[0] < 10 and used[1] > -10  # the hook clips them
    untouched = weight.detach().view(-1)[2:].clone()
    engine.after_step()
    assert torch.equal(weight.detach().view(-1)[:2], used)
    assert torch.equal(weight.detach().view(-1)[2:], untouched)
    engine.finalize()
    assert clipped_weight(net) is None


def test_voltage_recordings_nest(mlp_path):
    """SCA records voltages for a whole round while drive_limit (or criticality) records inside it."""
    net = load_model(mlp_path)
    x = torch.zeros(2, 784, net.spec.time_steps)
    x[:, ::3, ::2] = 1.0
    outer, inner = [], []
    with record_voltages(net, [0, 1], lambda i, v: outer.append(i)):
        with record_voltages(net, [1], lambda i, v: inner.append(i)):
            net(x)
        net(x)
    net(x)
    assert outer == [0, 1, 0, 1] and inner == [1]
    assert "dynamics" not in vars(net.blocks[0].neuron) and "dynamics" not in vars(net.blocks[1].neuron)
