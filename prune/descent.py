"""A large magnitude cut taken as a cascade of smaller ones, without training between them, each one repaired.

Why: cutting a trained network to 98 % in one magnitude step silences it. On lava-dl's ``mnist-mlp-128`` (ERK
allocation) the largest 2 % of the first layer's weights are 74 % inhibitory: 53 of its 128 neurons and 43 of
the second layer's 64 never fire again, no surrogate gradient reaches them, and two epochs of fine-tuning end at
28 % (refitting the one big step: 24 %). Taking the same cut in five steps that each keep the same share of every
layer's weights, re-ranking by magnitude after each, moving the weights each step strands onto live paths
(:meth:`PruningEngine.reassign_ineffective`) and refitting the kept weights to the currents of the network just
before that step (:func:`snndeploy.prune.reconstruct.reconstruct`): 54 % before any training, 63 % after the same
two epochs (2,000 test digits, seed 0; docs/prune.md "Cutting in sub-steps"). Each step's refit has a network
close to its own to match; one refit from 100 % to 2 % does not.

Only calibration batches are used (no optimizer step), so a method that cuts once stays a one-shot method.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from snndeploy.prune.engine import PruningEngine
from snndeploy.prune.reconstruct import reconstruct


def live_counts(engine: PruningEngine) -> dict[int, int]:
    """Kept weights per pruned layer (block index)."""
    return {layer.info.index: int(layer.mask.mask.sum().item()) for layer in engine.layers}


def kept_at(engine: PruningEngine, target: float, allocation: str, score: dict[int, torch.Tensor]) -> dict[int, int]:
    """Kept weights per layer once ``engine.prune_weights(target, score, allocation)`` has run, without running it."""
    chosen = engine.weights_to_prune(target, score, allocation)
    return {index: count - (int(chosen[index].numel()) if index in chosen else 0)
            for index, count in live_counts(engine).items()}


def cascade(start: int, final: int, substeps: int) -> list[int]:
    """Kept counts after each of ``substeps`` steps from ``start`` to ``final``: the same share kept by every step
    (geometric; linear towards 0, where no share reaches it)."""
    if final >= start:
        return [start] * (substeps - 1) + [final]
    if final == 0:
        return [round(start * (1 - k / substeps)) for k in range(1, substeps + 1)]
    ratio = final / start
    return [max(final, round(start * ratio ** (k / substeps))) for k in range(1, substeps)] + [final]


def descend(engine: PruningEngine, net: nn.Module, final: dict[int, int], substeps: int,
            inputs: Sequence[torch.Tensor], damping: float) -> dict:
    """Prune every layer to ``final[index]`` kept weights (smallest ``|w|`` first) in ``substeps`` steps, each
    followed by reassigning stranded weights and a refit on the calibration ``inputs`` (a step that removes nothing is
    skipped); returns what it did."""
    plan = {index: cascade(count, final[index], substeps) for index, count in live_counts(engine).items()}
    moved, errors = 0, []
    for step in range(substeps):
        selection = {layer.info.index: _smallest(layer, plan[layer.info.index][step]) for layer in engine.layers}
        if not any(idx.numel() for idx in selection.values()):
            continue  # nothing removed: the currents are what they were (a refit would only add rounding)
        before = copy.deepcopy(net)
        engine.prune_selected(selection)
        moved += sum(engine.reassign_ineffective().values())
        report = reconstruct(engine, net, before, inputs, damping)
        errors.append({name: round(r["error_after"], 4) for name, r in report.items()})
    return {"substeps": len(errors), "reassigned": moved, "current_error_after": errors}


def _smallest(layer, keep: int) -> torch.Tensor:
    """Flat indices of the live weights of ``layer`` beyond its ``keep`` largest ``|w|``."""
    live = torch.nonzero(layer.mask.mask.reshape(-1) != 0).view(-1)
    drop = live.numel() - keep
    if drop <= 0:
        return live[:0]
    magnitude = layer.weight.detach().abs().reshape(-1)[live]
    return torch.sort(live[torch.topk(magnitude, drop, largest=False).indices]).values


def wants_descent(engine: PruningEngine, substeps: int) -> bool:
    """Whether a cut should go through :func:`descend`: unstructured, and more than one sub-step asked for."""
    return not engine.structured and substeps > 1
