"""Estimate a network on one or more targets: per-layer placement, totals, fit against a budget, energy."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snndeploy.hardware import edge, loihi1, loihi2
from snndeploy.hardware.activity import Activity, read_activity, static_metrics, workload_metrics
from snndeploy.hardware.budget import Budget, default_budget, parse_budget
from snndeploy.hardware.energy import energy_latency
from snndeploy.hardware.layers import SD_ENCODER, LayerCount, totals
from snndeploy.hardware.load import load_layers
from snndeploy.hardware.placement import Placement
from snndeploy.hardware.profile import Profile, load_profile

FITS, NO_FIT, UNCERTAIN, UNKNOWN = "fits", "does not fit", "fits at the estimate, not at the top of its range", \
    "unknown"


@dataclass(frozen=True)
class Check:
    limit: str
    need: float | None
    need_high: float | None
    have: float | None
    basis: str

    @property
    def fits(self) -> bool | None:
        if self.need is None or self.have is None:
            return None
        return self.need <= self.have

    @property
    def headroom(self) -> float | None:
        if self.need is None or not self.have:
            return None
        return (self.have - self.need) / self.have

    def to_dict(self) -> dict[str, Any]:
        return {"limit": self.limit, "need": self.need, "need_high": self.need_high, "have": self.have,
                "fits": self.fits, "headroom": None if self.headroom is None else round(self.headroom, 4),
                "basis": self.basis}


@dataclass(frozen=True)
class TargetEstimate:
    profile: Profile
    budget: Budget
    placements: tuple[Placement, ...]
    checks: tuple[Check, ...]
    verdict: str
    cores: int | None
    cores_low: int | None
    cores_high: int | None
    chips: int | None
    systems: dict[str, dict[str, Any]] = field(default_factory=dict)
    energy: dict[str, Any] = field(default_factory=dict)

    @property
    def fits(self) -> bool:
        return self.verdict in (FITS, UNCERTAIN)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.profile.name, "title": self.profile.title, "profile_notes": self.profile.notes,
            "verdict": self.verdict, "fits": self.fits,
            "budget": self.budget.to_dict(), "cores": self.cores, "cores_range": [self.cores_low, self.cores_high],
            "chips": self.chips, "systems": self.systems, "checks": [c.to_dict() for c in self.checks],
            "layers": [p.to_dict() for p in self.placements], "energy_latency": self.energy,
            "unknown_in_profile": self.profile.unknowns(),
        }


def _host_encoder(layer: LayerCount) -> Placement:
    return Placement(layer.name, 0, 0, 0, "host", True,
                     "sigma-delta input encoder: lava-dl deploys SDNNs with it in the input adapter (netx "
                     "skip_layers=1, as in the published PilotNet SDNN compile), not on neurocores", tile="host")


def pack(layers: tuple[LayerCount, ...], profile: Profile) -> tuple[Placement, ...]:
    """Per-layer placement with the target's packing model (a sigma-delta input encoder on Loihi 2: the host)."""
    if profile.model == "loihi2" and layers and layers[0].neuron == SD_ENCODER:
        return (_host_encoder(layers[0]), *pack(layers[1:], profile))
    per_layer = {"loihi2": loihi2.place, "loihi1": loihi1.place, "truenorth": edge.truenorth,
                 "spinnaker2": edge.spinnaker2, "akida": edge.akida}
    if profile.model in per_layer:
        return tuple(per_layer[profile.model](layer, profile) for layer in layers)
    if profile.model == "speck":
        return tuple(edge.speck(layers, profile))
    return tuple(edge.xylo(layers, profile))


def _sum(values) -> int | None:
    values = list(values)
    return None if any(v is None for v in values) else int(sum(values))


def _checks(layers, profile: Profile, budget: Budget, cores, cores_high, chips) -> list[Check]:
    count = totals(layers)
    per_chip_neurons, per_chip_syn = profile.value("chip.neurons"), profile.value("chip.synapses")
    checks = [Check("cores", cores, cores_high, budget.cores, budget.basis)]
    if budget.chips is not None:
        checks.append(Check("chips", chips, None, budget.chips, budget.basis))
    if per_chip_neurons is not None and budget.chips is not None:
        checks.append(Check("neurons", count["neurons"], None, per_chip_neurons * budget.chips,
                            f"{per_chip_neurons} neurons per chip [{profile.cite('chip.neurons')}]"))
    if per_chip_syn is not None and budget.chips is not None:
        checks.append(Check("synapses (non-zero)", count["synapses_nonzero"], None, per_chip_syn * budget.chips,
                            f"{per_chip_syn} synapses per chip [{profile.cite('chip.synapses')}]"))
    if budget.neurons is not None:
        checks.append(Check("neurons", count["neurons"], None, budget.neurons, budget.basis))
    if budget.synapses is not None:
        checks.append(Check("synapses (non-zero)", count["synapses_nonzero"], None, budget.synapses, budget.basis))
    return [c for c in checks if c.have is not None]


def _verdict(placements, checks: list[Check], cores, cores_high, budget: Budget) -> str:
    if any(not p.feasible for p in placements) or any(c.fits is False for c in checks):
        return NO_FIT
    if cores is None and budget.cores is not None:
        return UNKNOWN
    if cores_high is not None and budget.cores is not None and cores_high > budget.cores:
        return UNCERTAIN
    return FITS


