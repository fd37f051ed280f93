"""Grad R (Chen et al., IJCAI 2021): joint learning of connectivity and weights by gradient rewiring.

Every prunable synapse weight gets a fixed sign ``s`` and a hidden strength ``theta``; the synapse uses
``w = s * max(theta, 0)``, so ``theta <= 0`` means the connection is absent. The strength follows the *redefined*
gradient ``s * dL/dw`` (the Heaviside factor of the true gradient dropped), so absent synapses keep learning and regrow
when ``theta`` turns positive; a Laplace prior centred at ``mu = ln(2(1 - p)) / alpha`` pulls strengths below zero
(spec: ``docs/pruning-methods.md`` section 4, checked against the authors' ``gradrewire.py``).

On the shared engine: the engine's mask of a layer *is* the connectivity ``theta > 0`` and the stored weight holds
``s * theta`` (the authors' "hidden parameter"), so ``stored * mask = s * max(theta, 0)`` exactly, pruned strengths
keep their (negative) value, and reports, resume, export and resource estimates see an ordinary masked network.
:class:`RewiringAdam` also runs Deep R and soft Deep R (:mod:`snndeploy.prune.deepr`) on the same representation.
Weight normalisation is folded into the plain weight when the engine attaches its mask (the spec's
``weight_norm=False``); the Loihi 8-bit quantiser (``pre_hook_fx``) acts after the reparametrisation, so
:func:`connectivity` reports the fraction of live synapses before and after quantisation. Parameters outside the
engine's selection (neuron parameters, biases, delays, excluded layers) get plain Adam in the same optimizer.

Choices beyond the authors' code (config keys where they matter): a weight the engine had already pruned starts at
``theta = 0`` (absent, free to regrow); weights exactly 0 at the start keep sign 0 and never grow, as in the code,
unless ``zero_sign: free`` (an imported 8-bit network has many exact zeros); a round's ``pruned`` / ``regrown``
counts are net changes of the mask over the round, not every flip within it.
"""

from __future__ import annotations

import dataclasses
import math
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from snndeploy.errors import UserError
from snndeploy.prune import config as cfglib
from snndeploy.prune import descent
from snndeploy.prune.engine import PruningEngine
from snndeploy.prune.methods import Method, Round, descend_to, register

RULES = ("gradr", "deepr", "soft_deepr")
ZERO_SIGNS = ("dead", "free")
STATE_NAME = "rewiring"


def prior_center(alpha: float, target: float) -> float:
    """``mu`` of the Laplace(mu, 1/alpha) prior whose mass below 0 equals the target sparsity ``p`` (p >= 0.5)."""
    if not 0.5 <= target < 1.0:
        raise ValueError(f"Grad R needs a target sparsity p in [0.5, 1) (mu = ln(2(1-p))/alpha <= 0), got {target}")
    if alpha <= 0:
        raise ValueError(f"the prior strength alpha must be > 0, got {alpha}")
    return math.log(2.0 * (1.0 - target)) / alpha


def soft_floor(alpha: float, temperature: float, target: float) -> float | None:
    """Soft Deep R's lower bound on strengths, ``-T^2 p / (2 alpha (1 - p))`` (None: unbounded)."""
    if alpha <= 0 or target >= 1:
        return None
    return -(0.5 * temperature ** 2 * target) / (alpha * (1.0 - target))


@dataclass(frozen=True)
class RewiringHyper:
    """The update rule and its constants (one set for all rewired layers)."""

    rule: str = "gradr"  # gradr | deepr | soft_deepr
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    alpha: float = 1e-3  # Grad R: Laplace prior strength; Deep R: L1 penalty
    target: float = 0.95  # Grad R: p of the prior; Deep R: maximal dormant fraction per layer
    temperature: float = 0.0  # Deep R noise scale (the authors' T = sqrt(2 T_paper)); 0 as in their code
    rewire_value: float = 1e-8  # Deep R: |w| of a reactivated connection (sign kept; authors: +eps)
    log_every: int = 10  # optimizer steps between connectivity-trajectory points
    zero_sign: str = "dead"  # weights exactly 0 at the start: dead (sign 0, as the authors) | free (random sign)
    allocation: str = "layer"  # Deep R: how the target is shared among layers (layer: the authors' same p everywhere)

    def __post_init__(self) -> None:
        if self.zero_sign not in ZERO_SIGNS:
            raise ValueError(f"zero_sign must be one of {', '.join(ZERO_SIGNS)}, got {self.zero_sign!r}")
        if self.rule not in RULES:
            raise ValueError(f"unknown rewiring rule {self.rule!r}; choose one of {', '.join(RULES)}")


