"""What a packing model says about one layer on one target: cores (point and range), usage, binding limit."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Placement:
    """One layer placed on a target.

    ``cores`` is the model's point estimate; ``cores_low``/``cores_high`` bound it where the model is a band
    (Loihi 2 dense layers). ``usage`` and ``budget`` are per-core amounts on the fullest core, by resource name;
    ``binding`` names the resource that set the core count (or, with one core, the one closest to its budget).
    ``None`` cores mean the target publishes no per-core budget for this (reported as unknown).
    """

    layer: str
    cores: int | None
    cores_low: int | None
    cores_high: int | None
    binding: str
    feasible: bool
    basis: str
    tile: str = ""
    usage: dict[str, float] = field(default_factory=dict)
    budget: dict[str, float] = field(default_factory=dict)
    problem: str = ""

    @property
    def utilization(self) -> dict[str, float]:
        return {k: self.usage[k] / self.budget[k] for k in self.usage if self.budget.get(k)}

    def to_dict(self) -> dict:
        return {
            "layer": self.layer, "cores": self.cores, "cores_range": [self.cores_low, self.cores_high],
            "tile": self.tile, "binding": self.binding, "feasible": self.feasible, "problem": self.problem,
            "usage_per_core": self.usage, "budget_per_core": self.budget,
            "utilization": {k: round(v, 4) for k, v in self.utilization.items()},
            "headroom": None if not self.utilization else round(1 - max(self.utilization.values()), 4),
            "basis": self.basis,
        }


def closest_limit(usage: dict[str, float], budget: dict[str, float]) -> str:
    ratios = {k: usage[k] / budget[k] for k in usage if budget.get(k)}
    return max(ratios, key=ratios.get) if ratios else "none"
