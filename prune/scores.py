"""Ranking scores for weights (weight-shaped tensors) and channels (one value per output channel)."""

from __future__ import annotations

import torch

from snndeploy.prune.engine import PruningEngine


def weight_magnitude(engine: PruningEngine) -> dict[int, torch.Tensor]:
    """``|W|`` of the stored weights."""
    return {layer.info.index: layer.weight.detach().abs() for layer in engine.layers}


def weight_random(engine: PruningEngine, generator: torch.Generator) -> dict[int, torch.Tensor]:
    return {layer.info.index: torch.rand(layer.weight.shape, generator=generator) for layer in engine.layers}


def weight_gradient(engine: PruningEngine, grads: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    """``|dL/dW|`` of the dense gradient (RigL-style)."""
    return {i: g.abs() for i, g in grads.items()}


def weight_from_channels(engine: PruningEngine, channel: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    """Per-weight score = score of the post-synaptic channel, ties broken by ``|w|`` (lexicographic order).

    Returned as ranks (0 = lowest) over all layers together, so that global ranking stays lexicographic.
    """
    keys, mags, sizes = [], [], []
    for layer in engine.layers:
        w = layer.weight.detach()
        c = channel[layer.info.index].to(torch.float64)
        keys.append(c.view(-1, *([1] * (w.dim() - 1))).expand(w.shape).reshape(-1))
        mags.append(w.abs().reshape(-1).to(torch.float64))
        sizes.append(w.numel())
    key, mag = torch.cat(keys), torch.cat(mags)
    order = torch.sort(mag, stable=True).indices
    order = order[torch.sort(key[order], stable=True).indices]
    ranks = torch.empty_like(order, dtype=torch.float64)
    ranks[order] = torch.arange(order.numel(), dtype=torch.float64)
    out, start = {}, 0
    for layer, size in zip(engine.layers, sizes, strict=True):
        out[layer.info.index] = ranks[start:start + size].view(layer.weight.shape)
        start += size
    return out


def weight_post_times(engine: PruningEngine, channel: dict[int, torch.Tensor],
                      rates: dict[int, torch.Tensor] | None = None, magnitude: bool = True) -> dict[int, torch.Tensor]:
    """``C_i`` times ``r_j`` (the pre-synaptic rate of input channel j; when ``rates`` are given) times ``|w_ij|``
    (when ``magnitude``): ``C_i * |w_ij|``, ``C_i * r_j`` or ``C_i * r_j * |w_ij|``."""
    out = {}
    for layer in engine.layers:
        w = layer.weight.detach()
        score = channel[layer.info.index].view(-1, *([1] * (w.dim() - 1))).expand(w.shape)
        if rates is not None:
            score = score * rates[layer.info.index].view(1, -1, *([1] * (w.dim() - 2)))
        out[layer.info.index] = score * w.abs() if magnitude else score
    return out


def weight_share(channel: dict[int, torch.Tensor], chosen: dict[int, torch.Tensor],
                 magnitude: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    """``C_i / k`` for the ``k``-th largest ``|w_ij|`` among the ``chosen`` (just-pruned) weights of post-synaptic
    channel ``i``: a top-``n`` cut then gives channel ``i`` a share of the regrowth proportional to ``C_i``,
    taken in magnitude order, instead of whole rows of the most critical channels."""
    out = {}
    for index, flat_idx in chosen.items():
        mag = magnitude[index]
        row = flat_idx // (mag.numel() // mag.shape[0])
        value = mag.reshape(-1)[flat_idx].to(torch.float64)
        order = torch.sort(-value, stable=True).indices
        order = order[torch.sort(row[order], stable=True).indices]  # by row, then by descending magnitude
        sorted_rows = row[order]
        position = torch.arange(order.numel())
        first = torch.searchsorted(sorted_rows, sorted_rows, right=False)
        rank = torch.empty(order.numel(), dtype=torch.float64)
        rank[order] = (position - first + 1).to(torch.float64)
        score = torch.zeros(mag.numel(), dtype=torch.float64)
        score[flat_idx] = channel[index].to(torch.float64).reshape(-1)[row] / rank
        out[index] = score.view(mag.shape)
    return out


def uses_rates(kind: str) -> bool:
    """Whether criticality's per-weight score ``kind`` needs the pre-synaptic spike rates ``r_j``."""
    return kind.startswith("post_rate")


def weight_criticality(engine: PruningEngine, kind: str, channel: dict[int, torch.Tensor],
                       rates: dict[int, torch.Tensor] | None, chosen: dict[int, torch.Tensor],
                       magnitude: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    """Criticality's per-weight regrowth score ``kind`` (config ``weight_score``: post | post_share |
    post_magnitude | post_rate | post_rate_magnitude) from channel criticality, pre-synaptic ``rates`` (post_rate*)
    and the just-pruned ``chosen`` entries with their ``magnitude`` before pruning (post_share)."""
    if kind == "post":
        return weight_from_channels(engine, channel)
    if kind == "post_share":
        return weight_share(channel, chosen, magnitude)
    return weight_post_times(engine, channel, rates if uses_rates(kind) else None,
                             magnitude=kind.endswith("magnitude"))


def _row_l1(engine: PruningEngine) -> dict[int, torch.Tensor]:
    return {layer.info.index: layer.weight.detach().abs().reshape(layer.weight.shape[0], -1).mean(1)
            for layer in engine.layers}


def channel_l1(engine: PruningEngine) -> dict[int, torch.Tensor]:
    """Filter L1 norm per output channel (Li et al. 2017), divided by fan-in so layers compare globally."""
    return _row_l1(engine)


def channel_scale(engine: PruningEngine, by: str = "gate_l1") -> dict[int, torch.Tensor]:
    """Channel scale: ``|gate|`` (``gate``) or ``|gate| * mean|W[c]|`` (``gate_l1``: the effective row scale)."""
    rows = _row_l1(engine)
    out = {}
    for layer in engine.layers:
        gate = layer.mask.gate
        g = gate.detach().abs() if gate is not None else torch.ones(layer.weight.shape[0])
        if by == "gate":
            out[layer.info.index] = g
        elif by == "gate_l1":
            out[layer.info.index] = g * rows[layer.info.index]
        else:
            raise ValueError(f"unknown channel score {by!r}; choose gate or gate_l1")
    return out


def channel_random(engine: PruningEngine, generator: torch.Generator) -> dict[int, torch.Tensor]:
    return {layer.info.index: torch.rand(layer.weight.shape[0], generator=generator) for layer in engine.layers}


def channel_gradient(engine: PruningEngine) -> dict[int, torch.Tensor]:
    """``|dL/dgate|`` (stays non-zero for pruned channels: the gate multiplies intact weights)."""
    out = {}
    for layer in engine.layers:
        gate = layer.mask.gate
        if gate is None or gate.grad is None:
            raise ValueError(f"{layer.info.name}: no gate gradient (structured pruning with gates and a backward "
                             "pass are needed)")
        out[layer.info.index] = gate.grad.detach().abs().clone()
    return out


CHANNEL_NORMS = ("layer", "none")


def normalise_channels(engine: PruningEngine, scores: dict[int, torch.Tensor], norm: str = "layer"
                       ) -> dict[int, torch.Tensor]:
    """Channel scores made comparable between layers for a global ranking (``layer``: divided by the mean score of
    the layer's live channels, so each layer's channels rank against their own layer's typical value; a layer
    with a large fan-in has small weights and would otherwise be stripped first)."""
    if norm == "none":
        return scores
    if norm != "layer":
        raise ValueError(f"unknown channel score normalisation {norm!r}; choose one of {', '.join(CHANNEL_NORMS)}")
    out = {}
    for layer in engine.layers:
        s = scores[layer.info.index].detach().to(torch.float64)
        live = layer.mask.channel_mask.reshape(-1) > 0
        mean = float(s.reshape(-1)[live].abs().mean()) if bool(live.any()) else 0.0
        out[layer.info.index] = s / mean if mean > 0 else s
    return out
