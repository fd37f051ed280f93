"""SCA: structured pruning by spiking-channel activity, with channel regrowth during training (Li et al., ICML 2024).

Importance of channel ``c`` of layer ``l`` is its mean membrane-potential magnitude
``I_c = mean_{n,t,h,w} |U_{n,c,h,w}[t]|``, accumulated over the training batches since the last structure update
(Dense blocks: each neuron is a channel); ``activity: positive`` counts depolarisation only, ``mean max(U, 0)``,
the default: a lava-dl CUBA neuron resets to 0 after a spike, so ``|U|`` (``activity: abs``, the spec's) also
rates silent, strongly inhibited channels highly (docs/benchmarks.md: it collapses). Pruned channels come back by
``G_c = mean over batches |dL/dg_c|``, the gradient of their channel gate (the lava-dl substitute for the
BatchNorm scale; it stays non-zero for a pruned channel because the gate multiplies intact weights, and the gate
folds into the weights at export). Sigma-delta (graded) blocks use their pre-activation ``sigma + bias`` as ``U``:
``positive`` is then exactly the channel's graded activation (the ReLU output its deltas encode).

Schedule (the spec's proposed defaults, docs/pruning-methods.md sections 3.3 and 7 item 6; the paper's exact schedule
could not be checked): dense training for ``warmup_epochs``; then every ``epochs_per_step`` epochs a structure
update until ``ramp_end`` of training, with the target channel sparsity on the Zhu & Gupta cubic ramp
``s(t) = s_f (1 - (1 - (t - t0) / (t_end - t0))^3)``. An update prunes, per layer, the lowest-``I`` live channels down
to ``s(t) (1 + f(t))`` and regrows the highest-``G`` pruned channels back to ``s(t)``, with
``f(t) = (alpha_r / 2)(1 + cos(pi t / t_end))``. The remaining epochs train the final structure; the runner then
shrinks the network physically. The readout layer's outputs are never pruned (the engine only selects layers whose
channels feed another layer).

Statistics are accumulated by hooks during the runner's own training epochs and attached to the engine state, so
that a resumed run continues with the same numbers. Everything runs on :class:`snndeploy.prune.engine.PruningEngine`.
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass

import torch
from torch import nn

from snndeploy.errors import UserError
from snndeploy.prune import config as cfglib
from snndeploy.prune.criticality import per_channel_mean, record_voltages
from snndeploy.prune.engine import SCOPES, PruningEngine
from snndeploy.prune.methods import Method, Round, register
from snndeploy.train import distributed
from snndeploy.train.loop import cosine_decay

STATE_NAME = "sca"
UPDATE = "sca_update"
RAMPS = ("cubic", "linear")
ACTIVITIES = ("abs", "positive")
GATE_INITS = ("reset", "restore")


@dataclass(frozen=True)
class SCAConfig(cfglib.PruneConfig):
    """SCA hyperparameters. ``epochs_per_step`` is the update period in epochs; ``steps`` and ``rate`` are unused."""

    schedule: str = "cubic"  # target ramp between warmup and ramp_end: cubic (Zhu & Gupta) | linear
    scope: str = "layer"  # layer: rank within each layer (default) | global: on per-layer z-scored scores
    epochs: int = 20  # total training epochs of the run
    warmup_epochs: int = 5  # dense epochs before the ramp starts (t0)
    ramp_end: float = 0.75  # fraction of the epochs at which the target is reached; no updates afterwards
    epochs_per_step: int = 1  # update period in epochs (delta T)
    regrow_fraction: float = 0.3  # alpha_r: regrown channels per update = f(t) * pruned target, cosine-decayed
    regrow_gate: str = "reset"  # regrown gate: reset to 1 | restore (its value if pruned in the same update, else 1)
    calib_batches: int = 10  # batches for scores when no training pass was observed before an update
    # positive: mean max(U, 0), depolarisation only (default: |U| rates silent, inhibited channels highly, see the
    # module docstring) | abs: mean |U| (the spec's)
    activity: str = "positive"

    def __post_init__(self) -> None:
        def bad(problem: str) -> UserError:
            return UserError(f"invalid sca config: {problem}")

        if self.schedule not in RAMPS:
            raise bad(f"schedule must be one of {', '.join(RAMPS)}, got {self.schedule!r}")
        if self.scope not in SCOPES:
            raise bad(f"scope must be one of {', '.join(SCOPES)}, got {self.scope!r}")
        if self.activity not in ACTIVITIES:
            raise bad(f"activity must be one of {', '.join(ACTIVITIES)}, got {self.activity!r}")
        if self.regrow_gate not in GATE_INITS:
            raise bad(f"regrow_gate must be one of {', '.join(GATE_INITS)}, got {self.regrow_gate!r}")
        if self.epochs_per_step < 1 or self.warmup_epochs < 0 or self.calib_batches < 1:
            raise bad("epochs_per_step and calib_batches must be >= 1, warmup_epochs >= 0")
        if not 0.0 < self.ramp_end <= 1.0 or not 0.0 <= self.regrow_fraction <= 1.0:
            raise bad("ramp_end must be in (0, 1] and regrow_fraction in [0, 1]")
        if self.warmup_epochs + self.epochs_per_step > _last_epoch(self):
            raise bad(f"no structure update fits: warmup_epochs ({self.warmup_epochs}) + epochs_per_step "
                      f"({self.epochs_per_step}) must be <= min(ramp_end * epochs, epochs - 1) "
                      f"({self.ramp_end} * {self.epochs})")


def _last_epoch(config: SCAConfig) -> int:
    """Latest epoch boundary an update may use: the ramp end, and at least one epoch of training after it."""
    return min(round(config.ramp_end * config.epochs), config.epochs - 1)


# ----- schedule ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Phase:
    """One round of the run: epochs ``[start, end)``; a structure update at ``start`` when ``update``."""

    start: int
    end: int
    update: bool
    target: float  # channel sparsity in force during the phase
    regrow: float  # f(t) of the update at ``start`` (0 without an update)


def update_epochs(config: SCAConfig) -> list[int]:
    """Epoch boundaries at which the structure is updated (the last one reaches the final target)."""
    t0, dt = config.warmup_epochs, config.epochs_per_step
    n = max(1, (_last_epoch(config) - t0) // dt)
    return [t0 + k * dt for k in range(1, n + 1)]


def target_at(config: SCAConfig, final: float, epoch: int) -> float:
    """Target channel sparsity ``s(t)`` at an epoch boundary."""
    updates = update_epochs(config)
    t0, t_end = config.warmup_epochs, updates[-1]
    progress = min(max((epoch - t0) / (t_end - t0), 0.0), 1.0)
    return final * (1.0 - (1.0 - progress) ** 3) if config.schedule == "cubic" else final * progress


def regrow_at(config: SCAConfig, epoch: int) -> float:
    """Regrowth fraction ``f(t) = (alpha_r / 2)(1 + cos(pi t / t_end))`` (0 at the last update)."""
    t_end = update_epochs(config)[-1]
    return config.regrow_fraction * cosine_decay(epoch, t_end)


def plan(config: SCAConfig, final: float) -> list[Phase]:
    """Rounds of one epoch outside the ramp and of ``epochs_per_step`` epochs inside it."""
    updates = update_epochs(config)
    starts = sorted(set(range(0, config.warmup_epochs + 1)) | set(updates)
                    | set(range(updates[-1], config.epochs)))
    starts = [s for s in starts if s < config.epochs]
    phases, current = [], 0.0
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else config.epochs
        update = start in updates
        if update:
            current = target_at(config, final, start)
        phases.append(Phase(start, end, update, current, regrow_at(config, start) if update else 0.0))
    return phases


# ----- statistics --------------------------------------------------------------------------------------------------

class ChannelTracker:
    """Per-channel ``sum |U|`` (membrane potential) and ``sum |dL/dgate|`` of the engine's layers since a start.

    While observing, hooks add every pass with gradients enabled (training, gradient calibration), not evaluation.
    The tracker is attached to the engine's state, so the runner's resume state carries the sums.
    """

    def __init__(self, engine: PruningEngine):
        self.engine = engine
        self.round: int | None = None
        self.activity_kind = "abs"
        self.sizes = {layer.info.index: layer.mask.channel_mask.numel() for layer in engine.layers}
        self.names = {layer.info.index: layer.info.name for layer in engine.layers}
        self._clear()
        self._stack: contextlib.ExitStack | None = None

    def _clear(self) -> None:
        self.activity = {i: torch.zeros(n, dtype=torch.float64) for i, n in self.sizes.items()}
        self.act_n = dict.fromkeys(self.sizes, 0)
        self.grad = {i: torch.zeros(n, dtype=torch.float64) for i, n in self.sizes.items()}
        self.grad_n = dict.fromkeys(self.sizes, 0)

    def start(self, round_index: int, activity: str = "abs") -> None:
        """Forget earlier sums and observe from now on (for the update after round ``round_index``)."""
        if activity not in ACTIVITIES:
            raise ValueError(f"unknown activity measure {activity!r}; choose one of {', '.join(ACTIVITIES)}")
        self.stop()
        self._clear()
        self.round = round_index
        self.activity_kind = activity
        stack = contextlib.ExitStack()
        stack.enter_context(record_voltages(self.engine.net, list(self.sizes), self._on_voltage))
        for layer in self.engine.layers:
            if layer.mask.gate is None:
                stack.close()
                raise ValueError(f"{layer.info.name}: SCA needs channel gates (a structured engine with gates)")
            handle = layer.mask.gate.register_hook(lambda g, i=layer.info.index: self._on_grad(i, g))
            stack.callback(handle.remove)
        self._stack = stack

    def stop(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def _on_voltage(self, i: int, voltage: torch.Tensor) -> None:
        if torch.is_grad_enabled():
            total, n = per_channel_mean(voltage.abs() if self.activity_kind == "abs" else voltage.clamp(min=0))
            self.activity[i] += total.detach().to("cpu", torch.float64)
            self.act_n[i] += n

    def _on_grad(self, i: int, grad: torch.Tensor) -> None:
        self.grad[i] += grad.detach().abs().to("cpu", torch.float64)
        self.grad_n[i] += 1

    def stats(self, round_index: int) -> ChannelStats | None:
        """Mean statistics observed for round ``round_index``; None if it saw no training pass.

        Under DDP the sums and counts of all ranks (each observed its own batches) are added first, so every rank
        ranks the same means."""
        if self.round != round_index:
            return None
        activity, act_n, grad, grad_n = {}, {}, {}, {}
        for i in self.sizes:
            sums = _rank_sum(torch.cat([self.activity[i], self.grad[i],
                                        torch.tensor([self.act_n[i], self.grad_n[i]], dtype=torch.float64)]))
            n = self.sizes[i]
            activity[i], grad[i], act_n[i], grad_n[i] = sums[:n], sums[n:2 * n], sums[2 * n], sums[2 * n + 1]
        if any(act_n[i] == 0 or grad_n[i] == 0 for i in self.sizes):
            return None
        return ChannelStats({i: activity[i] / act_n[i] for i in self.sizes},
                            {i: grad[i] / grad_n[i] for i in self.sizes})

    def state_dict(self) -> dict:
        return {"round": self.round, "layers": {
            self.names[i]: {"activity_sum": self.activity[i].clone(), "activity_count": self.act_n[i],
                            "gate_grad_sum": self.grad[i].clone(), "gate_grad_batches": self.grad_n[i]}
            for i in self.sizes}}

    def load_state_dict(self, state: dict) -> None:
        self.round = state["round"]
        for i, name in self.names.items():
            data = state["layers"][name]
            self.activity[i] = data["activity_sum"].clone().to(torch.float64)
            self.act_n[i] = int(data["activity_count"])
            self.grad[i] = data["gate_grad_sum"].clone().to(torch.float64)
            self.grad_n[i] = int(data["gate_grad_batches"])


def _rank_sum(values: torch.Tensor) -> torch.Tensor:
    return distributed.all_reduce_sum(values.clone()) if distributed.world_size() > 1 else values


@dataclass(frozen=True)
class ChannelStats:
    """Per layer (block index): mean ``|U|`` per channel and mean ``|dL/dgate|`` per channel."""

    activity: dict[int, torch.Tensor]
    gate_grad: dict[int, torch.Tensor]


_TRACKERS: weakref.WeakKeyDictionary[PruningEngine, ChannelTracker] = weakref.WeakKeyDictionary()


def tracker(engine: PruningEngine) -> ChannelTracker:
    """The engine's tracker (made and attached to the engine state on first use; a resumed state is loaded)."""
    found = _TRACKERS.get(engine)
    if found is None:
        found = _TRACKERS[engine] = ChannelTracker(engine)
        engine.attach_state(STATE_NAME, found)
    return found


