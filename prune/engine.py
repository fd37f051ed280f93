"""The mask engine every pruning method uses: prune and regrow weights or channels, keep masks through training.

Unstructured pruning zeroes entries of per-layer weight masks; structured pruning zeroes per-channel gates (one per
output channel / dense neuron). Masks act inside the forward (:mod:`snndeploy.prune.masks`), so they hold after any
optimizer step; stored weights keep their values, so regrowth can restore them; the dense gradient ``dL/dW_eff`` can
be tracked for gradient regrowth, and ``dL/dgate`` of pruned channels stays non-zero. Every call is recorded.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from snndeploy.models.build import clip_to_hook
from snndeploy.prune import masks as masklib
from snndeploy.prune import paths
from snndeploy.prune.graph import DependencyGraph, PrunableLayer, build_graph
from snndeploy.train import distributed

SCOPES = ("global", "layer")
# how unstructured pruning shares a weight budget among layers: erk (Erdos-Renyi-Kernel densities, Evci et al. 2020:
# a layer's density ~ (sum of its dimensions) / (its weight count), so small and low-fan-in layers such as a 10-way
# output keep more), global (one magnitude threshold over all layers), layer (the same sparsity in every layer)
ALLOCATIONS = ("erk", "global", "layer")


@dataclass(frozen=True)
class Selection:
    """Which layers take part: names like ``blocks.2`` or kinds (``dense``, ``conv``), fnmatch patterns allowed."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    exclude_first: bool = False
    exclude_last: bool = False

    def pick(self, layers: tuple[PrunableLayer, ...]) -> list[PrunableLayer]:
        def match(layer: PrunableLayer, pats: tuple[str, ...]) -> bool:
            return any(fnmatch.fnmatch(layer.name, p) or p == layer.kind for p in pats)

        chosen = [lay for lay in layers if (not self.include or match(lay, self.include))
                  and not match(lay, self.exclude)]
        if self.exclude_first and layers and layers[0] in chosen:
            chosen.remove(layers[0])
        if self.exclude_last and layers and layers[-1] in chosen:
            chosen.remove(layers[-1])
        return chosen


@dataclass
class _Snapshot:
    """Values of the entries pruned by the latest step, so that regrowth can restore them exactly."""

    index: torch.Tensor
    values: torch.Tensor


@dataclass
class MaskedLayer:
    info: PrunableLayer
    block: nn.Module
    mask: masklib.SynapseMask
    last_pruned: _Snapshot | None = None
    extra: dict = field(default_factory=dict)

    @property
    def weight(self) -> torch.Tensor:
        return masklib.stored_weight(self.block.synapse)


