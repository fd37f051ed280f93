"""Resource estimation against edge-hardware budgets (Loihi 2 first): ``snndeploy estimate``.

Flow: a model file -> NIR graph (``load.graph_of``) -> per-layer counts (``layers.layers_from_nir``) -> per-target
placement (``loihi2``, ``loihi1``, ``edge``) against a :class:`~snndeploy.hardware.budget.Budget` -> totals, fit
verdict, NeuroBench metrics (``activity``) and energy/latency ranges with their basis (``energy``).
Targets are YAML profiles under ``profiles/`` (every number sourced; unknowns stay ``null``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def estimate_model(model: str | Path, targets: tuple[str, ...] = ("loihi2",), budget: str | None = None,
                   activity: str | Path | None = None, system: str | None = None,
                   target_budgets: dict[str, str] | None = None) -> dict[str, Any]:
    """The JSON-able estimate of a model file on ``targets`` (what ``snndeploy estimate --json`` prints).

    ``target_budgets`` maps a name in ``targets`` to its own budget text (the others get ``budget``)."""
    from snndeploy.hardware.activity import read_activity
    from snndeploy.hardware.budget import parse_budget
    from snndeploy.hardware.estimate import estimate
    from snndeploy.hardware.load import load_layers
    from snndeploy.hardware.profile import load_profile

    profiles = [load_profile(t) for t in targets]  # check the cheap inputs before reading the model
    user_budget = parse_budget(budget) if budget else None
    own = [parse_budget(target_budgets[t]) if target_budgets and t in target_budgets else None for t in targets]
    recorded = read_activity(activity) if activity else None
    result = estimate(load_layers(model), profiles, user_budget, recorded, system, model=str(model), budgets=own)
    result.pop("_targets")
    return result
