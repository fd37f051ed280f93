"""Energy and latency per inference as ranges with their basis: never measurements of this network.

E_dyn = synops x E_synop + neuron updates x E_update + spikes x E_spike (docs/hardware.md sections 2, 3.3);
E_static = P_static per chip x chips x latency. The time step is the slowest core's work plus the barrier.
A target's own per-op figure is used when it is published; otherwise a profile may name a labelled proxy
(Loihi 2 uses Loihi 1 figures, marked as such); with neither, energy is reported as unknown.
"""

from __future__ import annotations

from typing import Any

from snndeploy.hardware.placement import Placement
from snndeploy.hardware.profile import Profile


def _range(value) -> tuple[float, float]:
    if isinstance(value, list):
        return float(min(value)), float(max(value))
    return float(value), float(value)


def _per_op(profile: Profile, section: str, name: str, basis: list[str]) -> tuple[float, float] | None:
    own, proxy = profile.q(f"{section}.{name}"), profile.q(f"{section}.proxy_{name}")
    if own is not None and own.known:
        basis.append(f"{section}.{name} = {own.value} [{own.source}, {own.confidence}]")
        return _range(own.value)
    if proxy is not None and proxy.known:
        basis.append(f"{section}.{name}: PROXY {proxy.value} [{proxy.source}, {proxy.confidence}] -- {proxy.note}")
        return _range(proxy.value)
    return None


def _scale(amount: float, per: tuple[float, float]) -> tuple[float, float]:
    return amount * per[0], amount * per[1]


def _add(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return a[0] + b[0], a[1] + b[1]


def step_time_ns(profile: Profile, placements: tuple[Placement, ...], metrics: dict, basis: list[str]):
    """Time per step: the busiest core's synaptic and neuron work plus a barrier (or a fixed tick)."""
    tick = profile.q("timing_ns.tick")
    if tick is not None and tick.known:
        basis.append(f"time step = fixed tick {tick.value} ns [{tick.source}]")
        return _range(tick.value)
    t_syn = _per_op(profile, "timing_ns", "synaptic_op", basis)
    t_neu = _per_op(profile, "timing_ns", "neuron_update", basis)
    t_bar = _per_op(profile, "timing_ns", "barrier", basis) or (0.0, 0.0)
    if t_syn is None or t_neu is None:
        return None
    steps = metrics["time_steps"]
    worst = (0.0, 0.0)
    for place, row in zip(placements, metrics["layers"], strict=True):
        cores = max(place.cores or 1, 1)
        per_core = _add(_scale(row["synops_effective"] / steps / cores, t_syn),
                        _scale(row["neuron_updates"] / steps / cores, t_neu))
        worst = (max(worst[0], per_core[0]), max(worst[1], per_core[1]))
    basis.append("time step = busiest core (layer work spread evenly over its cores) + barrier")
    return _add(worst, t_bar)


def energy_latency(profile: Profile, placements: tuple[Placement, ...], metrics: dict | None,
                   chips: int | None) -> dict[str, Any]:
    """Ranges for energy (uJ) and latency (ms) per inference, their basis, and what stayed unknown."""
    context = [f"{k} = {q.value} [{q.source}, {q.confidence}] {q.note}".strip()
               for k, q in profile.sections["measured"].items() if q.known]
    out: dict[str, Any] = {"energy_uj": None, "dynamic_uj": None, "static_uj": None, "latency_ms": None,
                           "basis": [], "unknown": [], "published_measurements_context": context,
                           "note": "estimates from per-operation figures, not measurements of this network"}
    if metrics is None:
        out["unknown"].append("no activity file: pass --activity to get energy and latency")
        return out
    basis: list[str] = out["basis"]
    e_syn = _per_op(profile, "energy_pj", "synaptic_op", basis)
    e_neu = _per_op(profile, "energy_pj", "neuron_update", basis)
    e_spk = _per_op(profile, "energy_pj", "spike_out", basis)
    t_step = step_time_ns(profile, placements, metrics, basis)
    if t_step is not None:
        out["latency_ms"] = [v * metrics["time_steps"] * 1e-6 for v in t_step]
    else:
        out["unknown"].append("per-op timing not published: latency unknown")
    if e_syn is None:
        out["unknown"].append("energy per synaptic operation not published: energy unknown")
        return out
    dyn = _scale(metrics["synops_effective"], e_syn)
    if e_neu is not None:
        dyn = _add(dyn, _scale(metrics["neuron_updates"], e_neu))
    else:
        out["unknown"].append("energy per neuron update not published (or folded into the synop figure)")
    if e_spk is not None:
        dyn = _add(dyn, _scale(metrics["spikes"], e_spk))
    out["dynamic_uj"] = [v * 1e-6 for v in dyn]
    total = dyn
    static = profile.q("power_w.static_per_chip")
    if static is not None and static.known and chips and out["latency_ms"] is not None:
        p = _range(static.value)
        st = (p[0] * chips * out["latency_ms"][0] * 1e3, p[1] * chips * out["latency_ms"][1] * 1e3)  # W*ms -> uJ
        out["static_uj"] = list(st)
        basis.append(f"static power {static.value} W per chip x {chips} chip(s) x latency [{static.source}]")
        total = (dyn[0] * 1e-6 + st[0], dyn[1] * 1e-6 + st[1])
        out["energy_uj"] = list(total)
    else:
        out["energy_uj"] = out["dynamic_uj"]
        if static is None or not static.known:
            why = f" ({static.note})" if static is not None and static.note else ""
            out["unknown"].append(f"static power not published{why}: energy is the dynamic part only")
    return out
