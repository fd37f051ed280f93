"""SET (Mocanu et al. 2018) and RigL (Evci et al. 2020) on the sparse-training base (:mod:`snndeploy.prune.sparse`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from snndeploy.errors import UserError
from snndeploy.prune.methods import register
from snndeploy.prune.sparse import SparseConfig, SparseMethod, dense_gradient, groups, masks
from snndeploy.train.loop import cosine_decay


@dataclass(frozen=True)
class SETConfig(SparseConfig):
    """SET (Mocanu et al. 2018): drop the ``zeta`` smallest weights of each layer, regrow as many at random."""

    zeta: float = 0.3
    epochs_per_step: int = 1  # SET rewires after every training epoch (Mocanu et al. 2018)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.zeta < 1.0:
            raise UserError("method config: zeta must be in [0, 1)")


@dataclass(frozen=True)
class RigLConfig(SparseConfig):
    """RigL (Evci et al. 2020): drop a cosine-decayed fraction by magnitude, regrow by |dense gradient|."""

    init: str = "erk"
    alpha: float = 0.3  # drop fraction at the first rewiring
    end_fraction: float = 0.75  # no rewiring after this fraction of the iterations
    grad_batches: int = 1  # batches whose dense gradient scores regrowth

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (0.0 <= self.alpha < 1.0 and 0.0 < self.end_fraction <= 1.0 and self.grad_batches >= 1):
            raise UserError("method config: alpha must be in [0, 1), end_fraction in (0, 1], grad_batches >= 1")


@register
class SETMethod(SparseMethod):
    """SET: every ``epochs_per_step`` epochs drop ``zeta`` of each layer's weights by magnitude, regrow randomly."""

    name = "set"
    config_class = SETConfig

    def rounds(self, config, target):
        _constant_density(self.name, target)  # checked before anything runs or is written
        return super().rounds(config, target)

    def initial_density(self, config, target):
        return _constant_density(self.name, target)

    def rewire(self, ctx, config, rnd):
        counts = drop_counts(ctx.engine, config.scope, config.zeta)
        return self.apply(ctx, config, counts, lambda pruned: pruned,
                          lambda: {layer.info.index: torch.rand(layer.mask.mask.shape, generator=ctx.generator)
                                   for layer in ctx.engine.layers}) | {"drop_fraction": config.zeta}


@register
class RigLMethod(SparseMethod):
    """RigL: drop a cosine-decayed fraction by magnitude, regrow where the dense gradient is largest."""

    name = "rigl"
    config_class = RigLConfig

    def rounds(self, config, target):
        _constant_density(self.name, target)
        return super().rounds(config, target)

    def initial_density(self, config, target):
        return _constant_density(self.name, target)

    def rewire(self, ctx, config, rnd):
        end = config.end_fraction * config.iterations
        fraction = config.alpha * cosine_decay(rnd.index, end) if rnd.index < end else 0.0
        counts = drop_counts(ctx.engine, config.scope, fraction)
        if fraction <= 0.0:
            return {"step": "rewire", "pruned": 0, "regrown": 0, "drop_fraction": 0.0}
        grads = dense_gradient(ctx, config.grad_batches)  # at the weights before the drop, as RigL does
        return self.apply(ctx, config, counts, lambda pruned: pruned, lambda: {i: g.abs() for i, g in grads.items()}
                          ) | {"drop_fraction": fraction}


def drop_counts(engine, scope: str, fraction: float) -> dict[int, torch.Tensor]:
    """``floor(fraction * active)`` per scope unit."""
    current = masks(engine)
    out = {}
    for n, g in enumerate(groups(engine, scope)):
        active = (g.rows(current) != 0).sum(1)
        out[n] = torch.floor(active.to(torch.float64) * fraction).to(torch.long)
    return out


def _constant_density(name: str, target: float) -> float:
    if not 0.0 < target < 1.0:
        raise UserError(f"{name} keeps a constant sparsity: give --sparsity in (0, 1)")
    return 1.0 - target
