"""Prune to a budget: find the smallest sparsity (or width cut) at which the estimator says the model fits.

Each trial prunes a copy of the model one-shot with per-layer scope (every layer loses the same fraction, so the
widths, and with them the estimate, depend only on the ratio, not on a method's scores), converts it to the IR
and asks the estimator. The pipeline's prune stage then prunes to the found ratio with the same per-layer scope,
so its result has the same layer sizes and the same estimate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from snndeploy.errors import UserError
from snndeploy.export.slayer_io import from_slayer
from snndeploy.hardware.budget import parse_budget
from snndeploy.hardware.estimate import FITS, estimate_target
from snndeploy.hardware.layers import layers_from_ir
from snndeploy.hardware.profile import load_profile
from snndeploy.loader import load_model
from snndeploy.prune import scores
from snndeploy.prune.engine import PruningEngine
from snndeploy.prune.shrink import shrink

MAX_SPARSITY = 0.98
SEARCH_STEPS = 7  # bisection steps: resolution 0.98 / 2**7 < 0.01


def split_fit(text: str) -> tuple[str, str]:
    """``TARGET:LIMIT=N[,LIMIT=N]`` -> (target name, budget text)."""
    target, sep, budget = text.partition(":")
    if not sep or not target or not budget:
        raise UserError(f"--fit must look like loihi2:cores=N, got {text!r}")
    return target, budget


def parse_fit(text: str):
    """``TARGET:LIMIT=N[,LIMIT=N]`` -> (profile, budget)."""
    target, budget = split_fit(text)
    return load_profile(target), parse_budget(budget)


def pruned_copy(checkpoint: Path, sparsity: float, structured: bool):
    """The model at ``checkpoint`` pruned one-shot to ``sparsity`` (per layer; smallest magnitude / L1 norm first)."""
    net = load_model(checkpoint)
    if sparsity <= 0:
        return net
    engine = PruningEngine(net, structured=structured, gates=False)
    if structured:
        engine.prune_channels(sparsity, scores.channel_l1(engine), scope="layer")
        keep = {layer.info.index: layer.mask.channel_mask.nonzero().view(-1) for layer in engine.layers}
        engine.finalize()
        shrink(net, engine.graph, keep)
    else:
        engine.prune_weights(sparsity, scores.weight_magnitude(engine), scope="layer")
        engine.finalize()
    return net


def estimate_net(net, profile, budget):
    return estimate_target(layers_from_ir(from_slayer(net)), profile, budget)


def _trial(checkpoint: Path, sparsity: float, structured: bool, profile, budget) -> dict:
    est = estimate_net(pruned_copy(checkpoint, sparsity, structured), profile, budget)
    binding = [c.limit for c in est.checks if c.fits is False]
    return {"sparsity": round(sparsity, 4), "cores": est.cores, "cores_range": [est.cores_low, est.cores_high],
            "verdict": est.verdict, "fits": est.verdict == FITS, "binding": binding,
            "layer_cores": [p.cores for p in est.placements]}


def fit_to_budget(checkpoint: Path, text: str, *, structured: bool = True, log: Callable[[str], None] = print) -> dict:
    """The smallest per-layer sparsity (channels when ``structured``) that fits; raises UserError if none does."""
    profile, budget = parse_fit(text)
    trials: list[dict] = []

    def trial(sparsity: float) -> dict:
        result = _trial(checkpoint, sparsity, structured, profile, budget)
        trials.append(result)
        log(f"[fit] sparsity {sparsity:.3f}: {result['cores']} cores ({result['verdict']})")
        return result

    base = {"target": profile.name, "budget": budget.to_dict(), "structured": structured, "scope": "layer"}
    if trial(0.0)["fits"]:
        return {**base, "sparsity": 0.0, "trials": trials, "summary": f"the dense model already fits {text}"}
    if not trial(MAX_SPARSITY)["fits"]:
        kind = "channel" if structured else "weight"
        hint = "" if structured else "; unstructured zeros do not shrink every limit: try structured pruning"
        raise UserError(f"cannot fit {text}: even {MAX_SPARSITY:.0%} {kind} sparsity gives "
                        f"{trials[-1]['cores']} cores ({trials[-1]['verdict']}){hint}")
    low, high = 0.0, MAX_SPARSITY
    for _ in range(SEARCH_STEPS):
        mid = (low + high) / 2
        if trial(mid)["fits"]:
            high = mid
        else:
            low = mid
    sparsity = math.ceil(high * 100) / 100  # a round ratio at or above the smallest that fits
    final = trial(sparsity)
    if not final["fits"]:  # not monotone at the rounded value: use the verified one
        sparsity = high
    kind = "of channels" if structured else "of weights"
    return {**base, "sparsity": sparsity, "trials": trials,
            "summary": f"{sparsity:.0%} {kind} removed per layer fits {text} ({final['cores']} cores)"}
