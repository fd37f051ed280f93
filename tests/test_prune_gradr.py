"""Grad R, Deep R and soft Deep R on the mask engine: gradient definition, prior, signs, real-task connectivity,
quantisation, weight norm, and exact resume."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch

from snndeploy.data.datasets import make_splits
from snndeploy.models.build import build_model
from snndeploy.models.spec import spec_from_dict
from snndeploy.prune.engine import PruningEngine
from snndeploy.prune.gradr import RewiringAdam, RewiringHyper, connectivity, prior_center

pytestmark = pytest.mark.usefixtures("one_thread")

NEURON = {"threshold": 0.5, "current_decay": 0.25, "voltage_decay": 0.03}


def digits_net(seed: int = 0, quantize: bool = False, weight_norm: bool = False):
    torch.manual_seed(seed)
    spec = spec_from_dict({"name": "digits_mlp", "input_shape": [64], "time_steps": 8, "quantize": quantize,
                           "neuron": NEURON,
                           "blocks": [{"kind": "dense", "out": 32, "weight_scale": 2, "weight_norm": weight_norm},
                                      {"kind": "dense", "out": 10, "weight_scale": 2}]})
    return build_model(spec)


@pytest.fixture(scope="module")
def digits():
    """UCI digits (real data), 8x8 pixels as constant input currents over 8 time steps."""
    return make_splits("uci-digits", time_steps=8, input_shape=(64,), seed=0, encoding="current")


def batches(dataset, size: int = 32, seed: int = 0):
    loader = torch.utils.data.DataLoader(dataset, batch_size=size, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    return list(loader)


def loss_fn(out: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    from lava.lib.dl import slayer

    return slayer.loss.SpikeRate(true_rate=0.5, false_rate=0.05, reduction="sum")(out, label)


def train(net, opt, data) -> None:
    for x, y in data:
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


def accuracy(net, dataset) -> float:
    with torch.no_grad():
        x, y = next(iter(torch.utils.data.DataLoader(dataset, batch_size=len(dataset))))
        return float((net(x).mean(-1).argmax(1) == y).float().mean())


def backward(net, data) -> None:
    x, y = data[0]
    loss_fn(net(x), y).backward()


def adam_delta(grad: torch.Tensor, lr: float, betas=(0.9, 0.999), eps: float = 1e-8) -> torch.Tensor:
    """torch's own Adam, first step on a copy: the update Delta the spec's Adam form applies."""
    p = torch.nn.Parameter(torch.zeros_like(grad))
    p.grad = grad.clone()
    torch.optim.Adam([p], lr=lr, betas=betas, eps=eps).step()
    return -p.detach()


def test_prior_centre_puts_the_target_mass_below_zero():
    for alpha, p in [(1e-3, 0.95), (2.0, 0.5), (10.0, 0.9)]:
        mu = prior_center(alpha, p)
        assert mu <= 0
        below_zero = 0.5 * math.exp(-alpha * (0.0 - mu))  # Laplace(mu, 1/alpha) mass above 0, for mu <= 0
        assert 1.0 - below_zero == pytest.approx(p)
    with pytest.raises(ValueError, match="0.5"):
        prior_center(1.0, 0.4)


def test_pruned_synapses_get_the_redefined_gradient_and_regrow(digits):
    net = digits_net()
    engine = PruningEngine(net)
    lr = 1e-2
    opt = RewiringAdam(engine, net.parameters(), RewiringHyper(alpha=0.0, lr=lr))  # no prior: gradient only
    layer = engine.layers[0]
    sign = opt.state[layer.weight]["sign"]
    data = batches(digits.train)
    pruned = torch.rand(layer.weight.shape, generator=torch.Generator().manual_seed(0)) < 0.3
    with torch.no_grad():  # prune 30 % by hand: theta just below 0, so one step of either sign decides
        theta = sign * layer.weight
        theta[pruned] = -1e-6
        layer.weight.copy_(sign * theta)
        layer.mask.mask.copy_((theta > 0).float())
    theta_before = (sign * layer.weight).detach().clone()
    opt.zero_grad()
    backward(net, data)
    grad = layer.mask.dense_grad.clone()
    assert float(layer.weight.grad[pruned].abs().sum()) == 0  # the true gradient of an absent synapse is 0 ...
    assert float(grad[pruned].abs().sum()) > 0  # ... the dense dL/dw is not
    delta = adam_delta(grad, lr)
    opt.step()
    theta_after = (sign * layer.weight).detach()
    # theta <- theta - s * Delta for every synapse, absent ones included
    torch.testing.assert_close(theta_after, theta_before - sign * delta, rtol=1e-5, atol=1e-7)
    up = pruned & (sign * delta < -1e-5)
    down = pruned & (sign * delta > 1e-5)
    assert up.sum() > 10 and down.sum() > 10
    assert torch.all(layer.mask.mask[up] == 1) and torch.all(layer.mask.mask[down] == 0)  # regrown / still absent
    w = net.blocks[0].synapse.weight.detach()
    torch.testing.assert_close(w, sign * theta_after.clamp(min=0))
    assert torch.all(w[up] != 0) and torch.all(w[down] == 0)


def test_prior_step_and_fixed_signs(digits):
    net = digits_net(seed=1)
    engine = PruningEngine(net)
    alpha, p, lr = 20.0, 0.9, 1e-2
    opt = RewiringAdam(engine, net.parameters(), RewiringHyper(alpha=alpha, target=p, lr=lr))
    mu = prior_center(alpha, p)
    layer = engine.layers[1]
    sign = opt.state[layer.weight]["sign"].clone()
    assert torch.all(sign != 0)
    with torch.no_grad():  # half of the strengths far below the prior's centre, plus some exact zero signs
        theta = sign * layer.weight
        theta[:, ::2] = mu - 0.5
        layer.weight.copy_(sign * theta)
        layer.mask.mask.copy_((theta > 0).float())
        opt.state[layer.weight]["sign"][0, :4] = 0
        layer.weight[0, :4] = 0
        sign[0, :4] = 0
    theta_before = (sign * layer.weight).detach().clone()
    for lay in engine.layers:  # no data gradient: the step is the prior alone
        lay.weight.grad = torch.zeros_like(lay.weight)
        lay.mask.dense_grad.zero_()
    opt.step()
    theta_after = (sign * layer.weight).detach()
    step = lr / (1 - 0.9)  # Adam's bias-corrected step size eta_t at t = 1 (the prior is not divided by sqrt(v))
    expected = theta_before - step * alpha * torch.sign(theta_before - mu) * sign.abs()
    torch.testing.assert_close(theta_after, expected)
    assert torch.all(theta_after[:, ::2][sign[:, ::2] != 0] > theta_before[:, ::2][sign[:, ::2] != 0])  # pulled up
    # many steps with data: effective weights never change sign, zero-sign synapses never grow
    train(net, opt, batches(digits.train)[:15])
    w = net.blocks[1].synapse.weight.detach()
    assert torch.all(w * sign >= 0) and torch.all(w[sign == 0] == 0)


def run(rule: str, alpha: float, digits, epochs: int = 3, target: float = 0.9, lr: float = 1e-2, **kw):
    net = digits_net()
    engine = PruningEngine(net)
    opt = RewiringAdam(engine, net.parameters(), RewiringHyper(rule=rule, alpha=alpha, target=target, lr=lr,
                                                               log_every=5, **kw))
    for epoch in range(epochs):
        train(net, opt, batches(digits.train, seed=epoch))
    return net, engine, opt


def test_connectivity_decreases_under_the_prior_on_real_digits(digits):
    _, _, free = run("gradr", 0.0, digits, epochs=2)
    net, engine, opt = run("gradr", 0.1, digits, epochs=2)
    traj = [c for _, c in opt.trajectory]
    assert traj[0] == 1.0 and traj[-1] < 0.7
    assert traj[-1] < free.trajectory[-1][1] - 0.2  # the prior, not the data, removes the connections
    assert accuracy(net, digits.test) > 0.5  # ten classes: chance is 0.1
    assert engine.weight_sparsity() == pytest.approx(1 - connectivity(engine.layers)["connectivity"])
    stored_negative = sum(int(((opt.state[lay.weight]["sign"] * lay.weight) < 0).sum()) for lay in engine.layers)
    assert stored_negative > 0  # absent synapses keep their (negative) strength in the stored weight


def test_deep_r_keeps_each_layer_at_most_target_sparse_and_soft_deep_r_prunes(digits):
    net, engine, opt = run("deepr", 0.1, digits, epochs=2, target=0.7)
    for lay in engine.layers:
        assert float((lay.mask.mask == 0).float().mean()) <= 0.7 + 0.05
        sign = opt.state[lay.weight]["sign"]
        w = net.blocks[lay.info.index].synapse.weight.detach()
        assert torch.all(w * sign >= 0) and torch.equal((w != 0).float(), lay.mask.mask)
    assert accuracy(net, digits.test) > 0.5
    _, soft_engine, soft = run("soft_deepr", 0.1, digits, epochs=2, target=0.7, temperature=0.01)
    assert soft.trajectory[-1][1] < 0.9
    floor = -(0.5 * 0.01 ** 2 * 0.7) / (0.1 * 0.3)
    assert all(float((soft.state[lay.weight]["sign"] * lay.weight.detach()).min()) >= floor - 1e-7
               for lay in soft_engine.layers)


def test_quantisation_is_counted_after_the_reparametrisation(digits):
    net = digits_net(quantize=True)
    engine = PruningEngine(net)
    opt = RewiringAdam(engine, net.parameters(), RewiringHyper(alpha=0.02, target=0.9, lr=1e-2))
    train(net, opt, batches(digits.train)[:10])
    conn = connectivity(engine.layers)
    assert conn["quantized"] < conn["connectivity"] < 1.0  # small live weights round to 0 on 8 bits
    synapse = net.blocks[0].synapse
    wq = synapse.pre_hook_fx(synapse.weight.detach())
    assert conn["per_layer"][0]["quantized"] == pytest.approx(float((wq != 0).float().mean()))


def test_weight_norm_is_folded_exactly(digits):
    net = digits_net(weight_norm=True)
    x = batches(digits.test)[0][0]
    with torch.no_grad():
        before = net(x)
    engine = PruningEngine(net)
    RewiringAdam(engine, net.parameters(), RewiringHyper())
    with torch.no_grad():
        assert torch.equal(net(x), before)  # the reparametrised network computes the same spikes
    assert not getattr(net.blocks[0].synapse, "weight_norm_enabled", False)


def saved(obj) -> dict:
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("rule,extra", [("gradr", {}), ("deepr", {"temperature": 0.01})])
def test_state_is_saved_and_resumed_exactly(digits, rule, extra):
    data = batches(digits.train)[:12]
    hyper = RewiringHyper(rule=rule, alpha=0.05, target=0.8, lr=1e-2, log_every=2, **extra)

    def fresh():
        net = digits_net()
        engine = PruningEngine(net)
        return net, engine

    net, engine = fresh()
    opt = RewiringAdam(engine, net.parameters(), hyper, seed=3)
    engine.attach_state("rewiring", opt)
    train(net, opt, data)
    reference = copy.deepcopy(net.state_dict())

    net, engine = fresh()
    opt = RewiringAdam(engine, net.parameters(), hyper, seed=3)
    engine.attach_state("rewiring", opt)
    train(net, opt, data[:5])
    state = saved({"net": net.state_dict(), "engine": engine.state_dict()})

    net, engine = fresh()  # as the runner resumes: net and engine first, the method's optimizer attaches later
    net.load_state_dict(state["net"])
    engine.load_state_dict(state["engine"])
    opt = RewiringAdam(engine, net.parameters(), hyper, seed=99, start=False)
    assert engine.attach_state("rewiring", opt)
    train(net, opt, data[5:])
    for key, value in reference.items():
        assert torch.equal(net.state_dict()[key], value), key
    assert opt.steps == len(data)


# ----- through the pruning runner (resume state, report) on the trained lava-dl MNIST network and real MNIST -----

class _Interrupted(Exception):
    pass


def _runner(tmp_path, fixtures_dir, method_name: str, config: dict, fail_on: int | None = None):
    from snndeploy.loader import load_model
    from snndeploy.prune.config import config_from_dict
    from snndeploy.prune.finetune import DatasetTrainer
    from snndeploy.prune.registry import find_method
    from snndeploy.prune.runner import Runner, RunSpec

    class Trainer(DatasetTrainer):
        calls = 0

        def train_epochs(self, *args, **kwargs):
            Trainer.calls += 1
            if Trainer.calls == fail_on:
                raise _Interrupted
            return super().train_epochs(*args, **kwargs)

    source = fixtures_dir / "mnist-mlp-128" / "network.net"
    net = load_model(source)
    method = find_method(method_name)
    cfg = config_from_dict(method.config_class, config)
    trainer = Trainer("mnist", net, batch_size=40, subset=160, test_subset=80, seed=0, progress=False)
    return Runner(RunSpec(method, cfg, 0.9, False, str(source)), net, trainer, tmp_path)


def test_gradr_run_reports_connectivity_and_resumes_exactly(tmp_path, fixtures_dir):
    import snndeploy.prune.deepr  # noqa: F401  (registers deepr, soft_deepr)
    from snndeploy.prune.report import write_report

    config = {"epochs": 3, "alpha": 0.5, "lr": 3e-3, "log_every": 2}
    whole = _runner(tmp_path / "whole", fixtures_dir, "gradr", config).run()
    report = whole.report
    history = report["history"]
    assert [h["epochs"] for h in history] == [1, 1, 1] and report["cost"]["epochs"] == 3
    assert report["cost"]["optimizer_steps"] == 3 * 4
    conn = [h["connectivity"] for h in history]
    assert conn[0] < 1.0 and conn[-1] < conn[0]
    assert all(h["connectivity_quantized"] <= h["connectivity"] for h in history)
    assert report["sparsity"]["weights"] == pytest.approx(1 - conn[-1])
    assert report["model"]["live_weights"] <= round(conn[-1] * report["model"]["weights"])
    assert [r["kind"] for r in report["records"]] == ["gradr"] * 3
    paths = write_report(report, tmp_path / "whole")
    assert paths["plot"].stat().st_size > 1000

    with pytest.raises(_Interrupted):  # killed while training its second epoch
        _runner(tmp_path / "cut", fixtures_dir, "gradr", config, fail_on=2).run()
    resumed = _runner(tmp_path / "cut", fixtures_dir, "gradr", config).run(resume=True)
    for key, value in whole.net.state_dict().items():
        assert torch.equal(resumed.net.state_dict()[key], value), key
    assert [h["connectivity"] for h in resumed.report["history"]] == conn


def test_exact_zero_weights_stay_dead_or_get_a_random_sign(digits):
    data = batches(digits.train)[:3]
    grown = {}
    for zero_sign in ("dead", "free"):
        net = digits_net()
        with torch.no_grad():  # like an imported 8-bit network: a fifth of the weights exactly 0
            w = net.blocks[0].synapse.weight
            w[:, ::5] = 0
        engine = PruningEngine(net)
        opt = RewiringAdam(engine, net.parameters(), RewiringHyper(alpha=0.0, lr=1e-2, zero_sign=zero_sign))
        sign = opt.state[engine.layers[0].weight]["sign"]
        train(net, opt, data)
        w = net.blocks[0].synapse.weight.detach()
        grown[zero_sign] = int((w[:, ::5] != 0).sum())
        if zero_sign == "free":
            assert torch.all(sign != 0) and 0.3 < float((sign[:, ::5] > 0).float().mean()) < 0.7
    assert grown["dead"] == 0 and grown["free"] > 0


def test_grad_r_on_a_conv_net_prunes_conv_and_dense_weights_with_fixed_signs():
    digits = make_splits("uci-digits", time_steps=8, seed=0, encoding="current", subset=320)
    torch.manual_seed(0)
    net = build_model(spec_from_dict({
        "name": "digits_cnn", "input_shape": [1, 8, 8], "time_steps": 8, "quantize": True, "neuron": NEURON,
        "blocks": [{"kind": "conv", "out": 4, "kernel": 3, "padding": 1, "weight_scale": 2},
                   {"kind": "flatten"}, {"kind": "dense", "out": 10, "weight_scale": 2}]}))
    engine = PruningEngine(net)
    assert [lay.info.kind for lay in engine.layers] == ["conv", "dense"]
    opt = RewiringAdam(engine, net.parameters(), RewiringHyper(alpha=0.3, target=0.9, lr=1e-2))
    signs = [opt.state[lay.weight]["sign"].clone() for lay in engine.layers]
    train(net, opt, batches(digits.train))
    conn = connectivity(engine.layers)
    assert all(layer["connectivity"] < 0.9 for layer in conn["per_layer"])
    assert conn["quantized"] <= conn["connectivity"]
    for lay, sign in zip(engine.layers, signs, strict=True):
        w = net.blocks[lay.info.index].synapse.weight.detach()
        assert torch.all(w * sign >= 0) and torch.equal((w != 0).float(), lay.mask.mask)


def test_neuron_biases_and_delays_are_trained_by_plain_adam_and_never_pruned(digits):
    torch.manual_seed(0)
    net = build_model(spec_from_dict({
        "name": "digits_bias", "input_shape": [64], "time_steps": 8, "quantize": False, "neuron": NEURON,
        "blocks": [{"kind": "dense", "out": 32, "weight_scale": 2, "bias": True, "delay": True},
                   {"kind": "dense", "out": 10, "weight_scale": 2}]}))
    engine = PruningEngine(net)
    opt = RewiringAdam(engine, net.parameters(), RewiringHyper(alpha=0.3, target=0.9, lr=1e-2))
    rewired = {id(lay.weight) for lay in engine.layers}
    plain = [p for p in opt.param_groups[1]["params"]]
    assert plain and not any(id(p) in rewired for p in plain)
    names = {id(p): n for n, p in net.named_parameters()}
    assert any("norm" in names[id(p)] for p in plain) and any("delay" in names[id(p)] for p in plain)
    before = {id(p): p.detach().clone() for p in plain}
    train(net, opt, batches(digits.train)[:10])
    assert connectivity(engine.layers)["connectivity"] < 0.9  # the weights were pruned ...
    for p in plain:  # ... the neuron biases and delays were trained, not masked (dense, no exact-zero pattern)
        assert not torch.equal(p.detach(), before[id(p)]), names[id(p)]
        assert "parametrizations" not in names[id(p)]