def observe(engine: PruningEngine, round_index: int, activity: str = "abs") -> ChannelTracker:
    """Start accumulating statistics for the update that follows round ``round_index``."""
    found = tracker(engine)
    found.start(round_index, activity)
    return found


def stop_observing(engine: PruningEngine) -> None:
    found = _TRACKERS.get(engine)
    if found is not None:
        found.stop()


def latest_stats(engine: PruningEngine, round_index: int) -> ChannelStats | None:
    """Statistics observed during round ``round_index`` (None if that round observed nothing)."""
    return tracker(engine).stats(round_index)


# ----- one structure update ----------------------------------------------------------------------------------------

def zscore(score: torch.Tensor, among: torch.Tensor) -> torch.Tensor:
    """``score`` standardised by the mean and std of its ``among`` entries (a boolean mask)."""
    ref = score[among] if bool(among.any()) else score
    std = ref.std() if ref.numel() > 1 else torch.tensor(0.0, dtype=score.dtype)
    return (score - ref.mean()) / (std if float(std) > 0 else 1.0)


def _pruned(layer) -> torch.Tensor:
    return torch.nonzero(layer.mask.channel_mask == 0).view(-1)


def regrow_selection(engine: PruningEngine, gate_grad: dict[int, torch.Tensor], target: float,
                     scope: str = "layer") -> dict[int, torch.Tensor]:
    """Pruned channels with the largest gate gradient, enough to bring channel sparsity back down to ``target``."""
    if scope == "layer":
        out = {}
        for layer in engine.layers:
            pruned = _pruned(layer)
            excess = pruned.numel() - int(round(target * layer.mask.channel_mask.numel()))
            if excess > 0:
                top = torch.topk(gate_grad[layer.info.index][pruned], excess).indices
                out[layer.info.index] = torch.sort(pruned[top]).values
        return out
    total = sum(layer.mask.channel_mask.numel() for layer in engine.layers)
    pruned = [_pruned(layer) for layer in engine.layers]
    excess = sum(p.numel() for p in pruned) - int(round(target * total))
    if excess <= 0:
        return {}
    values = torch.cat([zscore(gate_grad[layer.info.index], torch.ones_like(layer.mask.channel_mask, dtype=torch.bool))
                        [p] for layer, p in zip(engine.layers, pruned, strict=True)])
    owner = torch.cat([torch.full((p.numel(),), n) for n, p in enumerate(pruned)])
    flat = torch.cat(pruned)
    top = torch.topk(values, excess).indices
    return {layer.info.index: torch.sort(flat[top][owner[top] == n]).values
            for n, layer in enumerate(engine.layers) if bool((owner[top] == n).any())}