class RewiringAdam(torch.optim.Optimizer):
    """Adam with the rewiring rule on the engine's masked synapse weights and plain Adam on ``others``.

    The Adam moments of a rewired tensor are computed from the ordinary gradient ``dL/dw`` at *every* position
    (the engine's dense gradient, so absent synapses are included); :meth:`step` then updates the hidden parameter
    ``s * theta`` (the stored weight) and the engine mask ``theta > 0`` (Deep R: ``w != 0``).
    """

    def __init__(self, engine: PruningEngine, others: Iterable[nn.Parameter], hyper: RewiringHyper,
                 seed: int = 0, start: bool = True):
        self.hyper = hyper
        self.layers = list(engine.layers)
        rewired = [layer.weight for layer in self.layers]
        ids = {id(p) for p in rewired}
        plain = [p for p in others if p.requires_grad and id(p) not in ids]
        groups = [{"params": rewired, "rewire": True}]
        if plain:
            groups.append({"params": plain, "rewire": False})
        super().__init__(groups, {"lr": hyper.lr, "betas": hyper.betas, "eps": hyper.eps})
        self.generator = torch.Generator().manual_seed(seed)
        self.mu = prior_center(hyper.alpha, hyper.target) if hyper.rule == "gradr" and hyper.alpha > hyper.eps \
            else None
        self.floor = soft_floor(hyper.alpha, hyper.temperature, hyper.target) if hyper.rule == "soft_deepr" else None
        # Deep R's fixed connection count per layer: (1 - p_layer) * size, p_layer the layer's share of the target
        self.layer_target = {layer.info.index: group_target for group, group_target
                             in engine.weight_groups(hyper.target, hyper.allocation) for layer in group}
        self.steps = 0
        self.trajectory: list[list[float]] = []  # [optimizer step, connectivity]
        self.reported = 0  # trajectory points already handed to a round's history entry
        engine.track_gradients(True)
        if start:
            self.start()

    # ----- state -------------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Fix the signs and hidden strengths from the current weights (a resumed run loads its state instead)."""
        for layer in self.layers:
            self._init_layer(layer)
        self.log_point()

    def _init_layer(self, layer) -> None:
        """Sign and hidden strength from the current weights: ``theta = |w|`` where live, 0 where already pruned."""
        state = self.state[layer.weight]
        if state:
            return
        w = layer.weight.detach()
        mask = layer.mask.mask
        state["step"] = 0
        state["exp_avg"] = torch.zeros_like(w)
        state["exp_avg_sq"] = torch.zeros_like(w)
        state["sign"] = torch.sign(w)
        zero = state["sign"] == 0
        if self.hyper.zero_sign == "free" and zero.any():  # e.g. an imported 8-bit network's exact zeros
            coin = torch.rand(w.shape, generator=self.generator).to(w.device) < 0.5
            state["sign"][zero] = torch.where(coin, 1.0, -1.0).to(w.dtype)[zero]
        with torch.no_grad():
            if self.hyper.rule == "deepr":  # dormant connections hold exactly 0
                w.mul_(mask)
                w.mul_(self._largest(w, self._count(layer)))
            else:  # stored = s * theta; an already pruned entry starts at theta = 0 (absent, free to regrow)
                w.copy_(state["sign"] * w.abs() * mask)
            mask.copy_(self._live(layer))

    def _count(self, layer) -> int:
        """Deep R: the layer's fixed number of active connections."""
        return int(round((1.0 - self.layer_target[layer.info.index]) * layer.weight.numel()))

    def counts(self) -> dict[int, int]:
        """Deep R: every layer's fixed number of active connections (per block index)."""
        return {layer.info.index: self._count(layer) for layer in self.layers}

    @staticmethod
    def _largest(w: torch.Tensor, count: int) -> torch.Tensor:
        """0/1: the ``count`` largest ``|w|`` (all of ``w`` if it has no more non-zero entries than that).

        Why: the authors start Deep R from a random init holding its connection count; a trained dense network
        starts from its largest weights instead (as SET and RigL do with ``init_select: magnitude``), or it would
        never go below full connectivity: Deep R only wakes connections, sign changes alone remove them."""
        keep = torch.ones_like(w)
        if int((w != 0).sum()) > count:
            keep.view(-1).zero_()
            keep.view(-1)[torch.topk(w.abs().reshape(-1), count).indices] = 1.0
        return keep

    def _live(self, layer) -> torch.Tensor:
        w, sign = layer.weight.detach(), self.state[layer.weight]["sign"]
        live = (w != 0) if self.hyper.rule == "deepr" else (sign * w > 0)
        return live.to(layer.mask.mask.dtype)

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["rewiring"] = {"generator": self.generator.get_state(), "steps": self.steps,
                             "trajectory": [list(p) for p in self.trajectory], "reported": self.reported}
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        extra = state_dict.pop("rewiring")
        super().load_state_dict(state_dict)
        self.generator.set_state(extra["generator"])
        self.steps = int(extra["steps"])
        self.trajectory = [list(p) for p in extra["trajectory"]]
        self.reported = int(extra["reported"])
        for layer in self.layers:
            layer.mask.mask.copy_(self._live(layer))

    # ----- update ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if group["rewire"]:
                for layer in self.layers:
                    if layer.weight.grad is not None:
                        self._rewire(layer, group)
                    layer.mask.dense_grad.zero_()
            else:
                for p in group["params"]:
                    if p.grad is not None:
                        self._adam(p, group)
        self.steps += 1
        if self.steps % self.hyper.log_every == 0:
            self.log_point()
        return loss

    def _moments(self, p: torch.Tensor, grad: torch.Tensor, group: dict) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Update Adam's moments; returns (exp_avg, denominator, bias-corrected step size)."""
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        for key, value in state.items():  # the trainer may move the network after the state was made
            if isinstance(value, torch.Tensor) and value.device != p.device:
                state[key] = value.to(p.device)
        beta1, beta2 = group["betas"]
        state["step"] += 1
        t = state["step"]
        state["exp_avg"].mul_(beta1).add_(grad, alpha=1 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (state["exp_avg_sq"].sqrt() / math.sqrt(1 - beta2 ** t)).add_(group["eps"])
        return state["exp_avg"], denom, group["lr"] / (1 - beta1 ** t)

    def _adam(self, p: nn.Parameter, group: dict) -> None:
        m, denom, step = self._moments(p, p.grad, group)
        p.addcdiv_(m, denom, value=-step)

    def _rewire(self, layer, group: dict) -> None:
        w = layer.weight.data
        mask = layer.mask.mask
        grad = layer.mask.dense_grad  # dL/dw_eff at every position (dense)
        m, denom, step = self._moments(layer.weight, grad, group)
        sign = self.state[layer.weight]["sign"]
        h = self.hyper
        if h.rule == "gradr":
            theta_before = sign * w
            # theta <- theta - s * Delta: the redefined gradient, also for absent synapses (s^2 keeps s = 0 at 0)
            w.addcdiv_(m * sign * sign, denom, value=-step)
            if self.mu is not None:  # prior step, not divided by Adam's denominator; sign taken before this step
                w.add_(sign * torch.sign(theta_before - self.mu), alpha=-h.alpha * step)
        elif h.rule == "soft_deepr":
            active = mask
            w.addcdiv_(m * active, denom, value=-step)
            w.add_(sign * active, alpha=-h.alpha * step)
            if h.temperature > 0:
                w.add_(self._noise(w), alpha=h.temperature * math.sqrt(step))
            theta = sign * w
            if self.floor is not None:
                theta.clamp_(min=self.floor)
            w.copy_(sign * theta)
        else:  # deepr
            active = mask
            w.addcdiv_(m * active, denom, value=-step)
            w.add_(sign * active, alpha=-h.alpha * step)
            if h.temperature > 0:
                w.add_(self._noise(w) * active, alpha=h.temperature * math.sqrt(step))
            w.copy_(sign * torch.clamp(sign * w * active, min=0.0))  # a connection that changed sign dies
            self._reactivate(w, sign, self._count(layer))
        mask.copy_(self._live(layer))

    def _noise(self, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(like.shape, generator=self.generator).to(like.device, like.dtype)

    def _reactivate(self, w: torch.Tensor, sign: torch.Tensor, want: int) -> None:
        """Deep R: wake exactly as many random dormant connections as the layer lacks to its target count.

        As in the authors' code, the number of active connections is held at ``(1 - p) * size`` after every
        step (``p`` the layer's share of the target under ``allocation``): the shortfall is made up by that many
        dormant connections drawn uniformly without replacement.
        """
        active = int((w != 0).sum())
        candidates = torch.nonzero(((w == 0) & (sign != 0)).reshape(-1)).view(-1)  # zero sign: never a weight
        count = min(want - active, candidates.numel())
        if count <= 0:
            return
        pick = candidates[torch.randperm(candidates.numel(), generator=self.generator)[:count].to(w.device)]
        flat, signs = w.view(-1), sign.reshape(-1)
        flat[pick] = signs[pick] * self.hyper.rewire_value

    # ----- connectivity ------------------------------------------------------------------------------------------
    def take_trajectory(self) -> list[list[float]]:
        """The trajectory points not handed out yet (each round's history entry gets its own)."""
        points = [list(p) for p in self.trajectory[self.reported:]]
        self.reported = len(self.trajectory)
        return points

    def log_point(self) -> None:
        self.trajectory.append([self.steps, connectivity(self.layers)["connectivity"]])


def connectivity(layers) -> dict:
    """Fraction of live synapses over the engine's layers (``engine.layers``), before and after ``pre_hook_fx``.

    ``quantized`` counts the weights the Loihi 8-bit quantiser keeps non-zero (small weights round to 0).
    """
    per_layer, total, live, live_q = [], 0, 0, 0
    with torch.no_grad():
        for layer in layers:
            synapse = layer.block.synapse
            w = synapse.weight  # effective weight (mask applied)
            hook = getattr(synapse, "_pre_hook_fx", None)
            wq = hook(w) if hook is not None else w
            n, a, q = w.numel(), int((w != 0).sum()), int((wq != 0).sum())
            per_layer.append({"layer": layer.info.name, "weights": n, "connectivity": a / n, "quantized": q / n})
            total, live, live_q = total + n, live + a, live_q + q
    return {"connectivity": live / total, "quantized": live_q / total, "per_layer": per_layer}


# ----- the method ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GradRConfig(cfglib.PruneConfig):
    """Grad R: train ``epochs`` epochs with the rewiring optimizer; the target sparsity is the prior's ``p``.

    The inherited ``schedule``, ``steps``, ``rate``, ``epochs_per_step`` and ``scope`` do not apply (connectivity is
    learned, not scheduled). ``epochs_per_round``: a resume point and a history entry after each such block.
    """

    epochs: int = 10
    epochs_per_round: int = 1
    lr: float = 1e-3
    alpha: float = 1e-3  # Laplace prior strength (the authors' -penalty); sweep it for the accuracy-connectivity curve
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    log_every: int = 10
    zero_sign: str = "dead"  # weights exactly 0 at the start: dead (never grow, as the authors) | free (random sign)
    # the rewiring rule's prior, noise and rewire value are in the weights' own units, so its rate is one absolute lr
    lr_rule: str = "absolute"

    def __post_init__(self) -> None:
        _check_common(self)


def _check_common(config) -> None:
    if config.epochs < 1 or config.epochs_per_round < 1 or config.log_every < 1:
        raise UserError("epochs, epochs_per_round and log_every must be >= 1")
    if not (0 <= config.beta1 < 1 and 0 <= config.beta2 < 1) or config.eps <= 0:
        raise UserError("beta1 and beta2 must be within [0, 1) and eps > 0")
    if config.alpha < 0:
        raise UserError(f"alpha must be >= 0, got {config.alpha}")
    if config.lr_rule != "absolute":
        raise UserError(f"lr_rule must be absolute for the rewiring methods (one rate, lr), got {config.lr_rule!r}")
    if config.zero_sign not in ZERO_SIGNS:
        raise UserError(f"zero_sign must be one of {', '.join(ZERO_SIGNS)}, got {config.zero_sign!r}")


_OPTIMIZERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@register
class GradRMethod(Method):
    """Gradient rewiring: prune and regrow continuously during one training run, no fine-tuning stage."""

    name = "gradr"
    config_class = GradRConfig
    structured = False
    rule = "gradr"
    cuts_at_start = False  # whether starting the optimizer removes weights (Deep R's fixed connection count)

    def hyper(self, config, target: float) -> RewiringHyper:
        return RewiringHyper(rule=self.rule, lr=config.lr, betas=(config.beta1, config.beta2), eps=config.eps,
                             alpha=config.alpha, target=target, log_every=config.log_every,
                             zero_sign=config.zero_sign)

    def check_target(self, target: float) -> None:
        if not 0.5 <= target < 1.0:
            raise UserError(f"Grad R needs --target-sparsity within [0.5, 1) (the prior's centre "
                            f"ln(2(1-p))/alpha must be <= 0), got {target}")

    def rounds(self, config, target: float) -> list[Round]:
        self.check_target(target)
        count = math.ceil(config.epochs / config.epochs_per_round)
        return [Round(i, target, 0) for i in range(count)]  # the epochs run inside prune()

    def optimizer(self, ctx, config, target: float) -> RewiringAdam:
        """The run's optimizer, made once per engine (its state is saved and restored with the engine's)."""
        engine = ctx.engine
        if engine not in _OPTIMIZERS:
            opt = RewiringAdam(engine, ctx.net.parameters(), self.hyper(config, target), seed=config.seed,
                               start=False)
            _OPTIMIZERS[engine] = opt
            if not engine.attach_state(STATE_NAME, opt):
                self.cut(ctx, config, opt)
                opt.start()
        return _OPTIMIZERS[engine]

    def cut(self, ctx, config, opt: RewiringAdam) -> None:
        """Deep R: its fixed connection counts reached in refitted sub-steps (snndeploy.prune.descent) before the
        optimizer starts; Grad R cuts nothing."""
        if self.cuts_at_start and descent.wants_descent(ctx.engine, config.cut_substeps):
            ctx.engine.record("descent", **descend_to(ctx, config, opt.counts()))

    def prune(self, ctx, config, rnd: Round) -> dict:
        opt = self.optimizer(ctx, config, rnd.target)
        # the weights were removed when the optimizer started: limit the drive before training
        drive = ctx.limit_drive(config.drive_limit) if self.cuts_at_start else None
        engine = ctx.engine
        epochs = min(config.epochs_per_round, config.epochs - rnd.index * config.epochs_per_round)
        before = {layer.info.index: layer.mask.mask.clone() for layer in engine.layers}
        last = (rnd.index + 1) * config.epochs_per_round >= config.epochs
        steps = ctx.trainer.train_epochs(ctx.net, opt, epochs, engine.after_step, seed_offset=rnd.index,
                                         anneal=config.lr_decay == "final" and last)
        cost = getattr(ctx, "cost", None)
        if cost is not None:
            cost.epochs += epochs
            cost.optimizer_steps += steps
        pruned = sum(int(((before[lay.info.index] == 1) & (lay.mask.mask == 0)).sum()) for lay in engine.layers)
        regrown = sum(int(((before[lay.info.index] == 0) & (lay.mask.mask == 1)).sum()) for lay in engine.layers)
        conn = connectivity(engine.layers)
        engine.record(self.name, epochs=epochs, connectivity=conn["connectivity"],
                      connectivity_quantized=conn["quantized"], pruned=pruned, regrown=regrown)
        return {"epochs": epochs, "optimizer_steps": steps, "connectivity": conn["connectivity"],
                "connectivity_quantized": conn["quantized"], "pruned": pruned, "regrown": regrown,
                "per_layer_connectivity": conn["per_layer"], "trajectory": opt.take_trajectory(),
                **({"drive": drive} if drive is not None else {})}


# ----- CLI and report helpers ----------------------------------------------------------------------------------

REWIRING_METHODS = ("gradr", "deepr", "soft_deepr")


def with_alpha(method: Method, config, alpha: float | None):
    """``--alpha`` on the command line: the prior strength (Grad R) or L1 penalty (Deep R), over the config's."""
    if alpha is None:
        return config
    if method.name not in REWIRING_METHODS:
        raise UserError(f"--alpha applies to {', '.join(REWIRING_METHODS)}, not to {method.name} "
                        "(set its hyperparameters with --config)")
    if alpha < 0:
        raise UserError(f"--alpha must be >= 0, got {alpha}")
    return dataclasses.replace(config, alpha=float(alpha))


def plot_connectivity(ax, history: list[dict]) -> None:
    """Connectivity over optimizer steps (and after 8-bit quantisation, and accuracy, at each round's end)."""
    xs, ys, ends, offset = [], [], [], 0
    for h in history:
        for step, conn in h.get("trajectory", []):
            xs.append(step)
            ys.append(100 * conn)
        offset += h.get("optimizer_steps", 0)
        ends.append(offset)
    ax.plot(xs, ys, "-", label="connectivity")
    ax.plot(ends, [100 * h["connectivity_quantized"] for h in history], "s", ms=4, label="after 8-bit quantisation")
    ax.set_yscale("log")  # the interesting part is often below 1 %
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("connectivity (%)")
    ax.set_title("connectivity over training")
    ax.grid(alpha=0.3)
    if any("accuracy" in h for h in history):
        twin = ax.twinx()
        pts = [(e, 100 * h["accuracy"]) for e, h in zip(ends, history, strict=True) if "accuracy" in h]
        twin.plot([p[0] for p in pts], [p[1] for p in pts], "o--", color="tab:red", ms=4, label="accuracy")
        twin.set_ylabel("test accuracy (%)", color="tab:red")
    ax.legend(fontsize=7, loc="lower left")