class PruningEngine:
    """Masks, gates, pruning, regrowth and records for one network."""

    def __init__(self, net: nn.Module, structured: bool = False, gates: bool = True,
                 selection: Selection | None = None, input_shape: tuple[int, ...] | None = None):
        self.net = net
        self.structured = structured
        self.graph: DependencyGraph = build_graph(net, input_shape)
        chosen = (selection or Selection()).pick(self.graph.layers)
        if structured:  # never prune the network's outputs: only layers whose channels feed another layer
            chosen = [lay for lay in chosen if self.graph.group(lay.index) is not None]
        if not chosen:
            raise ValueError("no prunable layer left after the include/exclude rules")
        self.layers: list[MaskedLayer] = []
        for info in chosen:
            block = net.blocks[info.index]
            mask = masklib.attach(block.synapse, gate=structured and gates)
            self.layers.append(MaskedLayer(info, block, mask))
        self.optimizer: torch.optim.Optimizer | None = None
        self.records: list[dict] = []
        self.step = 0
        self._state_owners: dict = {}  # name -> object with state_dict / load_state_dict (a method's optimizer)
        self._pending_state: dict = {}  # loaded state whose owner has not attached yet

    # ----- bookkeeping -------------------------------------------------------------------------------------------
    def bind_optimizer(self, optimizer: torch.optim.Optimizer | None) -> None:
        """Optimizer whose per-entry state is reset for pruned and regrown entries."""
        self.optimizer = optimizer

    def by_index(self, index: int) -> MaskedLayer:
        return next(layer for layer in self.layers if layer.info.index == index)

    def record(self, kind: str, **info) -> dict:
        entry = {"step": self.step, "kind": kind, **info}
        self.records.append(entry)
        return entry

    # ----- sparsity ----------------------------------------------------------------------------------------------
    def weight_sparsity(self) -> float:
        """Fraction of removed weights over the selected layers (structured: rows and dead input columns count)."""
        total = sum(layer.mask.mask.numel() for layer in self.layers)
        alive = sum(int(self.live_weight_mask(layer).sum().item()) for layer in self.layers)
        return 1.0 - alive / total

    def channel_sparsity(self) -> float:
        total = sum(layer.mask.channel_mask.numel() for layer in self.layers)
        alive = sum(int(layer.mask.channel_mask.sum().item()) for layer in self.layers)
        return 1.0 - alive / total

    def sparsity(self) -> float:
        """The quantity schedules drive: channel sparsity when structured, else weight sparsity."""
        return self.channel_sparsity() if self.structured else self.weight_sparsity()

    def live_weight_mask(self, layer: MaskedLayer) -> torch.Tensor:
        """0/1 tensor of the weights that still carry signal (mask, channel mask and dead inputs from upstream)."""
        live = layer.mask.mask * layer.mask.channel_mask.view(-1, *([1] * (layer.mask.mask.dim() - 1)))
        return self.without_dead_inputs(layer.info.index, live)

    def without_dead_inputs(self, index: int, live: torch.Tensor) -> torch.Tensor:
        """``live`` (a 0/1 mask of block ``index``'s weight) with the input columns fed by pruned channels at 0."""
        for up in self.layers:
            group = self.graph.group(up.info.index)
            if group is not None and group.consumer == index:
                dead = torch.nonzero(up.mask.channel_mask == 0).view(-1)
                if dead.numel():
                    live = live.clone()
                    live[:, self.graph.consumer_columns(group, dead)] = 0
        return live

    def outside_consumers(self) -> list[int]:
        """Blocks that take pruned channels as input but are not pruned themselves (a network's output layer)."""
        mine = {layer.info.index for layer in self.layers}
        groups = (self.graph.group(layer.info.index) for layer in self.layers)
        return sorted({g.consumer for g in groups if g is not None} - mine)

    def layer_stats(self) -> list[dict]:
        """Per pruned layer: weights, live weights (kept), effective weights (kept and on an input-to-output path),
        sparsity and channels."""
        on_path = self.effective_masks()
        stats = []
        for layer in self.layers:
            live = self.live_weight_mask(layer)
            stats.append({"layer": layer.info.name, "kind": layer.info.kind, "weights": live.numel(),
                          "live_weights": int(live.sum().item()),
                          "effective_weights": int((live.ne(0) & on_path[layer.info.index]).sum()),
                          "sparsity": 1.0 - float(live.mean().item()),
                          "channels": layer.mask.channel_mask.numel(),
                          "live_channels": int(layer.mask.channel_mask.sum().item())})
        return stats

    # ----- unstructured ------------------------------------------------------------------------------------------
    def prune_weights(self, target: float, scores: dict[int, torch.Tensor], scope: str = "global"
                      ) -> dict[int, torch.Tensor]:
        """Prune the lowest-scored live weights until ``target`` weight sparsity; returns newly pruned flat indices.

        ``scope`` (one of :data:`ALLOCATIONS`) says how the target is shared among the layers.
        """
        chosen = self.weights_to_prune(target, scores, scope)
        for index, flat_idx in chosen.items():
            self._prune_entries(self.by_index(index), flat_idx)
        self.record("prune_weights", target=target, scope=scope, sparsity=self.weight_sparsity(),
                    count={self.by_index(i).info.name: int(v.numel()) for i, v in chosen.items()})
        return chosen

    def weights_to_prune(self, target: float, scores: dict[int, torch.Tensor], scope: str = "global"
                         ) -> dict[int, torch.Tensor]:
        """The live flat indices (per layer index) that :meth:`prune_weights` would prune; nothing changes."""
        chosen: dict[int, torch.Tensor] = {}
        for group, group_target in self.weight_groups(target, scope):
            total = sum(layer.mask.mask.numel() for layer in group)
            pruned = sum(int((layer.mask.mask == 0).sum().item()) for layer in group)
            need = int(round(group_target * total)) - pruned
            if need <= 0:
                continue
            flat = torch.cat([_masked_scores(scores[layer.info.index], layer.mask.mask) for layer in group])
            picked = torch.topk(flat, need, largest=False, sorted=False).indices
            chosen.update(_split(picked, [layer.mask.mask.numel() for layer in group], group))
        return chosen

    def prune_selected(self, selection: dict[int, torch.Tensor]) -> None:
        """Prune exactly the given live flat indices (per layer index); an already pruned one is a ValueError."""
        count = sum(int(v.numel()) for v in selection.values())
        if count == 0:
            return
        total = sum(layer.mask.mask.numel() for layer in self.layers)
        pruned = sum(int((layer.mask.mask == 0).sum().item()) for layer in self.layers)
        scores = {}
        for layer in self.layers:  # chosen entries score -1, other live ones 0: the lowest `count` are the chosen
            s = torch.zeros(layer.mask.mask.numel(), dtype=torch.float64)
            idx = selection.get(layer.info.index)
            if idx is not None and idx.numel():
                if bool((layer.mask.mask.view(-1)[idx] == 0).any()):
                    raise ValueError(f"{layer.info.name}: cannot prune an entry that is already pruned")
                s[idx] = -1.0
            scores[layer.info.index] = s.view(layer.mask.mask.shape)
        self.prune_weights((pruned + count) / total, scores, scope="global")

    def weight_groups(self, target: float, allocation: str) -> list[tuple[list[MaskedLayer], float]]:
        """The layer groups ranked together and each group's sparsity target for an overall ``target``."""
        if allocation not in ALLOCATIONS:
            raise ValueError(f"unknown allocation {allocation!r}; choose one of {', '.join(ALLOCATIONS)}")
        if allocation == "global":
            return [(self.layers, target)]
        if allocation == "layer":
            return [([layer], target) for layer in self.layers]
        shapes = [tuple(layer.mask.mask.shape) for layer in self.layers]
        return [([layer], 1.0 - d) for layer, d in zip(self.layers, erk_densities(shapes, 1.0 - target), strict=True)]

    def _prune_entries(self, layer: MaskedLayer, flat_idx: torch.Tensor) -> None:
        weight = layer.weight.detach().reshape(-1)
        layer.last_pruned = _Snapshot(flat_idx.clone(), weight[flat_idx].clone())
        layer.mask.mask.view(-1)[flat_idx] = 0.0
        self._reset_state(layer.weight, flat_idx)

    def regrow_weights(self, selection: dict[int, torch.Tensor], init: str = "restore") -> None:
        """Re-enable the given flat weight indices; ``restore`` their values from before pruning, or ``zero`` them."""
        if init not in ("restore", "zero"):
            raise ValueError(f"regrow init must be 'restore' or 'zero', got {init!r}")
        for index, flat_idx in selection.items():
            layer = self.by_index(index)
            if flat_idx.numel() == 0:
                continue
            with torch.no_grad():
                stored = layer.weight.view(-1)
                if init == "zero":
                    stored[flat_idx] = 0.0
                elif layer.last_pruned is not None:
                    lookup = {int(k): n for n, k in enumerate(layer.last_pruned.index.tolist())}
                    pos = [lookup.get(int(k), -1) for k in flat_idx.tolist()]
                    known = torch.tensor([p >= 0 for p in pos])
                    if known.any():
                        stored[flat_idx[known]] = layer.last_pruned.values[torch.tensor(pos)[known]]
            layer.mask.mask.view(-1)[flat_idx] = 1.0
            self._reset_state(layer.weight, flat_idx)
        self.record("regrow_weights", init=init, sparsity=self.weight_sparsity(),
                    count={self.by_index(i).info.name: int(v.numel()) for i, v in selection.items()})

    def live_masks(self) -> dict[int, torch.Tensor]:
        """Per pruned layer (block index): :meth:`live_weight_mask`."""
        return {layer.info.index: self.live_weight_mask(layer) for layer in self.layers}

    def effective_masks(self) -> dict[int, torch.Tensor]:
        """Per pruned layer: bool, true where a position lies on an input-to-output path (:mod:`paths`)."""
        return paths.effective(self.net, self.graph, self.live_masks())

    def ineffective_share(self) -> float:
        """Share of the kept weights of all pruned layers that lie on no input-to-output path (0 when none is kept)."""
        stats = self.layer_stats()
        kept = sum(s["live_weights"] for s in stats)
        return 1.0 - sum(s["effective_weights"] for s in stats) / kept if kept else 0.0

    def reassign_ineffective(self) -> dict[str, int]:
        """Move every kept weight that lies on no input-to-output path to the largest stored-magnitude pruned
        position of its layer between neurons that stay live (as many as there are such positions; the layer's count
        stays); returns the moves per layer."""
        on_path, open_after = paths.effective_and_open(self.net, self.graph, self.live_masks())
        moved = {}
        for layer in self.layers:
            kept = layer.mask.mask.reshape(-1).ne(0)
            magnitude = layer.weight.detach().abs().reshape(-1).to(torch.float64)
            wasted = torch.nonzero(kept & ~on_path[layer.info.index].reshape(-1)).view(-1)
            free = torch.nonzero(~kept & open_after[layer.info.index].reshape(-1)).view(-1)
            count = min(wasted.numel(), free.numel())
            if count == 0:
                continue
            drop = wasted[torch.topk(magnitude[wasted], count, largest=False).indices]
            add = free[torch.topk(magnitude[free], count).indices]
            layer.mask.mask.view(-1)[drop] = 0.0
            layer.mask.mask.view(-1)[add] = 1.0  # the stored weight kept its value while pruned
            self._reset_state(layer.weight, torch.cat([drop, add]))
            moved[layer.info.name] = count
        self.record("reassign_ineffective", moved=moved, sparsity=self.weight_sparsity())
        return moved

    # ----- structured --------------------------------------------------------------------------------------------
    def prune_channels(self, target: float, scores: dict[int, torch.Tensor], scope: str = "global",
                       min_channels: int = 1, min_width: float = 0.0) -> dict[int, torch.Tensor]:
        """Prune the lowest-scored live channels until ``target`` channel sparsity.

        Every layer keeps at least ``max(min_channels, ceil(min_width * channels))`` of its channels.
        """
        _check_scope(scope)
        groups = [self.layers] if scope == "global" else [[layer] for layer in self.layers]
        chosen: dict[int, torch.Tensor] = {}
        for group in groups:
            total = sum(layer.mask.channel_mask.numel() for layer in group)
            pruned = sum(int((layer.mask.channel_mask == 0).sum().item()) for layer in group)
            need = int(round(target * total)) - pruned
            if need <= 0:
                continue
            flats = []
            for layer in group:
                s = _masked_scores(scores[layer.info.index], layer.mask.channel_mask)
                # keep the best min_channels live channels of every layer out of reach (already pruned ones are inf)
                live = torch.isfinite(s)
                floor = max(min_channels, math.ceil(min_width * s.numel() - 1e-9))
                keep = torch.topk(s.masked_fill(~live, float("-inf")), min(floor, int(live.sum()))).indices
                s = s.clone()
                s[keep] = float("inf")
                flats.append(s)
            flat = torch.cat(flats)
            need = min(need, int(torch.isfinite(flat).sum().item()))
            picked = torch.topk(flat, need, largest=False, sorted=False).indices
            chosen.update(_split(picked, [layer.mask.channel_mask.numel() for layer in group], group))
        for index, idx in chosen.items():
            self._prune_channels(self.by_index(index), idx)
        self.record("prune_channels", target=target, scope=scope, sparsity=self.channel_sparsity(),
                    channels={self.by_index(i).info.name: sorted(v.tolist()) for i, v in chosen.items()})
        return chosen

    def _prune_channels(self, layer: MaskedLayer, idx: torch.Tensor) -> None:
        gate = layer.mask.gate
        values = gate.detach()[idx].clone() if gate is not None else torch.ones(idx.numel())
        layer.last_pruned = _Snapshot(idx.clone(), values)
        layer.mask.channel_mask[idx] = 0.0
        layer.mask.hold()
        if gate is not None:
            self._reset_state(gate, idx)
        self._zero_norm_bias(layer)

    def regrow_channels(self, selection: dict[int, torch.Tensor], init: str = "restore") -> None:
        """Re-enable channels; ``restore`` their gate from before pruning, or ``reset`` it to 1."""
        if init not in ("restore", "reset"):
            raise ValueError(f"channel regrow init must be 'restore' or 'reset', got {init!r}")
        for index, idx in selection.items():
            layer = self.by_index(index)
            if idx.numel() == 0:
                continue
            layer.mask.channel_mask[idx] = 1.0
            gate = layer.mask.gate
            if gate is not None:
                with torch.no_grad():
                    gate[idx] = 1.0
                    if init == "restore" and layer.last_pruned is not None:
                        lookup = {int(k): float(v) for k, v in zip(layer.last_pruned.index.tolist(),
                                                                   layer.last_pruned.values.tolist(), strict=True)}
                        for k in idx.tolist():
                            if k in lookup:
                                gate[k] = lookup[k]
                self._reset_state(gate, idx)
        self.record("regrow_channels", init=init, sparsity=self.channel_sparsity(),
                    channels={self.by_index(i).info.name: sorted(v.tolist()) for i, v in selection.items()})

    def _zero_norm_bias(self, layer: MaskedLayer) -> None:
        """A per-channel norm/bias adds to the voltage: a pruned channel must not fire through it."""
        norm = getattr(layer.block.neuron, "norm", None)
        if not isinstance(norm, nn.Module):
            return
        channels = layer.mask.channel_mask
        with torch.no_grad():
            for param in norm.parameters():
                if param.dim() == 1 and param.numel() == channels.numel():
                    param.mul_(channels)

    # ----- several processes (torchrun) -----------------------------------------------------------------------------
    def scale_weights(self, factor: float) -> None:
        """Every selected layer's stored weights times ``factor`` (config ``rescale``)."""
        with torch.no_grad():
            for layer in self.layers:
                layer.weight.mul_(factor)

    def check_masks_agree(self) -> int:
        """Under DDP: raise unless every rank holds the same weight and channel masks; returns the ranks checked."""
        world = distributed.world_size()
        if world == 1:
            return 1
        for layer in self.layers:
            for mask in (layer.mask.mask, layer.mask.channel_mask):
                local = mask.detach().to(torch.float64)
                # 0/1 entries: the sum over ranks is world * local everywhere only if every rank has the same mask
                if not torch.equal(distributed.all_reduce_sum(local.clone()), local * world):
                    raise RuntimeError(f"pruning masks differ between DDP ranks in {layer.info.name} "
                                       f"after step {self.step}")
        return world

    # ----- training hooks ----------------------------------------------------------------------------------------
    def after_step(self) -> None:
        """Call after every optimizer step: pruned gates back to exactly 0, norm biases of pruned channels to 0,
        stored weights inside what a quantized model computes with."""
        for layer in self.layers:
            clip_to_hook(layer.weight, getattr(layer.block.synapse, "_pre_hook_fx", None))
            layer.mask.hold()
            if self.structured:
                self._zero_norm_bias(layer)

    def track_gradients(self, on: bool = True) -> None:
        for layer in self.layers:
            layer.mask.track_grad = on
            layer.mask.dense_grad.zero_()

    def dense_grads(self) -> dict[int, torch.Tensor]:
        """Accumulated ``dL/dW_eff`` (dense: pruned positions included) since :meth:`track_gradients`."""
        return {layer.info.index: layer.mask.dense_grad.clone() for layer in self.layers}

    def gate_params(self) -> list[nn.Parameter]:
        return [layer.mask.gate for layer in self.layers if layer.mask.gate is not None]

    def _reset_state(self, param: torch.Tensor, flat_idx: torch.Tensor) -> None:
        """Zero the optimizer's per-entry state (momentum, second moment) of the given entries of ``param``."""
        if self.optimizer is None:
            return
        state = self.optimizer.state.get(param, {})
        for value in state.values():
            if isinstance(value, torch.Tensor) and value.shape == param.shape:
                value.view(-1)[flat_idx] = 0.0

    # ----- persistence -------------------------------------------------------------------------------------------
    def attach_state(self, name: str, owner) -> bool:
        """Save ``owner.state_dict()`` with the engine's state; True if a loaded state was handed to it now."""
        self._state_owners[name] = owner
        pending = self._pending_state.pop(name, None)
        if pending is not None:
            owner.load_state_dict(pending)
        return pending is not None

    def owned_state(self, name: str, factory):
        """The state object attached under ``name``, created by ``factory()`` and attached on first use."""
        if name not in self._state_owners:
            self.attach_state(name, factory())
        return self._state_owners[name]

    def state_dict(self) -> dict:
        state = {"masks": {layer.info.name: layer.mask.mask.clone() for layer in self.layers},
                 "channel_masks": {layer.info.name: layer.mask.channel_mask.clone() for layer in self.layers},
                 "records": list(self.records), "step": self.step}
        owned = {**self._pending_state, **{k: v.state_dict() for k, v in self._state_owners.items()}}
        if owned:
            state["owners"] = owned
        return state

    def load_state_dict(self, state: dict) -> None:
        for layer in self.layers:
            layer.mask.mask.copy_(state["masks"][layer.info.name])
            layer.mask.channel_mask.copy_(state["channel_masks"][layer.info.name])
            layer.mask.hold()
        self.records = list(state["records"])
        self.step = int(state["step"])
        for name, owned in state.get("owners", {}).items():
            if name in self._state_owners:
                self._state_owners[name].load_state_dict(owned)
            else:
                self._pending_state[name] = owned

    def finalize(self) -> None:
        """Bake masks and gates into plain weights (zeros stay, shapes kept); the engine is done afterwards. A
        quantized layer's pre-hook sees the gated weight, so a gate above 1 can carry a baked weight past its 8-bit
        range: it is stored as the value the hook computed with."""
        for layer in self.layers:
            synapse = layer.block.synapse
            masklib.detach(synapse)
            clip_to_hook(synapse.weight, getattr(synapse, "_pre_hook_fx", None))


