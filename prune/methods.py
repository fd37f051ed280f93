"""Pruning methods on the one engine, and their registry (a method registers itself; nothing else changes).

A method turns a target sparsity into rounds (prune [+ regenerate], then fine-tune), and prunes one round at a time
through a :class:`MethodContext` (the engine, the network and access to data: see :mod:`snndeploy.prune.runner`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from snndeploy.errors import UserError
from snndeploy.models.build import build_model
from snndeploy.prune import config as cfglib
from snndeploy.prune import criticality as critlib
from snndeploy.prune import descent, schedules, scores
from snndeploy.prune.cost import CostMeter
from snndeploy.prune.engine import PruningEngine, mean_over_ranks
from snndeploy.prune.finetune import Backend


@dataclass(frozen=True)
class Round:
    """One pruning step: reach ``target``, then fine-tune ``epochs`` (with an optional L1 penalty on gates)."""

    index: int
    target: float
    epochs: float
    l1: float = 0.0
    rewind: bool = False
    prune: bool = True
    fresh_optimizer: bool = False  # start this round's fine-tuning with a new Adam (default: the run's one carries on)


class MethodContext(Protocol):
    engine: PruningEngine
    net: nn.Module
    generator: torch.Generator
    cost: CostMeter
    trainer: Backend

    def set_rewind_point(self) -> None: ...

    def calibration_inputs(self, batches: int) -> list[torch.Tensor]: ...

    def accumulate_gradients(self, batches: int, before_reduce: Callable[[], None] | None = None) -> None: ...

    def limit_drive(self, limit: float) -> dict | None: ...


class Method:
    """Base: a name, a config class, whether it prunes channels, and how to plan and run rounds."""

    name = ""
    config_class: type = cfglib.PruneConfig
    structured: bool | None = None  # None: both; True/False: only that mode
    needs_gradients = False

    def rounds(self, config: cfglib.PruneConfig, target: float) -> list[Round]:
        targets = schedules.make(config.schedule, target, steps=config.steps, rate=config.rate)
        return [Round(i, t, config.epochs_per_step, l1=getattr(config, "l1", 0.0)) for i, t in enumerate(targets)]

    def prune(self, ctx: MethodContext, config: cfglib.PruneConfig, rnd: Round) -> dict:
        raise NotImplementedError


METHODS: dict[str, Method] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make a method available to ``snndeploy prune --method NAME``."""
    METHODS[cls.name] = cls()
    return cls


# ----- shared pruning primitives -------------------------------------------------------------------------------

def prune_by(ctx: MethodContext, config: cfglib.PruneConfig, target: float,
             weight_score: Callable[[], dict], channel_score: Callable[[], dict]) -> dict:
    engine = ctx.engine
    if engine.structured:
        chosen = prune_channels(engine, config, target, channel_score())
    else:
        chosen = engine.prune_weights(target, weight_score(), config.allocation)
    return {"pruned": int(sum(v.numel() for v in chosen.values()))}


def descend_to(ctx: MethodContext, config: cfglib.PruneConfig, final: dict[int, int]) -> dict:
    """Prune every layer to ``final[index]`` kept weights in ``config.cut_substeps`` refitted sub-steps
    (:func:`snndeploy.prune.descent.descend` on ``config.reconstruct_batches`` calibration batches)."""
    return descent.descend(ctx.engine, ctx.net, final, config.cut_substeps,
                           ctx.calibration_inputs(config.reconstruct_batches), config.reconstruct_damping)