def prune_scores(engine: PruningEngine, activity: dict[int, torch.Tensor], scope: str) -> dict[int, torch.Tensor]:
    """Activity as the prune ranking: raw per layer; z-scored over each layer's live channels for global ranking."""
    if scope == "layer":
        return activity
    return {layer.info.index: zscore(activity[layer.info.index], layer.mask.channel_mask != 0)
            for layer in engine.layers}


def zero_norm_state(engine: PruningEngine) -> None:
    """Zero per-channel norm buffers (lava-dl MeanOnlyBatchNorm ``running_mean``) of pruned channels.

    The engine zeroes norm *parameters* (biases); a running mean is a buffer and would act as a bias at evaluation.
    Once zero it stays zero: a pruned channel's current is zero, so the running mean decays towards zero.
    """
    for layer in engine.layers:
        norm = getattr(getattr(layer.block, "neuron", None), "norm", None)
        if not isinstance(norm, nn.Module):
            continue
        keep = layer.mask.channel_mask
        with torch.no_grad():
            for buf in norm.buffers(recurse=False):
                if buf.dim() == 1 and buf.numel() == keep.numel() and buf.is_floating_point():
                    buf.mul_(keep.to(buf.device, buf.dtype))


def live_channels(engine: PruningEngine) -> dict[str, int]:
    return {layer.info.name: int(layer.mask.channel_mask.sum().item()) for layer in engine.layers}