def estimate_target(layers: tuple[LayerCount, ...], profile: Profile, budget: Budget | None = None,
                    activity: Activity | None = None, system: str | None = None) -> TargetEstimate:
    budget = budget or default_budget(profile, system)
    placements = pack(layers, profile)
    cores, low, high = (_sum(p.cores for p in placements), _sum(p.cores_low for p in placements),
                        _sum(p.cores_high for p in placements))
    per_chip = profile.value("chip.cores")
    if profile.model == "xylo":
        chips = 1 if all(p.feasible for p in placements) else None
    else:
        chips = None if cores is None or per_chip is None else max(1, math.ceil(cores / per_chip))
    if budget.cores is None and budget.chips is not None and per_chip is not None:
        budget = Budget(budget.name, budget.chips * int(per_chip), budget.chips, budget.neurons, budget.synapses,
                        budget.basis)
    checks = _checks(layers, profile, budget, cores, high, chips)
    systems = {name: {"chips": int(items["chips"].value), "fits": None if chips is None else
                      chips <= items["chips"].value and all(p.feasible for p in placements)}
               for name, items in profile.systems.items()}
    metrics = workload_metrics(layers, activity) if activity is not None else None
    return TargetEstimate(profile, budget, placements, tuple(checks),
                          _verdict(placements, checks, cores, high, budget), cores, low, high, chips, systems,
                          energy_latency(profile, placements, metrics, chips))


def layer_table(layers: tuple[LayerCount, ...]) -> list[dict[str, Any]]:
    """Hardware-independent per-layer counts (fan-out = into the next layer)."""
    rows = []
    for i, lay in enumerate(layers):
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        rows.append({
            "layer": lay.name, "op": lay.op, "neuron": lay.neuron, "in_shape": list(lay.in_shape),
            "out_shape": list(lay.out_shape), "neurons": lay.neurons, "synapses": lay.synapses,
            "synapses_nonzero": lay.synapses_nonzero, "weights_stored": lay.weights_stored,
            "weights_nonzero": lay.weights_nonzero, "fan_in_max": lay.fan_in_max,
            "fan_in_mean": round(lay.fan_in_mean, 3),
            "fan_out_max": nxt.in_fanout_max if nxt else 0,
            "fan_out_mean": round(nxt.in_fanout_mean, 3) if nxt else 0.0,
            "axons_in": lay.axons_in, "recurrent": lay.recurrent, "message_bits": lay.message_bits,
            "weight_bits": lay.bits.bits, "weight_signed": lay.bits.signed, "weight_bits_basis": lay.bits.basis,
            # stored at the layer's weight bits (+ sign bit for mixed signs): dense format / non-zeros only
            "weight_memory_bytes": math.ceil(lay.weights_stored * (lay.bits.bits + lay.bits.signed) / 8),
            "weight_memory_bytes_nonzero": math.ceil(lay.weights_nonzero * (lay.bits.bits + lay.bits.signed) / 8),
        })
    return rows


def estimate(layers: tuple[LayerCount, ...], profiles: list[Profile], budget: Budget | None = None,
             activity: Activity | None = None, system: str | None = None, model: str = "",
             budgets: list[Budget | None] | None = None) -> dict[str, Any]:
    """The whole report: network counts, NeuroBench metrics and one block per target.

    ``budgets`` (one per profile, None for "use ``budget``") gives a target its own budget."""
    budgets = budgets or [None] * len(profiles)
    targets = [estimate_target(layers, p, own or budget, activity, system) for p, own in zip(profiles, budgets,
                                                                                             strict=True)]
    return {
        "model": model,
        "network": totals(layers),
        "layers": layer_table(layers),
        "neurobench_static": static_metrics(layers),
        "neurobench_workload": workload_metrics(layers, activity) if activity is not None else None,
        "targets": [t.to_dict() for t in targets],
        "fits_all": all(t.fits for t in targets),
        "_targets": targets,
    }


@dataclass(frozen=True)
class EstimateJob:
    """What ``snndeploy estimate`` is asked: the targets, a budget (or a named system) and a recorded activity.

    ``target_budgets`` maps a name in ``targets`` to its own budget text (the others get ``budget``)."""

    targets: tuple[str, ...] = ("loihi2",)
    budget: str | None = None
    activity: str | Path | None = None
    system: str | None = None
    target_budgets: dict[str, str] = field(default_factory=dict)


def estimate_model(model: str | Path, job: EstimateJob = EstimateJob()) -> dict[str, Any]:
    """The JSON-able estimate of a model file (what ``snndeploy estimate --json`` prints)."""
    profiles = [load_profile(t) for t in job.targets]  # check the cheap inputs before reading the model
    user_budget = parse_budget(job.budget) if job.budget else None
    own = [parse_budget(job.target_budgets[t]) if t in job.target_budgets else None for t in job.targets]
    recorded = read_activity(job.activity) if job.activity else None
    result = estimate(load_layers(model), profiles, user_budget, recorded, job.system, model=str(model), budgets=own)
    result.pop("_targets")
    return result