def prune_channels(engine: PruningEngine, config: cfglib.PruneConfig, target: float,
                   score: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    """Structured pruning with the config's scope, per-layer normalisation (global scope) and minimum width."""
    if config.scope == "global":
        score = scores.normalise_channels(engine, score, config.channel_norm)
    return engine.prune_channels(target, score, config.scope, config.min_channels, config.min_width)


def _top_among(chosen: dict[int, torch.Tensor], score: dict[int, torch.Tensor], count: int) -> dict[int, torch.Tensor]:
    """The ``count`` best-scored entries among the just-pruned ``chosen`` (flat indices per layer)."""
    if count <= 0 or not chosen:
        return {}
    keys = sorted(chosen)
    values = torch.cat([score[i].reshape(-1).to(torch.float64)[chosen[i]] for i in keys])
    owner = torch.cat([torch.full((chosen[i].numel(),), n) for n, i in enumerate(keys)])
    flat = torch.cat([chosen[i] for i in keys])
    top = torch.topk(values, min(count, values.numel())).indices
    return {i: torch.sort(flat[top][owner[top] == n]).values for n, i in enumerate(keys)
            if bool((owner[top] == n).any())}


def select_regrowth(groups: list, chosen: dict[int, torch.Tensor], score: dict[int, torch.Tensor],
                    structured: bool) -> dict[int, torch.Tensor]:
    """The best-scored just-pruned entries of each ``(layers, target)`` group, as many as it is pruned past its
    target (flat indices, or channel indices when ``structured``, per layer)."""
    regrown: dict[int, torch.Tensor] = {}
    for group, group_target in groups:
        part = {layer.info.index: chosen[layer.info.index] for layer in group if layer.info.index in chosen}
        regrown.update(_top_among(part, score, _excess(group, structured, group_target)))
    return regrown


def _excess(group: list, structured: bool, target: float) -> int:
    """How many entries of ``group`` are pruned beyond ``target``."""
    masks = [layer.mask.channel_mask if structured else layer.mask.mask for layer in group]
    total = sum(m.numel() for m in masks)
    pruned = sum(int((m == 0).sum().item()) for m in masks)
    return pruned - int(round(target * total))


# ----- methods -------------------------------------------------------------------------------------------------

@register
class MagnitudeMethod(Method):
    """One-shot global magnitude pruning (structured: channel scale |gate| * mean |W[c]|) and fine-tuning."""

    name = "magnitude"
    config_class = cfglib.MagnitudeConfig

    def prune(self, ctx, config, rnd):
        if descent.wants_descent(ctx.engine, config.cut_substeps):
            final = descent.kept_at(ctx.engine, rnd.target, config.allocation, scores.weight_magnitude(ctx.engine))
            return {"descent": descend_to(ctx, config, final)}
        return prune_by(ctx, config, rnd.target, lambda: scores.weight_magnitude(ctx.engine),
                        lambda: scores.channel_scale(ctx.engine))


@register
class GMPMethod(MagnitudeMethod):
    name = "gmp"
    config_class = cfglib.GMPConfig


@register
class RandomMethod(Method):
    name = "random"
    config_class = cfglib.RandomConfig

    def prune(self, ctx, config, rnd):
        return prune_by(ctx, config, rnd.target, lambda: scores.weight_random(ctx.engine, ctx.generator),
                        lambda: scores.channel_random(ctx.engine, ctx.generator))


@register
class IMPMethod(MagnitudeMethod):
    """Iterative magnitude pruning with rewinding (lottery ticket): see :class:`snndeploy.prune.config.IMPConfig`.

    With ``rewind: init`` or ``epoch`` round 0 trains the architecture densely from a fresh (seeded) init and keeps
    the rewind point; every later round prunes ``rate`` of the remaining weights by magnitude, rewinds the survivors
    and trains ``epochs_per_step`` epochs with a fresh optimizer. All training, the dense run included, is counted.
    """

    name = "imp"
    config_class = cfglib.IMPConfig

    def rounds(self, config, target):
        rewind = config.rewind != "none"
        plan = [Round(r.index, r.target, r.epochs, rewind=rewind, fresh_optimizer=rewind)
                for r in super().rounds(config, target)]
        if config.rewind not in ("init", "epoch"):
            return plan
        return [Round(0, 0.0, 0)] + [dataclasses.replace(r, index=r.index + 1) for r in plan]

    def prune(self, ctx, config, rnd):
        if rnd.index == 0 and not rnd.rewind and config.rewind in ("init", "epoch"):  # the dense round
            return self.dense_training(ctx, config)
        return super().prune(ctx, config, rnd)

    def dense_training(self, ctx, config) -> dict:
        """Train from a fresh init; the rewind point is the init or the iterate after ``rewind_epoch`` epochs."""
        epochs = config.dense_epochs or config.epochs_per_step
        k = config.rewind_epoch if config.rewind == "epoch" else 0
        if k >= epochs and config.rewind == "epoch":
            raise UserError(f"imp: rewind_epoch ({k}) must be below the dense training epochs ({epochs})")
        reinitialise(ctx.net, config.seed)
        optimizer = torch.optim.Adam(ctx.net.parameters(), lr=config.dense_lr)
        steps = ctx.trainer.train_epochs(ctx.net, optimizer, k, ctx.engine.after_step, seed_offset=100_000) if k else 0
        ctx.set_rewind_point()
        steps += ctx.trainer.train_epochs(ctx.net, optimizer, epochs - k, ctx.engine.after_step, seed_offset=100_001)
        ctx.cost.epochs += epochs
        ctx.cost.optimizer_steps += steps
        return {"dense_epochs": epochs, "rewind_epoch": k, "optimizer_steps": steps}


def reinitialise(net: nn.Module, seed: int) -> None:
    """Fresh weights for ``net`` from its spec (lava-dl's initialisers, seeded); masks and gates stay as they are."""
    torch.manual_seed(seed)
    fresh = build_model(net.spec).state_dict()
    own = net.state_dict()
    state = {}
    for key, value in fresh.items():
        target = key if key in own else key.replace(".weight", ".parametrizations.weight.original")
        if target in own:
            state[target] = value
    net.load_state_dict(state, strict=False)


@register
class SlimmingMethod(Method):
    """Network slimming on channel gates: an L1-penalised training round, then prune the smallest gates."""

    name = "slimming"
    config_class = cfglib.SlimmingConfig
    structured = True

    def rounds(self, config, target):
        train = Round(0, 0.0, config.sparsity_epochs, l1=config.l1, prune=False)
        return [train] + [Round(r.index + 1, r.target, r.epochs) for r in super().rounds(config, target)]

    def prune(self, ctx, config, rnd):
        return prune_by(ctx, config, rnd.target, lambda: {}, lambda: scores.channel_scale(ctx.engine, by="gate"))


@register
class L1FilterMethod(Method):
    name = "l1filter"
    config_class = cfglib.L1FilterConfig
    structured = True

    def prune(self, ctx, config, rnd):
        return prune_by(ctx, config, rnd.target, lambda: {}, lambda: scores.channel_l1(ctx.engine))


@register
class CriticalityMethod(Method):
    """Prune by magnitude (channel scale) past the target, regenerate the most critical just-pruned structures."""

    name = "criticality"
    config_class = cfglib.CriticalityConfig
    needs_gradients = True

    def prune(self, ctx, config, rnd):
        engine = ctx.engine
        structured = engine.structured
        indices = [layer.info.index for layer in engine.layers]
        regen_score = None
        if config.regen == "criticality":  # measured before pruning: a pruned channel's voltage says nothing
            rates: dict | None = {} if scores.uses_rates(config.weight_score) else None
            crit = critlib.criticality(ctx.net, indices, ctx.calibration_inputs(config.calib_batches),
                                       config.kernel, config.alpha, rates=rates)
            crit = mean_over_ranks(crit)  # under DDP each rank measured its share of the batches
            if rates:
                rates = mean_over_ranks(rates)
            if structured:
                regen_score = crit
        elif config.regen == "gradient":
            engine.track_gradients(True)
            ctx.accumulate_gradients(config.calib_batches)
            engine.track_gradients(False)
            regen_score = (scores.channel_gradient(engine) if structured
                           else scores.weight_gradient(engine, engine.dense_grads()))
        current = engine.sparsity()
        margin = 0.0 if config.regen == "none" else config.delta * max(rnd.target - current, 0.0)
        # a large first step (few steps, delta * ds > 1 - s) would over-prune almost everything: cap the margin
        margin = min(margin, config.max_overprune * (1.0 - rnd.target))
        over = min(rnd.target + margin, 0.999)
        extra: dict = {}
        if structured:
            chosen = prune_channels(engine, config, over, scores.channel_scale(engine, config.channel_score))
        else:
            magnitude = scores.weight_magnitude(engine)
            chosen, extra = over_prune(ctx, config, over, magnitude)
            if config.regen == "criticality":  # after pruning: post_share ranks within the just-pruned set
                regen_score = scores.weight_criticality(engine, config.weight_score, crit, rates, chosen, magnitude)
        if config.regen == "random":
            regen_score = (scores.channel_random(engine, ctx.generator) if structured
                           else scores.weight_random(engine, ctx.generator))
        regrown: dict[int, torch.Tensor] = {}
        if regen_score is not None:
            # regrow back down to the target: over the layers ranked together, to each group's share of the target
            if structured:
                groups = ([(engine.layers, rnd.target)] if config.scope == "global"
                          else [([layer], rnd.target) for layer in engine.layers])
            else:
                groups = engine.weight_groups(rnd.target, config.allocation)
            regrown = select_regrowth(groups, chosen, regen_score, structured)
        if structured:
            engine.regrow_channels(regrown, init="restore")
        else:
            engine.regrow_weights(regrown, init=config.regrow_init)
        return {"over_target": over, "pruned": int(sum(v.numel() for v in chosen.values())),
                "regrown": int(sum(v.numel() for v in regrown.values())), "regen": config.regen, **extra}


def over_prune(ctx: MethodContext, config: cfglib.CriticalityConfig, over: float,
               magnitude: dict[int, torch.Tensor]) -> tuple[dict[int, torch.Tensor], dict]:
    """Criticality's magnitude cut to ``over`` (in refitted sub-steps with ``cut_substeps`` > 1); returns the
    just-pruned weights (flat indices per layer) and what the sub-steps did."""
    engine = ctx.engine
    if not descent.wants_descent(engine, config.cut_substeps):
        return engine.prune_weights(over, magnitude, config.allocation), {}
    before = {layer.info.index: layer.mask.mask.reshape(-1) != 0 for layer in engine.layers}
    final = descent.kept_at(engine, over, config.allocation, magnitude)
    # named apart from "descent": the regrowth that follows changes the network again, so the runner may refit it
    info = {"over_descent": descend_to(ctx, config, final)}
    chosen = {layer.info.index: torch.nonzero(before[layer.info.index] & (layer.mask.mask.reshape(-1) == 0)).view(-1)
              for layer in engine.layers}
    return chosen, info