def update(engine: PruningEngine, stats: ChannelStats, target: float, regrow: float, scope: str = "layer",
           min_channels: int = 1, regrow_gate: str = "reset", min_width: float = 0.0) -> dict:
    """Prune the least active live channels to ``target * (1 + regrow)``, regrow by gate gradient to ``target``."""
    over = min(target * (1.0 + regrow), 1.0)
    pruned = engine.prune_channels(over, prune_scores(engine, stats.activity, scope), scope, min_channels, min_width)
    regrown = regrow_selection(engine, stats.gate_grad, target, scope)
    engine.regrow_channels(regrown, init=regrow_gate)
    zero_norm_state(engine)
    info = {"target": target, "over_target": over, "regrow_fraction": regrow,
            "pruned": int(sum(v.numel() for v in pruned.values())),
            "regrown": int(sum(v.numel() for v in regrown.values())), "live_channels": live_channels(engine)}
    engine.record(UPDATE, **info)
    return info


# ----- the method --------------------------------------------------------------------------------------------------

@register
class SCAMethod(Method):
    """Spiking channel activity pruning with gate-gradient regrowth, updated during training."""

    name = "sca"
    config_class = SCAConfig
    structured = True
    needs_gradients = True

    def rounds(self, config: SCAConfig, target: float) -> list[Round]:
        return [Round(i, p.target, p.end - p.start) for i, p in enumerate(plan(config, target))]

    def prune(self, ctx, config: SCAConfig, rnd: Round) -> dict:
        engine = ctx.engine
        phases = plan(config, 0.0)  # epochs and updates do not depend on the target; rnd.target is s(t)
        phase = phases[rnd.index]
        stop_observing(engine)
        info: dict = {"epoch": phase.start, "update": phase.update}
        if phase.update:
            stats = latest_stats(engine, rnd.index - 1)
            if stats is None:  # nothing observed before this update (no warmup, or the run started here)
                observe(engine, -1 - rnd.index, config.activity)
                ctx.accumulate_gradients(config.calib_batches)
                stop_observing(engine)
                stats = latest_stats(engine, -1 - rnd.index)
                if stats is None:
                    raise UserError("SCA could not measure channel activity: the training data gave no batch")
                info["calibrated"] = True
            info.update(update(engine, stats, rnd.target, phase.regrow, config.scope, config.min_channels,
                               config.regrow_gate, config.min_width))
        else:
            info["live_channels"] = live_channels(engine)
        if rnd.index + 1 < len(phases) and phases[rnd.index + 1].update:
            observe(engine, rnd.index, config.activity)
        return info

