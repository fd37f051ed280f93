"""The sparse-training base on the mask engine: Erdos-Renyi masks, periodic rewiring, best-iteration selection.

A dynamic-sparse run is a list of rounds (see :class:`snndeploy.prune.methods.Round`): round 0 draws the
Erdos-Renyi masks, every later round rewires (prune by magnitude, regrow at zero) and each round then trains
``epochs_per_step`` epochs, so the mask changes every ``epochs_per_step`` epochs. With ``select_best`` one last
round without training evaluates every trained iteration on the validation split and restores the best one.

Rewiring works on *scope units*: one row per output neuron (``neuron``), one layer (``layer``) or all layers
together (``global``). The regrowth scores are: random (SET), ``|dL/dW|`` of the dense gradient (RigL) and the
momentum (exponential average) of the dense gradient (SNFS; the PQ method of :mod:`snndeploy.prune.pq`). Dense
gradients are those of the effective weight ``W * mask``, so pruned positions get one too (engine tracker).
SET and RigL are in :mod:`snndeploy.prune.set_rigl`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from snndeploy.errors import UserError
from snndeploy.prune import config as cfglib
from snndeploy.prune import descent
from snndeploy.prune.engine import PruningEngine, mean_over_ranks
from snndeploy.prune.methods import Method, Round, descend_to
from snndeploy.train.loop import evaluate

INIT_KINDS = ("er", "erk", "uniform")
INIT_SELECT = ("random", "magnitude")
MOMENTUM_SOURCES = ("calibration", "training")
AT_TARGET = ("freeze", "hold")
SCOPES = ("neuron", "layer", "global")  # rewiring scope units


# ----- the PQ index (Diao et al. 2023): reported per layer by every sparse method, steering the PQ method -----------

def _power_mean(a: torch.Tensor, mask: torch.Tensor, s: float, d: torch.Tensor) -> torch.Tensor:
    total = (a.pow(s) * mask).sum(-1)
    return (total / d.clamp(min=1)).pow(1.0 / s)


def pq_index(weight: torch.Tensor, mask: torch.Tensor | None = None, p: float = 0.5, q: float = 1.0) -> torch.Tensor:
    """PQ index of each row (last dimension) of ``weight`` over its active (``mask`` != 0) entries.

    Rows with no active entry, or whose active entries are all zero, get 0 (nothing to compress).
    """
    if not 0 < p < q:
        raise ValueError(f"the PQ index needs 0 < p < q, got p={p}, q={q}")
    a = weight.detach().to(torch.float64).abs()
    m = torch.ones_like(a) if mask is None else (mask.detach() != 0).to(torch.float64)
    a = a * m
    d = m.sum(-1)
    scale = a.amax(-1, keepdim=True)  # scale invariance also numerically: work on |w| / max|w|
    a = torch.where(scale > 0, a / scale.clamp(min=torch.finfo(torch.float64).tiny), a)
    mp, mq = _power_mean(a, m, p, d), _power_mean(a, m, q, d)
    index = torch.where((d > 0) & (mq > 0), 1.0 - mp / mq.clamp(min=torch.finfo(torch.float64).tiny),
                        torch.zeros_like(d))
    return index.clamp(min=0.0)

def layer_pq(weight: torch.Tensor, mask: torch.Tensor, p: float, q: float) -> float:
    """PQ index of a whole layer over its active weights."""
    return float(pq_index(weight.reshape(1, -1), mask.reshape(1, -1), p, q)[0])


# ----- Erdos-Renyi initialisation ------------------------------------------------------------------------------------

def er_raw(shape: tuple[int, ...], kind: str) -> float:
    """Unnormalised density of a ``[out, in, kh, kw, ...]`` tensor: ER ``(in+out)/(in*out)``, ERK adds the kernel."""
    out, inp = shape[0], shape[1]
    kernel = [s for s in shape[2:] if s > 1]
    if kind == "uniform":
        return 1.0
    if kind == "er":
        return (inp + out) / (inp * out)
    if kind == "erk":
        return (inp + out + sum(kernel)) / (inp * out * math.prod(kernel))
    raise ValueError(f"unknown sparse init {kind!r}; choose one of {', '.join(INIT_KINDS)}")


def er_densities(shapes: list[tuple[int, ...]], density: float, kind: str = "er") -> list[float]:
    """Per-layer densities proportional to :func:`er_raw` whose weighted mean is ``density`` (capped at 1)."""
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")
    sizes = [math.prod(s) for s in shapes]
    raw = [er_raw(s, kind) for s in shapes]
    dense: set[int] = set()
    while True:  # layers whose share would exceed 1 become dense, the rest share what is left
        budget = density * sum(sizes) - sum(sizes[i] for i in dense)
        weight = sum(raw[i] * sizes[i] for i in range(len(shapes)) if i not in dense)
        eps = budget / weight if weight > 0 else 0.0
        over = [i for i in range(len(shapes)) if i not in dense and eps * raw[i] > 1.0]
        if not over:
            return [1.0 if i in dense else eps * raw[i] for i in range(len(shapes))]
        dense.add(max(over, key=lambda i: raw[i]))


# ----- scope units --------------------------------------------------------------------------------------------

@dataclass
class Group:
    """Engine layers that form scope units together, and how their tensors become rows (one row per unit)."""

    layers: list[int]
    scope: str

    def rows(self, tensors: dict[int, torch.Tensor]) -> torch.Tensor:
        if self.scope == "neuron":
            t = tensors[self.layers[0]]
            return t.reshape(t.shape[0], -1)
        return torch.cat([tensors[i].reshape(-1) for i in self.layers]).unsqueeze(0)

    def split(self, chosen: torch.Tensor, engine: PruningEngine) -> dict[int, torch.Tensor]:
        """Per-layer flat indices of the ``True`` entries of a row-shaped boolean tensor."""
        flat = chosen.reshape(-1)
        out, start = {}, 0
        for i in self.layers:
            size = engine.by_index(i).mask.mask.numel()
            idx = torch.nonzero(flat[start:start + size]).view(-1)
            if idx.numel():
                out[i] = idx
            start += size
        return out


def groups(engine: PruningEngine, scope: str) -> list[Group]:
    if scope not in SCOPES:
        raise ValueError(f"unknown rewiring scope {scope!r}; choose one of {', '.join(SCOPES)}")
    indices = [layer.info.index for layer in engine.layers]
    return [Group(indices, scope)] if scope == "global" else [Group([i], scope) for i in indices]


def pick_per_row(score: torch.Tensor, eligible: torch.Tensor, counts: torch.Tensor, largest: bool) -> torch.Tensor:
    """Boolean tensor marking, in every row, the ``counts[row]`` eligible entries with the lowest (highest) score."""
    s = score.to(torch.float64).clone()
    s = s if not largest else -s
    s[~eligible] = float("inf")
    order = torch.argsort(s, dim=1, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(s.shape[1]).expand_as(order).contiguous())
    counts = torch.minimum(counts.to(torch.long), eligible.sum(1))
    return (rank < counts.view(-1, 1)) & eligible


def masks(engine: PruningEngine) -> dict[int, torch.Tensor]:
    return {layer.info.index: layer.mask.mask.detach().clone() for layer in engine.layers}


def weights(engine: PruningEngine) -> dict[int, torch.Tensor]:
    return {layer.info.index: layer.weight.detach().clone() for layer in engine.layers}


# ----- gradient and momentum scores ---------------------------------------------------------------------------------

class MomentumTracker:
    """Exponential average of the per-batch dense gradient of every engine layer (SNFS momentum).

    The engine's tracker sums ``dL/dW_eff`` into ``mask.dense_grad``; at the next training forward (and at
    :meth:`flush`) that sum is one batch's gradient and is folded into the average, so it works both for
    calibration batches and during training. ``value`` is bias-corrected.
    """

    def __init__(self, engine: PruningEngine, beta: float = 0.9):
        self.engine = engine
        self.beta = beta
        self.avg = {layer.info.index: torch.zeros_like(layer.mask.mask) for layer in engine.layers}
        self.batches = 0
        self._handles = []

    def start(self) -> MomentumTracker:
        self.engine.track_gradients(True)
        for layer in self.engine.layers:
            self._handles.append(layer.mask.register_forward_hook(self._on_forward))
        return self

    def _on_forward(self, _module: nn.Module, _inputs, _output) -> None:
        if torch.is_grad_enabled():
            self.flush()

    def flush(self) -> None:
        grads = [layer.mask.dense_grad for layer in self.engine.layers]
        if not any(bool(g.any()) for g in grads):
            return
        for layer, g in zip(self.engine.layers, grads, strict=True):
            avg = self.avg[layer.info.index]
            avg.mul_(self.beta).add_(g, alpha=1.0 - self.beta)
            g.zero_()
        self.batches += 1

    def stop(self) -> None:
        self.flush()
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.engine.track_gradients(False)

    def value(self) -> dict[int, torch.Tensor]:
        """The bias-corrected average; under DDP the mean of the ranks' averages (each saw its own batches; the
        average is linear, so that is the average of the rank-mean gradients, the same on every rank)."""
        correction = 1.0 - self.beta ** self.batches if self.batches else 1.0
        return mean_over_ranks({i: a / correction for i, a in self.avg.items()})


def calibration_momentum(ctx, batches: int, beta: float) -> dict[int, torch.Tensor]:
    """Momentum of the dense gradient over ``batches`` training batches at the current weights."""
    tracker = MomentumTracker(ctx.engine, beta).start()
    try:  # the last batch folded in before the ranks' gradients are summed: value() averages over the ranks
        ctx.accumulate_gradients(batches, before_reduce=tracker.flush)
    finally:
        tracker.stop()
    ctx.net.zero_grad(set_to_none=True)
    return tracker.value()


def dense_gradient(ctx, batches: int) -> dict[int, torch.Tensor]:
    """Dense ``dL/dW_eff`` summed over ``batches`` training batches (RigL)."""
    ctx.engine.track_gradients(True)
    try:
        ctx.accumulate_gradients(batches)
        grads = ctx.engine.dense_grads()
    finally:
        ctx.engine.track_gradients(False)
    ctx.net.zero_grad(set_to_none=True)
    return grads


# ----- configuration -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SparseConfig(cfglib.PruneConfig):
    """Shared by the sparse-from-scratch methods (PQ, fixed ratio, SET, RigL)."""

    choices: ClassVar[dict[str, tuple[str, ...]]] = {"scope": SCOPES, "init": INIT_KINDS, "init_select": INIT_SELECT}
    iterations: int = 10  # trained iterations; the mask is rewired between them
    epochs_per_step: int = 20  # Epoch_frequency: training epochs per iteration (spec 7 item 12)
    scope: str = "layer"
    init: str = "er"  # er | erk | uniform: per-layer density allocation of the random initial masks
    init_density: float = 0.5  # PQ / fixed ratio: density of iteration 1 (SET / RigL use 1 - --sparsity)
    # which weights the initial masks keep: random (sparse from scratch, the papers) | magnitude (the largest of each
    # layer: starting from a trained network, a random mask would throw away what it learned)
    init_select: str = "random"
    select_best: bool = True  # restore the iteration with the best validation accuracy at the end
    exclude_regrow_pruned: bool = True  # regrow just-pruned weights only where a unit has no other free position
    cut_substeps: int = 5  # init_select magnitude: the first cut in refitted sub-steps (snndeploy.prune.descent)

    def __post_init__(self) -> None:
        checks = [(self.iterations >= 1, "iterations must be >= 1"),
                  (self.init in INIT_KINDS, f"init must be one of {', '.join(INIT_KINDS)}"),
                  (self.init_select in INIT_SELECT, f"init_select must be one of {', '.join(INIT_SELECT)}"),
                  (0.0 < self.init_density <= 1.0, "init_density must be in (0, 1]"),
                  (self.scope in SCOPES, f"scope must be one of {', '.join(SCOPES)}")]
        for ok, problem in checks:
            if not ok:
                raise UserError(f"method config: {problem}")


# ----- the method base -----------------------------------------------------------------------------------------------

STATE_NAME = "sparse_from_scratch"


@dataclass
class SparseRunState:
    """Per-run memory of a dynamic-sparse method, saved in the engine's (and so the runner's resume) state."""

    engine: PruningEngine
    best_accuracy: float = -1.0
    best_iteration: int = -1
    best_state: dict | None = None
    validated: list = field(default_factory=list)
    tracker: MomentumTracker | None = None  # training-time momentum (momentum_source: training)

    def state_dict(self) -> dict:
        state = {"best_accuracy": self.best_accuracy, "best_iteration": self.best_iteration,
                 "best_state": self.best_state, "validated": [list(v) for v in self.validated]}
        if self.tracker is not None:
            self.tracker.flush()
            names = {layer.info.index: layer.info.name for layer in self.engine.layers}
            state["tracker"] = {"beta": self.tracker.beta, "batches": self.tracker.batches,
                                "avg": {names[i]: a.clone() for i, a in self.tracker.avg.items()}}
        return state

    def load_state_dict(self, state: dict) -> None:
        self.best_accuracy, self.best_iteration = float(state["best_accuracy"]), int(state["best_iteration"])
        self.best_state = state["best_state"]
        self.validated = [(int(i), float(a)) for i, a in state["validated"]]
        saved = state.get("tracker")
        if saved is not None:  # not observing any more: its average is what the next rewiring reads
            self.tracker = MomentumTracker(self.engine, float(saved["beta"]))
            self.tracker.batches = int(saved["batches"])
            for layer in self.engine.layers:
                self.tracker.avg[layer.info.index] = saved["avg"][layer.info.name].clone()


def run_state(ctx) -> SparseRunState:
    """The run's state, kept by the engine (saved with it; a resumed run gets its saved state back)."""
    return ctx.engine.owned_state(STATE_NAME, lambda: SparseRunState(ctx.engine))


