"""PQ index, keep bound and adaptive ratio (values from the definitions), ER init, and the PQ / SET / RigL rewiring
on real SLAYER networks with real data (UCI digits)."""

from __future__ import annotations

import math

import pytest
import torch

from snndeploy.errors import UserError
from snndeploy.models.build import build_model
from snndeploy.models.spec import spec_from_dict
from snndeploy.prune import pq, set_rigl, sparse
from snndeploy.prune.engine import PruningEngine
from snndeploy.prune.methods import METHODS, Round
from snndeploy.prune.registry import find_method

NEURON = {"threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03, "tau_grad": 0.03, "scale_grad": 3.0}


# ----- the PQ index from its definition -------------------------------------------------------------------------------

def pq_by_hand(values: list[float], p: float, q: float) -> float:
    """``1 - d^(1/q - 1/p) ||w||_p / ||w||_q`` written out with Python floats."""
    d = len(values)
    norm_p = sum(abs(v) ** p for v in values) ** (1 / p)
    norm_q = sum(abs(v) ** q for v in values) ** (1 / q)
    return 1 - d ** (1 / q - 1 / p) * norm_p / norm_q


@pytest.mark.parametrize("p,q", [(0.5, 1.0), (1.0, 2.0), (0.3, 1.5)])
def test_known_values(p, q):
    for d in (1, 2, 7, 100):
        one_hot = torch.zeros(d)
        one_hot[d // 2] = -3.0
        assert pq.pq_index(one_hot, p=p, q=q).item() == pytest.approx(1 - d ** (1 / q - 1 / p), abs=1e-12)
        assert pq.pq_index(one_hot, p=p, q=q).item() == pytest.approx(pq.pq_index_max(d, p, q), abs=1e-12)
        assert pq.pq_index(torch.full((d,), 0.7), p=p, q=q).item() == pytest.approx(0.0, abs=1e-12)
    for vec in ([1.0, 4.0], [0.5, -2.0, 0.0, 3.0], [1e-3, 2.0, 2.0, -7.5, 0.25]):
        got = pq.pq_index(torch.tensor(vec, dtype=torch.float64), p=p, q=q).item()
        assert got == pytest.approx(pq_by_hand(vec, p, q), abs=1e-12)
    # [1, 4] with p = 1/2, q = 1: ((1 + 2)^2 / 2^2) / ((1 + 4) / 2) = 2.25 / 2.5
    assert pq.pq_index(torch.tensor([1.0, 4.0])).item() == pytest.approx(1 - 2.25 / 2.5)


def test_range_scale_and_clone_invariance():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(50, 37, generator=g) * torch.rand(50, 1, generator=g) ** 4  # rows of very different spread
    index = pq.pq_index(w)
    assert bool((index >= 0).all()) and bool((index <= pq.pq_index_max(37) + 1e-12).all())
    for scale in (1e-6, 3.0, -2.0, 1e6):
        assert torch.allclose(pq.pq_index(scale * w), index, atol=1e-10)
    assert torch.allclose(pq.pq_index(torch.cat([w, w], 1)), index, atol=1e-10)  # cloning the vector
    heavier = torch.sign(w) * w.abs() ** 3  # a more compressible version of every row
    assert bool((pq.pq_index(heavier) > index).all())


def test_mask_selects_the_active_entries():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(4, 30, generator=g)
    mask = (torch.rand(4, 30, generator=g) < 0.4).float()
    mask[3] = 0
    got = pq.pq_index(w, mask)
    for r in range(3):
        active = w[r][mask[r] != 0].tolist()
        assert got[r].item() == pytest.approx(pq_by_hand(active, 0.5, 1.0), abs=1e-12)
    assert got[3].item() == 0.0  # an empty unit has nothing to compress
    assert pq.pq_index(torch.zeros(1, 5)).item() == 0.0


def test_keep_bound_and_ratio_from_the_definition():
    g = torch.Generator().manual_seed(2)
    w = torch.randn(6, 40, generator=g) * torch.rand(6, 1, generator=g)
    index, d = pq.pq_index(w), torch.full((6,), 40.0)
    # p = 1/2, q = 1, eta = 0: r = (sum sqrt|w|)^2 / sum |w| (the worked special case), rounded up
    by_hand = [math.ceil((sum(abs(v) ** 0.5 for v in row) ** 2) / sum(abs(v) for v in row) - 1e-9)
               for row in w.tolist()]
    assert pq.keep_bound(index, d, 0.5, 1.0, eta=0.0).tolist() == by_hand
    for eta, p, q in ((0.001, 0.5, 1.0), (0.1, 0.8, 1.5)):
        idx = pq.pq_index(w, p=p, q=q)
        r = [math.ceil(40 * (1 + eta) ** (-q / (q - p)) * (1 - i) ** (q * p / (q - p)) - 1e-9) for i in idx.tolist()]
        assert pq.keep_bound(idx, d, p, q, eta).tolist() == r
        ratio = pq.rewiring_ratio(idx, d, p, q, eta, gamma=1.2, beta=0.9)
        assert ratio.tolist() == pytest.approx([min(max(1.2 * (1 - k / 40), 0.0), 0.9) for k in r])
    one_hot = torch.zeros(1, 40)
    one_hot[0, 3] = 1.0
    assert pq.keep_bound(pq.pq_index(one_hot), torch.tensor([40.0]), eta=0.001).item() == 1


def test_ratio_follows_the_index():
    """More compressible units (higher index) get a larger ratio, capped at beta; the ratio is 0 at I = 0."""
    d = 200
    j = torch.arange(d, dtype=torch.float64)
    rows = torch.stack([torch.exp(-k * j / d) for k in (0.0, 0.5, 1, 2, 4, 8, 16, 32, 64)])
    index = pq.pq_index(rows)
    assert bool((index.diff() > 0).all())
    ratio = pq.rewiring_ratio(index, torch.full((len(rows),), float(d)), gamma=1.2, beta=0.9)
    assert bool((ratio.diff() >= 0).all()) and ratio[0].item() == 0.0
    assert ratio.max().item() == pytest.approx(0.9) and ratio[-2].item() > ratio[1].item()
    gentle = pq.rewiring_ratio(index, torch.full((len(rows),), float(d)), gamma=0.5, beta=0.9)
    assert bool((gentle <= ratio).all())


# ----- Erdos-Renyi initialisation ------------------------------------------------------------------------------------

def test_er_densities():
    shapes = [(512, 784, 1, 1, 1), (512, 512, 1, 1, 1), (10, 512, 1, 1, 1)]
    dens = sparse.er_densities(shapes, 0.5, "er")
    sizes = [math.prod(s) for s in shapes]
    assert sum(d * n for d, n in zip(dens, sizes, strict=True)) / sum(sizes) == pytest.approx(0.5)
    assert dens[2] == 1.0  # the small classifier would need more than 1: dense, the others share the rest
    assert dens[0] / dens[1] == pytest.approx(((784 + 512) / (784 * 512)) / ((512 + 512) / (512 * 512)))
    conv = [(16, 2, 5, 5, 1), (32, 16, 3, 3, 1), (128, 2592, 1, 1, 1)]
    erk = sparse.er_densities(conv, 0.3, "erk")
    assert erk[1] / erk[2] == pytest.approx(((16 + 32 + 6) / (16 * 32 * 9)) / ((2592 + 128) / (2592 * 128)))
    assert sparse.er_densities(conv, 0.3, "uniform") == pytest.approx([0.3] * 3)


# ----- methods on real networks and data ------------------------------------------------------------------------------

def digits_net(seed: int = 0, hidden: int = 48):
    torch.manual_seed(seed)
    spec = spec_from_dict({"name": "digits_mlp", "input_shape": [64], "time_steps": 8, "quantize": False,
                           "neuron": NEURON,
                           "blocks": [{"kind": "dense", "out": hidden}, {"kind": "dense", "out": 10}]})
    return build_model(spec)


@pytest.fixture(scope="module")
def digits_trainer():
    from snndeploy.prune.finetune import DatasetTrainer

    return DatasetTrainer("uci-digits", digits_net(), batch_size=32, subset=192, test_subset=96, progress=False,
                          threads=1)


def make_ctx(net, trainer, seed: int = 0):
    from snndeploy.prune.cost import CostMeter
    from snndeploy.prune.runner import RunContext

    engine = PruningEngine(net)
    return RunContext(engine, net, torch.Generator().manual_seed(seed), trainer, CostMeter())


def gaussian_(net, seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in net.blocks:
            w = block.synapse.weight
            w.copy_(torch.randn(w.shape, generator=g) * 0.5)


def test_er_init_is_exact(digits_trainer):
    net = digits_net()
    ctx = make_ctx(net, digits_trainer)
    info = find_method("pq").prune(ctx, pq.PQConfig(), Round(0, 0.0, 0))
    shapes = [tuple(layer.mask.mask.shape) for layer in ctx.engine.layers]
    want = sparse.er_densities(shapes, 0.5, "er")
    for layer, d in zip(ctx.engine.layers, want, strict=True):
        assert int(layer.mask.mask.sum()) == round(d * layer.mask.mask.numel())
    assert info["density"] == pytest.approx(0.5, abs=1e-3)
    assert [row["layer"] for row in info["layers"]] == ["blocks.0", "blocks.1"]


def test_density_trajectory_under_default_settings(digits_trainer):
    """Default keys (p 0.5, q 1, eta 0.001, gamma 1.2, beta 0.9, regrow c * pruned): each rewiring removes
    sum floor(c d) and regrows sum floor(c floor(c d)), c from the unit's PQ index; for Gaussian weights the first
    rewiring keeps about 1 - c + c^2 of the weights, c = 1.2 (1 - (E|w|^(1/2))^2 / E|w|) (spec section 5.3)."""
    net = digits_net(hidden=256)
    gaussian_(net)
    ctx = make_ctx(net, digits_trainer)
    method, config = find_method("pq"), pq.PQConfig(scope="layer", momentum_batches=2)
    assert (config.p, config.q, config.eta, config.gamma, config.beta, config.regrow, config.init_density,
            config.iterations, config.epochs_per_step) == (0.5, 1.0, 0.001, 1.2, 0.9, "ratio", 0.5, 10, 20)
    method.prune(ctx, config, Round(0, 0.0, 0))
    trajectory = [sparse.density(ctx.engine)]
    for k in range(1, 4):
        units = pq.unit_ratios(ctx.engine, config)
        removed = sum(int(torch.floor(u["ratio"] * u["active"]).sum()) for u in units)
        regrown = sum(int(torch.floor(u["ratio"] * torch.floor(u["ratio"] * u["active"])).sum()) for u in units)
        active = sum(int(layer.mask.mask.sum()) for layer in ctx.engine.layers)
        info = method.prune(ctx, config, Round(k, 0.0, 0))
        assert (info["pruned"], info["regrown"]) == (removed, regrown)
        assert sum(int(layer.mask.mask.sum()) for layer in ctx.engine.layers) == active - removed + regrown
        trajectory.append(info["density"])
    assert all(b < a for a, b in zip(trajectory, trajectory[1:], strict=False))
    half_normal = (2 ** 0.25 * math.gamma(0.75) / math.sqrt(math.pi)) ** 2 / math.sqrt(2 / math.pi)
    c = 1.2 * (1 - half_normal)
    assert trajectory[1] / trajectory[0] == pytest.approx(1 - c + c * c, abs=0.02)


def test_compressible_neuron_is_rewired_more(digits_trainer):
    net = digits_net()
    ctx = make_ctx(net, digits_trainer)
    method, config = find_method("pq"), pq.PQConfig(scope="neuron", momentum_batches=2, init="uniform",
                                                    init_density=1.0 - 1e-9)
    method.prune(ctx, config, Round(0, 0.0, 0))
    w = ctx.engine.layers[0].weight
    with torch.no_grad():
        w[0].fill_(0.3)  # incompressible: constant
        w[1] = torch.exp(-torch.arange(64.0) / 4).view(64, 1, 1, 1)  # compressible: fast decay
    units = pq.unit_ratios(ctx.engine, config)
    assert units[0]["ratio"][1] > units[0]["ratio"][2] > units[0]["ratio"][0] == 0
    method.prune(ctx, config, Round(1, 0.0, 0))
    # rewired entries: pruned, or regrown at zero (a full row can only regrow what it just pruned)
    rewired = ((ctx.engine.layers[0].mask.mask == 0) | (w.detach() == 0)).reshape(48, -1).sum(1)
    assert rewired[0] == 0 and rewired[1] > rewired[2] > 0
    assert rewired[1] == math.floor(units[0]["ratio"][1].item() * 64)


def test_regrown_entries_start_at_zero_with_fresh_optimizer_state(digits_trainer):
    net = digits_net()
    ctx = make_ctx(net, digits_trainer)
    method = find_method("fixed")
    config = pq.FixedRatioConfig(scope="layer", ratio=0.3, momentum_batches=3, init="uniform")
    method.prune(ctx, config, Round(0, 0.0, 0))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    ctx.engine.bind_optimizer(optimizer)
    digits_trainer.train_epochs(net, optimizer, 1, ctx.engine.after_step)
    before = sparse.masks(ctx.engine)
    info = method.prune(ctx, config, Round(1, 0.0, 0))
    assert info["regrown"] > 0
    for layer in ctx.engine.layers:
        grown = (before[layer.info.index] == 0) & (layer.mask.mask == 1)
        cut = (before[layer.info.index] == 1) & (layer.mask.mask == 0)
        assert bool(grown.any()) and bool(cut.any())
        assert bool((layer.weight.detach()[grown] == 0).all())
        assert bool((layer.block.synapse.weight.detach()[grown | cut] == 0).all())  # effective weight
        state = optimizer.state[layer.weight]
        for key in ("exp_avg", "exp_avg_sq"):
            assert bool((state[key][grown] == 0).all()) and bool((state[key][cut] == 0).all())
            assert bool((state[key][layer.mask.mask == 1] != 0).any())  # the others keep theirs


def test_regrowth_follows_momentum_of_the_dense_gradient(digits_trainer):
    net = digits_net()
    ctx = make_ctx(net, digits_trainer)
    config = pq.FixedRatioConfig(scope="layer", ratio=0.2, momentum_batches=3, exclude_regrow_pruned=False,
                                 select_best=False, init="uniform")  # validation would draw random spikes first
    method = find_method("fixed")
    method.prune(ctx, config, Round(0, 0.0, 0))
    torch.manual_seed(5)
    momentum = sparse.calibration_momentum(ctx, 3, 0.9)
    torch.manual_seed(5)
    before = sparse.masks(ctx.engine)
    method.prune(ctx, config, Round(1, 0.0, 0))
    for layer in ctx.engine.layers:
        i = layer.info.index
        grown = (before[i] == 0) & (layer.mask.mask == 1)
        candidates = (layer.mask.mask == 0) | grown
        score = momentum[i].abs()
        assert bool(momentum[i][before[i] == 0].abs().sum() > 0)  # pruned positions have a dense gradient
        assert score[grown].min() >= score[candidates & ~grown].max()


def test_set_and_rigl_keep_the_density(digits_trainer):
    for name, config in (("set", set_rigl.SETConfig(iterations=4)), ("rigl", set_rigl.RigLConfig(iterations=4))):
        net = digits_net()
        ctx = make_ctx(net, digits_trainer)
        method = find_method(name)
        method.prune(ctx, config, Round(0, 0.7, 0))
        start = sparse.masks(ctx.engine)
        assert sparse.density(ctx.engine) == pytest.approx(0.3, abs=2e-3)
        before = sparse.density(ctx.engine)
        info = method.prune(ctx, config, Round(1, 0.7, 0))
        assert info["pruned"] == info["regrown"] > 0 and sparse.density(ctx.engine) == before
        moved = sum(int(((start[i] == 1) & (m == 0)).sum()) for i, m in sparse.masks(ctx.engine).items())
        assert moved == info["pruned"]
    assert find_method("rigl").prune(ctx, config, Round(3, 0.7, 0))["drop_fraction"] == 0.0  # after 75 %
    ctx = make_ctx(digits_net(), digits_trainer)  # at density 0.7 ER makes the classifier dense
    find_method("set").prune(ctx, set_rigl.SETConfig(), Round(0, 0.3, 0))
    dense = ctx.engine.layers[1]
    assert bool((dense.mask.mask == 1).all())
    info = find_method("set").prune(ctx, set_rigl.SETConfig(select_best=False), Round(1, 0.3, 0))
    assert sparse.density(ctx.engine) == pytest.approx(0.7, abs=1e-3) and info["pruned"] == info["regrown"]
    assert bool((dense.mask.mask == 1).all())  # it could only regrow what it had just pruned, now at zero
    assert int((dense.weight.detach() == 0).sum()) == math.floor(0.3 * dense.mask.mask.numel())
    with pytest.raises(UserError, match="constant sparsity"):
        find_method("set").prune(make_ctx(digits_net(), digits_trainer), set_rigl.SETConfig(), Round(0, 0.0, 0))


def test_rigl_regrows_where_the_gradient_is_largest(digits_trainer):
    net = digits_net()
    ctx = make_ctx(net, digits_trainer)
    config = set_rigl.RigLConfig(iterations=4, grad_batches=2, select_best=False, init="uniform")
    method = find_method("rigl")
    method.prune(ctx, config, Round(0, 0.6, 0))
    torch.manual_seed(9)
    grads = sparse.dense_gradient(ctx, 2)
    torch.manual_seed(9)
    before = sparse.masks(ctx.engine)
    method.prune(ctx, config, Round(1, 0.6, 0))
    for layer in ctx.engine.layers:
        i = layer.info.index
        grown = (before[i] == 0) & (layer.mask.mask == 1)
        others = (before[i] == 0) & (layer.mask.mask == 0)  # just-pruned weights are not candidates by default
        assert bool(grown.any()) and grads[i].abs()[grown].min() >= grads[i].abs()[others].max()


def test_target_density_stop(digits_trainer):
    net = digits_net()
    ctx = make_ctx(net, digits_trainer)
    method = find_method("fixed")
    config = pq.FixedRatioConfig(scope="layer", ratio=0.4, momentum_batches=2)
    method.prune(ctx, config, Round(0, 0.6, 0))
    history = [method.prune(ctx, config, Round(k, 0.6, 0)) for k in range(1, 5)]
    assert [h["density"] for h in history][-1] == pytest.approx(0.4, abs=2e-3)
    assert all(h["density"] >= 0.4 - 1e-3 for h in history)
    assert history[-1]["step"] == "frozen" and history[-2]["at_target"]
    hold = pq.FixedRatioConfig(scope="layer", ratio=0.4, momentum_batches=2, at_target="hold")
    info = method.prune(ctx, hold, Round(5, 0.6, 0))
    assert info["step"] == "rewire" and info["pruned"] == info["regrown"] > 0


def test_best_iteration_is_selected_on_validation(digits_trainer, tmp_path):
    from snndeploy.prune.runner import Runner, RunSpec

    net = digits_net()
    config = pq.PQConfig(iterations=3, epochs_per_step=1, momentum_batches=2, scope="layer")
    result = Runner(RunSpec(find_method("pq"), config, 0.0, False, "test"), net, digits_trainer, tmp_path).run()
    history = result.report["history"]
    assert [h.get("step") for h in history] == ["init", "rewire", "rewire", "select"]
    vals = {h["validated_iteration"]: h["val_accuracy"] for h in history if "validated_iteration" in h}
    assert sorted(vals) == [0, 1, 2]
    best = max(vals, key=lambda k: (vals[k], -k))
    assert history[-1]["selected_iteration"] == best
    assert history[-1]["density"] == pytest.approx(history[best]["density"])
    assert result.report["sparsity"]["weights"] == pytest.approx(1 - history[best]["density"], abs=1e-6)
    assert all("pq_index" in row and "density" in row for h in history for row in h["layers"])


def test_configs_and_registry():
    assert {"pq", "fixed", "set", "rigl"} <= set(METHODS)
    with pytest.raises(UserError, match="scope must be one of neuron, layer, global"):
        pq.PQConfig(scope="channel")
    with pytest.raises(UserError, match="0 < p < q"):
        pq.PQConfig(p=1.0, q=0.5)
    with pytest.raises(UserError, match="regrow must be one of"):
        pq.PQConfig(regrow="all")
    plan = find_method("pq").rounds(pq.PQConfig(), 0.0)
    assert len(plan) == 11 and sum(r.epochs for r in plan) == 200 and plan[-1].epochs == 0


def test_config_files(tmp_path):
    from snndeploy.prune import config as cfglib

    good = tmp_path / "pq.yaml"
    good.write_text("scope: layer\niterations: 3\nregrow: same\ngamma: 2\n")
    cfg = cfglib.load_config(pq.PQConfig, good)
    assert (cfg.scope, cfg.iterations, cfg.regrow, cfg.gamma) == ("layer", 3, "same", 2.0)
    for text, needle in (("scope: channel\n", "'scope' must be one of neuron, layer, global"),
                         ("momentum_source: adam\n", "'momentum_source' must be one of calibration, training"),
                         ("p: 2\n", "0 < p < q")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(UserError, match=needle) as err:
            cfglib.load_config(pq.PQConfig, bad)
        assert str(bad) in str(err.value)
    neuron = tmp_path / "neuron.yaml"
    neuron.write_text("scope: neuron\n")
    assert cfglib.load_config(set_rigl.SETConfig, neuron).scope == "neuron"
    with pytest.raises(UserError, match="'scope' must be one of global, layer"):
        cfglib.load_config(cfglib.MagnitudeConfig, neuron)  # the other methods keep their scopes


class _Killed(Exception):
    pass


class KilledAfter:
    """The real trainer, except that its ``n``-th training call dies (a run killed mid-way)."""

    def __init__(self, inner, n: int):
        self.inner, self.n, self.calls = inner, n, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def train_epochs(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.n:
            raise _Killed
        return self.inner.train_epochs(*args, **kwargs)


def test_resume_gives_the_same_masks_selection_and_momentum(digits_trainer, tmp_path):
    """Killed after two iterations and resumed: same masks, same selected iteration, same records as one run
    (the best snapshot and the training-time momentum travel in the resume state)."""
    from snndeploy.prune.runner import Runner, RunSpec

    config = pq.PQConfig(iterations=3, epochs_per_step=1, scope="neuron", momentum_source="training", init="uniform")
    spec = RunSpec(find_method("pq"), config, 0.0, False, "test")
    full = Runner(spec, digits_net(), digits_trainer, tmp_path / "full").run()
    with pytest.raises(_Killed):
        Runner(spec, digits_net(), KilledAfter(digits_trainer, 3), tmp_path / "killed").run()
    state = torch.load(tmp_path / "killed" / "prune_state.pt", weights_only=True)
    assert state["next_round"] == 2 and "sparse_from_scratch" in state["engine"]["owners"]
    resumed = Runner(spec, digits_net(), digits_trainer, tmp_path / "killed").run(resume=True)
    assert [h.get("momentum_source") for h in resumed.report["history"]] == [None, "training", "training", None]
    assert resumed.report["records"] == full.report["records"]
    assert resumed.report["history"][-1]["selected_iteration"] == full.report["history"][-1]["selected_iteration"]
    for a, b in zip(full.net.blocks, resumed.net.blocks, strict=True):
        assert torch.equal(a.synapse.weight != 0, b.synapse.weight != 0)


def test_global_scope_is_one_unit_over_all_layers(digits_trainer):
    net = digits_net()
    gaussian_(net, seed=4)
    ctx = make_ctx(net, digits_trainer)
    method = find_method("pq")
    config = pq.PQConfig(scope="global", momentum_batches=2, select_best=False, regrow="none")
    method.prune(ctx, config, Round(0, 0.0, 0))
    weights = torch.cat([layer.weight.detach().reshape(-1) for layer in ctx.engine.layers])
    mask = torch.cat([layer.mask.mask.reshape(-1) for layer in ctx.engine.layers])
    active = weights[mask != 0].tolist()
    index = pq_by_hand(active, 0.5, 1.0)
    d = len(active)
    keep = math.ceil(d * 1.001 ** -2 * (1 - index) - 1e-9)
    info = method.prune(ctx, config, Round(1, 0.0, 0))
    assert info["pruned"] == math.floor(d * min(max(1.2 * (1 - keep / d), 0), 0.9)) > 0 and info["regrown"] == 0
    assert [u["unit"] for u in info["units"]] == ["global"]
    cut = sorted(abs(v) for v in active)[:info["pruned"]]
    left = torch.cat([layer.weight.detach().reshape(-1)[layer.mask.mask.reshape(-1) != 0] for layer in
                      ctx.engine.layers]).abs()
    assert left.min().item() >= max(cut)  # the smallest magnitudes over all layers went
