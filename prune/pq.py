"""PQ index (Diao et al. 2023) and the PQ-guided adaptive rewiring of Shen et al. (ICLR 2025).

For the active entries ``w`` (``d`` of them) of one scope unit (a neuron's fan-in, a layer, or the whole network):

* PQ index ``I = 1 - M_p(|w|) / M_q(|w|)`` with power means ``M_s = (mean |w|^s)^(1/s)`` and ``0 < p < q``
  (equal to ``1 - d^(1/q - 1/p) ||w||_p / ||w||_q``). ``I`` lies in ``[0, 1 - d^(1/q - 1/p)]``: 0 for a constant
  vector, the maximum for a one-hot one; it is invariant to scaling and to duplicating the vector.
* Bound on the weights worth keeping: ``r = ceil(d (1 + eta)^(-q/(q-p)) (1 - I)^(qp/(q-p)))``.
* Adaptive rewiring ratio: ``c = clip(gamma (1 - r/d), 0, beta)``.

Stage II of the method prunes ``floor(c d)`` smallest-magnitude active weights of each unit and regrows (by default)
``floor(c * pruned)`` inactive positions of the unit with the largest momentum of the dense gradient, at zero; see
:mod:`snndeploy.prune.sparse` for the shared sparse-training machinery and :mod:`snndeploy.prune.set_rigl` for the
baselines.

The paper leaves several points open (docs/pruning-methods.md section 7); each is a :class:`PQConfig` key whose
default is the proposal there: ``p, q, gamma, beta`` = 0.5, 1.0, 1.2, 0.9 and ``eta`` (alpha_r) = 0.001 (item 10);
``regrow: ratio`` = c x pruned, or ``same`` / ``none`` (item 11); ``iterations`` x ``epochs_per_step`` = 10 x 20,
keeping the best iteration on the validation split (``select_best``, item 12); ``init_density`` 0.5 with ``init: er``;
``scope`` neuron | layer | global. Adaptations to the engine: the momentum is an exponential average
(``momentum_beta``) of the dense gradient of the effective weight, measured on ``momentum_batches`` training batches
before each rewiring (``momentum_source: calibration``) or during the iteration's training (``training``), because
the engine's masks make the optimizer's own moments zero at pruned positions; the runner starts a fresh Adam every
iteration. ``--sparsity`` is an optional target-density stop (``at_target``: freeze the mask, or ``hold`` it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from snndeploy.errors import UserError
from snndeploy.prune import sparse
from snndeploy.prune.methods import register
from snndeploy.prune.sparse import pq_index


def pq_index_max(d: int, p: float = 0.5, q: float = 1.0) -> float:
    """Largest possible PQ index of ``d`` entries (reached by a one-hot vector)."""
    return 1.0 - d ** (1.0 / q - 1.0 / p) if d > 0 else 0.0


def keep_bound(index: torch.Tensor, d: torch.Tensor, p: float = 0.5, q: float = 1.0, eta: float = 0.001
               ) -> torch.Tensor:
    """Lower bound ``r`` on the number of weights worth keeping in units with PQ index ``index`` and ``d`` weights."""
    index = torch.as_tensor(index, dtype=torch.float64)
    d = torch.as_tensor(d, dtype=torch.float64)
    r = d * (1.0 + eta) ** (-q / (q - p)) * (1.0 - index).clamp(min=0.0) ** (q * p / (q - p))
    return torch.minimum(torch.ceil(r - 1e-9), d)  # 1e-9: float noise must not add a weight


def rewiring_ratio(index: torch.Tensor, d: torch.Tensor, p: float = 0.5, q: float = 1.0, eta: float = 0.001,
                   gamma: float = 1.2, beta: float = 0.9) -> torch.Tensor:
    """Adaptive ratio ``c = clip(gamma (1 - r/d), 0, beta)`` (0 for empty units)."""
    d = torch.as_tensor(d, dtype=torch.float64)
    r = keep_bound(index, d, p, q, eta)
    ratio = gamma * (1.0 - r / d.clamp(min=1))
    return torch.where(d > 0, ratio.clamp(0.0, beta), torch.zeros_like(d))



def check_pq_params(p: float, q: float, eta: float, gamma: float, beta: float) -> None:
    if not 0 < p < q:
        raise ValueError(f"PQ index needs 0 < p < q, got p={p}, q={q}")
    if eta < 0 or gamma < 0 or not 0 <= beta <= 1:
        raise ValueError("eta and gamma must be >= 0 and beta within [0, 1]")
    if not math.isfinite(eta + gamma + beta):
        raise ValueError("PQ parameters must be finite")


# ----- the method ---------------------------------------------------------------------------------------------------

REGROW = ("ratio", "same", "none")


@dataclass(frozen=True)
class PQConfig(sparse.SparseConfig):
    """PQ-index adaptive rewiring (Shen et al. 2025); defaults are the spec's proposals (section 7, items 10-12).

    ``--sparsity`` is an optional target-density stop (0: none): once the density reaches ``1 - sparsity`` the
    mask is frozen (``at_target: freeze``) or keeps being rewired at that density (``hold``).
    """

    choices: ClassVar[dict[str, tuple[str, ...]]] = {**sparse.SparseConfig.choices, "regrow": REGROW,
                                                      "momentum_source": sparse.MOMENTUM_SOURCES,
                                                      "at_target": sparse.AT_TARGET}
    scope: str = "neuron"  # neuron | layer | global scope units
    p: float = 0.5
    q: float = 1.0
    eta: float = 0.001  # alpha_r, the tolerance of the keep bound
    gamma: float = 1.2
    beta: float = 0.9  # cap on the per-iteration rewiring ratio
    regrow: str = "ratio"  # ratio: regrow c * pruned (spec item 11) | same: density kept | none: prune only
    momentum_source: str = "calibration"  # calibration: momentum over fresh batches | training: during training
    momentum_batches: int = 20  # calibration batches (also the fallback after a resume in training mode)
    momentum_beta: float = 0.9
    at_target: str = "freeze"  # freeze | hold, after the target-density stop

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            check_pq_params(self.p, self.q, self.eta, self.gamma, self.beta)
        except ValueError as exc:
            raise UserError(f"method config: {exc}") from exc
        for key, choices in (("regrow", REGROW), ("momentum_source", sparse.MOMENTUM_SOURCES),
                             ("at_target", sparse.AT_TARGET)):
            if getattr(self, key) not in choices:
                raise UserError(f"method config: {key} must be one of {', '.join(choices)}")
        if self.momentum_batches < 1 or not 0.0 <= self.momentum_beta < 1.0:
            raise UserError("method config: momentum_batches must be >= 1 and momentum_beta in [0, 1)")


@dataclass(frozen=True)
class FixedRatioConfig(PQConfig):
    """The same rewiring with one fixed ratio ``ratio`` for every unit (the baseline of the adaptive ratio)."""

    ratio: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.ratio <= 1.0:
            raise UserError("method config: ratio must be in [0, 1]")


def unit_ratios(engine, config: PQConfig) -> list[dict]:
    """Per scope group: PQ index, active count, keep bound and rewiring ratio of every unit (row)."""
    current, w = sparse.masks(engine), sparse.weights(engine)
    out = []
    for g in sparse.groups(engine, config.scope):
        m = g.rows(current)
        d = (m != 0).sum(1)
        index = pq_index(g.rows(w), m, config.p, config.q)
        bound = keep_bound(index, d, config.p, config.q, config.eta)
        ratio = rewiring_ratio(index, d, config.p, config.q, config.eta, config.gamma, config.beta)
        out.append({"group": g, "active": d, "index": index, "bound": bound, "ratio": ratio})
    return out


@register
class PQMethod(sparse.SparseMethod):
    """Sparse from scratch; every iteration prune each unit by its PQ-index ratio and regrow by momentum."""

    name = "pq"
    config_class = PQConfig

    def ratios(self, units: list[dict], config: PQConfig) -> list[torch.Tensor]:
        return [u["ratio"] for u in units]

    def pq_params(self, config):
        return config.p, config.q

    def rewire(self, ctx, config: PQConfig, rnd) -> dict:
        engine = ctx.engine
        state = sparse.run_state(ctx)
        stop = 1.0 - rnd.target if rnd.target > 0 else 0.0
        at_target = rnd.target > 0 and sparse.density(engine) <= stop + 0.5 / _total(engine)
        if at_target and config.at_target == "freeze":
            self._stop_tracker(state)
            return {"step": "frozen", "at_target": True}
        units = unit_ratios(engine, config)
        ratios = self.ratios(units, config)
        prune = {n: torch.floor(r * u["active"].to(torch.float64)).to(torch.long)
                 for n, (u, r) in enumerate(zip(units, ratios, strict=True))}
        mode = "same" if at_target else config.regrow

        def regrow(pruned: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
            if mode == "same":
                return pruned
            if mode == "none":
                return {n: torch.zeros_like(v) for n, v in pruned.items()}
            return {n: torch.floor(ratios[n] * v.to(torch.float64)).to(torch.long) for n, v in pruned.items()}

        source = self._momentum_source(state, config)
        momentum = self._momentum(ctx, state, config, source)
        info = self.apply(ctx, config, prune, regrow, lambda: {i: m.abs() for i, m in momentum.items()},
                          min_density=stop)
        info.update({"momentum_source": source, "at_target": bool(rnd.target > 0 and sparse.density(engine)
                                                                   <= stop + 0.5 / _total(engine)),
                     "units": _unit_summary(engine, units, ratios)})
        if config.momentum_source == "training":
            state.tracker = sparse.MomentumTracker(engine, config.momentum_beta).start()
        return info

    def initialise(self, ctx, config, target_density):
        info = super().initialise(ctx, config, target_density)
        if config.momentum_source == "training":
            sparse.run_state(ctx).tracker = sparse.MomentumTracker(ctx.engine, config.momentum_beta).start()
        return info

    @staticmethod
    def _momentum_source(state, config) -> str:
        tracker = getattr(state, "tracker", None)
        if config.momentum_source == "training" and tracker is not None:
            tracker.flush()
            if tracker.batches > 0:
                return "training"
        return "calibration"  # also the fallback when a resumed run has no training momentum yet

    def _momentum(self, ctx, state, config, source: str) -> dict[int, torch.Tensor]:
        tracker = getattr(state, "tracker", None)
        if source == "training":
            tracker.stop()
            state.tracker = None
            return tracker.value()
        self._stop_tracker(state)
        return sparse.calibration_momentum(ctx, config.momentum_batches, config.momentum_beta)

    @staticmethod
    def _stop_tracker(state) -> None:
        tracker = getattr(state, "tracker", None)
        if tracker is not None:
            tracker.stop()
            state.tracker = None


@register
class FixedRatioMethod(PQMethod):
    """Fixed-ratio rewiring: PQ's prune-by-magnitude / regrow-by-momentum with one constant ratio."""

    name = "fixed"
    config_class = FixedRatioConfig

    def ratios(self, units, config):
        return [torch.where(u["active"] > 0, torch.full_like(u["ratio"], config.ratio), torch.zeros_like(u["ratio"]))
                for u in units]


def _total(engine) -> int:
    return sum(layer.mask.mask.numel() for layer in engine.layers)


def _unit_summary(engine, units: list[dict], ratios: list[torch.Tensor]) -> list[dict]:
    """Per layer: mean PQ index and ratio of its units (before rewiring), and the keep bound over its units."""
    out = []
    for u, ratio in zip(units, ratios, strict=True):
        g = u["group"]
        live = u["active"] > 0
        name = engine.by_index(g.layers[0]).info.name if len(g.layers) == 1 else "global"
        out.append({"unit": name, "units": int(live.numel()),
                    "pq_index_mean": float(u["index"][live].mean()) if live.any() else 0.0,
                    "ratio_mean": float(ratio[live].mean()) if live.any() else 0.0,
                    "keep_bound": int(u["bound"].sum()), "active": int(u["active"].sum())})
    return out