def validation_accuracy(ctx) -> float:
    """Accuracy on the validation split of the runner's data (never the test set)."""
    trainer = ctx.trainer
    if hasattr(trainer, "validate"):
        return float(trainer.validate(ctx.net)["accuracy"])
    val = getattr(getattr(trainer, "splits", None), "val", None)
    if val is None or len(val) == 0:
        raise UserError("best-iteration selection needs a validation split; set select_best: false")
    return float(evaluate(ctx.net, val, config=trainer.config, device="cpu")["accuracy"])

def layer_report(engine: PruningEngine, p: float = 0.5, q: float = 1.0) -> list[dict]:
    """Density and PQ index (over the active weights) of every layer."""
    out = []
    for layer in engine.layers:
        mask = layer.mask.mask
        out.append({"layer": layer.info.name, "density": float(mask.mean().item()),
                    "active": int(mask.sum().item()),
                    "pq_index": layer_pq(layer.weight, mask, p, q)})
    return out


def density(engine: PruningEngine) -> float:
    return 1.0 - engine.weight_sparsity()


class SparseMethod(Method):
    """Base of the sparse-from-scratch methods: ER init, rewiring rounds, best-iteration selection."""

    structured = False
    config_class = SparseConfig

    def rounds(self, config: SparseConfig, target: float) -> list[Round]:
        plan = [Round(i, target, config.epochs_per_step) for i in range(config.iterations)]
        if config.select_best:
            plan.append(Round(config.iterations, target, 0))
        return plan

    def initial_density(self, config: SparseConfig, target: float) -> float:
        return config.init_density

    def prune(self, ctx, config: SparseConfig, rnd: Round) -> dict:
        if rnd.index == 0:
            info = self.initialise(ctx, config, self.initial_density(config, rnd.target))
        else:
            info = self.validate(ctx, config, rnd.index - 1)
            if rnd.index >= config.iterations:
                info.update(self.select(ctx))
            else:
                info.update(self.rewire(ctx, config, rnd))
        info["density"] = density(ctx.engine)
        info["layers"] = layer_report(ctx.engine, *self.pq_params(config))
        return info

    def pq_params(self, config) -> tuple[float, float]:
        return getattr(config, "p", 0.5), getattr(config, "q", 1.0)

    # ----- steps ---------------------------------------------------------------------------------------------------
    def initialise(self, ctx, config: SparseConfig, target_density: float) -> dict:
        """Erdos-Renyi per-layer densities (exact counts per layer); random entries, or each layer's largest."""
        engine = ctx.engine
        shapes = [tuple(layer.mask.mask.shape) for layer in engine.layers]
        dens = er_densities(shapes, target_density, config.init)
        keep = {layer.info.index: min(n, max(1, int(round(d * n))))
                for layer, d in zip(engine.layers, dens, strict=True) for n in [layer.mask.mask.numel()]}
        if config.init_select == "magnitude" and descent.wants_descent(engine, config.cut_substeps):
            extra = {"descent": descend_to(ctx, config, keep)}
        else:
            engine.prune_selected(self.outside_initial(ctx, config, keep))
            extra = {}
        engine.record("sparse_init", init=config.init, density=density(engine))
        return {"step": "init", "init": config.init, **extra}

    @staticmethod
    def outside_initial(ctx, config: SparseConfig, keep: dict[int, int]) -> dict[int, torch.Tensor]:
        """Per layer, the live flat indices outside its ``keep`` initial entries (random, or its largest ``|w|``)."""
        selection = {}
        for layer in ctx.engine.layers:
            n, k = layer.mask.mask.numel(), keep[layer.info.index]
            if config.init_select == "magnitude":
                order = torch.argsort(layer.weight.detach().abs().reshape(-1), descending=True, stable=True)
            else:
                order = torch.randperm(n, generator=ctx.generator)
            live = layer.mask.mask.view(-1)[order[k:]] != 0
            selection[layer.info.index] = torch.sort(order[k:][live]).values
        return selection

    def validate(self, ctx, config: SparseConfig, iteration: int) -> dict:
        if not config.select_best:
            return {}
        state = run_state(ctx)
        accuracy = validation_accuracy(ctx)
        state.validated.append((iteration, accuracy))
        if accuracy > state.best_accuracy:
            state.best_accuracy, state.best_iteration = accuracy, iteration
            state.best_state = {k: v.detach().clone() for k, v in ctx.net.state_dict().items()}
        return {"validated_iteration": iteration, "val_accuracy": accuracy}

    def select(self, ctx) -> dict:
        """Restore the iteration with the best validation accuracy (weights and masks)."""
        state = run_state(ctx)
        if state.best_state is not None:
            ctx.net.load_state_dict(state.best_state)
            ctx.engine.after_step()
        ctx.engine.record("select_best", iteration=state.best_iteration, val_accuracy=state.best_accuracy,
                          candidates=[i for i, _ in state.validated])
        return {"step": "select", "selected_iteration": state.best_iteration,
                "selected_val_accuracy": state.best_accuracy,
                "candidates": [i for i, _ in state.validated]}

    def rewire(self, ctx, config: SparseConfig, rnd: Round) -> dict:
        raise NotImplementedError

    # ----- shared rewiring ----------------------------------------------------------------------------------------
    def apply(self, ctx, config: SparseConfig, prune_counts: dict[int, torch.Tensor],
              regrow_counts: Callable[[dict[int, torch.Tensor]], dict[int, torch.Tensor]],
              grow_score: Callable[[], dict[int, torch.Tensor]], min_density: float = 0.0) -> dict:
        """Prune ``prune_counts`` (per group, per row) smallest-|w| active weights, then regrow at zero.

        ``regrow_counts`` turns the pruned counts (per group, per row) into regrowth counts; ``grow_score`` is
        called after pruning. A last pass regrows the best-scored positions of all layers until the overall
        density is at least ``min_density`` (the target-density stop).
        """
        engine = ctx.engine
        gs = groups(engine, config.scope)
        before, w = masks(engine), weights(engine)
        pruned_sel: dict[int, torch.Tensor] = {}
        pruned_rows: dict[int, torch.Tensor] = {}
        for n, g in enumerate(gs):
            chosen = pick_per_row(g.rows(w).abs(), g.rows(before) != 0, prune_counts[n], largest=False)
            pruned_rows[n] = chosen.sum(1)
            pruned_sel.update(g.split(chosen, engine))
        engine.prune_selected(pruned_sel)
        grow, score = regrow_counts(pruned_rows), grow_score()
        after = masks(engine)
        regrow_sel: dict[int, torch.Tensor] = {}
        for n, g in enumerate(gs):
            free = g.rows(after) == 0
            fresh = free & (g.rows(before) == 0) if config.exclude_regrow_pruned else free
            chosen = pick_per_row(g.rows(score), fresh, grow[n], largest=True)
            # a unit with too few never-active positions (e.g. a dense layer) regrows just-pruned ones for the rest
            chosen |= pick_per_row(g.rows(score), free & ~chosen, grow[n] - chosen.sum(1), largest=True)
            regrow_sel.update(g.split(chosen, engine))
        engine.regrow_weights(regrow_sel, init="zero")
        topped = self.top_up(engine, score, min_density, before if config.exclude_regrow_pruned else None)
        return {"step": "rewire", "pruned": sum(int(v.numel()) for v in pruned_sel.values()),
                "regrown": sum(int(v.numel()) for v in regrow_sel.values()) + topped}

    @staticmethod
    def top_up(engine: PruningEngine, score: dict[int, torch.Tensor], min_density: float,
               before: dict[int, torch.Tensor] | None) -> int:
        """Regrow the best-scored inactive positions of all layers until the density reaches ``min_density``."""
        total = sum(layer.mask.mask.numel() for layer in engine.layers)
        need = int(math.ceil(min_density * total - 1e-9)) - sum(int(layer.mask.mask.sum()) for layer in engine.layers)
        if need <= 0:
            return 0
        g = Group([layer.info.index for layer in engine.layers], "global")
        eligible = g.rows(masks(engine)) == 0
        if before is not None and int((eligible & (g.rows(before) == 0)).sum()) >= need:
            eligible &= g.rows(before) == 0  # prefer positions that were not just pruned
        chosen = pick_per_row(g.rows(score), eligible, torch.tensor([need]), largest=True)
        selection = g.split(chosen, engine)
        engine.regrow_weights(selection, init="zero")
        return sum(int(v.numel()) for v in selection.values())