def mean_over_ranks(scores: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    """Per-layer scores averaged over DDP ranks (each rank measured its own share of the batches); no-op alone."""
    world = distributed.world_size()
    if world == 1:
        return scores
    return {i: (distributed.all_reduce_sum(s.detach().to(torch.float64).clone()) / world).to(s.dtype)
            for i, s in scores.items()}


def erk_densities(shapes: list[tuple[int, ...]], density: float) -> list[float]:
    """Per-layer densities with the overall ``density`` (share of all weights kept), Erdos-Renyi-Kernel style.

    A weight ``[out, in, kh, kw, ...]`` gets density ``eps * (out + in + kh + kw) / (out * in * kh * kw)``; layers
    that would exceed 1 stay dense and ``eps`` is solved again for the rest (Evci et al. 2020, RigL).
    """
    sizes = [math.prod(shape) for shape in shapes]
    raw = [sum(d for d in shape if d > 1) / size if size else 0.0 for shape, size in zip(shapes, sizes, strict=True)]
    dense: set[int] = set()
    budget = density * sum(sizes)
    while True:
        free = [i for i in range(len(shapes)) if i not in dense]
        rest = budget - sum(sizes[i] for i in dense)
        weight = sum(raw[i] * sizes[i] for i in free)
        eps = rest / weight if weight > 0 else 0.0
        full = [i for i in free if eps * raw[i] >= 1.0]
        if not full or len(dense) + len(full) == len(shapes):
            dense.update(full)
            break
        dense.update(full)
    return [1.0 if i in dense else min(1.0, max(0.0, eps * raw[i])) for i in range(len(shapes))]


def _check_scope(scope: str) -> None:
    if scope not in SCOPES:
        raise ValueError(f"unknown ranking scope {scope!r}; choose one of {', '.join(SCOPES)}")


def _masked_scores(score: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Flat scores with already-pruned entries set to +inf (never picked again)."""
    flat = score.detach().reshape(-1).to(torch.float64).clone()
    flat[mask.reshape(-1) == 0] = float("inf")
    return flat


def _split(picked: torch.Tensor, sizes: list[int], group: list[MaskedLayer]) -> dict[int, torch.Tensor]:
    out = {}
    start = 0
    for size, layer in zip(sizes, group, strict=True):
        sel = picked[(picked >= start) & (picked < start + size)] - start
        if sel.numel():
            out[layer.info.index] = torch.sort(sel).values
        start += size
    return out
