"""Human-readable table and plot of an estimate (the JSON form is the estimate dict itself)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from snndeploy.atomic import atomic_path


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _range(values) -> str:
    if not values or values[0] is None:
        return "unknown"
    lo, hi = values
    return _fmt(lo) if lo == hi else f"{_fmt(lo)}..{_fmt(hi)}"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _network(result: dict[str, Any]) -> list[str]:
    net = result["network"]
    lines = [f"model {result['model']}: {net['layers']} layers, {net['neurons']} neurons, {net['synapses']} synapses "
             f"({net['synapses_nonzero']} non-zero), {net['weights_stored']} stored weights"]
    rows = [["layer", "op", "neurons", "synapses", "non-zero", "fan-in max", "fan-out max", "weight bits"]]
    for r in result["layers"]:
        bits = f"{r['weight_bits']}{'+sign' if r['weight_signed'] else ''}"
        rows.append([r["layer"], r["op"], str(r["neurons"]), str(r["synapses"]), str(r["synapses_nonzero"]),
                     str(r["fan_in_max"]), str(r["fan_out_max"]), bits])
    lines.append(_table(rows))
    nb = result["neurobench_static"]
    lines.append(f"NeuroBench static: {nb['parameters']} parameters, footprint {nb['footprint_bytes_float32']} B as "
                 f"float32 / {nb['footprint_bytes_at_weight_bits']} B at the weight bits, connection sparsity "
                 f"{nb['connection_sparsity']:.3f}")
    work = result.get("neurobench_workload")
    if work:
        lines.append(f"NeuroBench workload ({work['source']}, {work['samples']} samples, {work['time_steps']} steps) "
                     f"per inference: effective SynOps {work['synops_effective']:.4g} (ACs {work['eff_acs']:.4g}, "
                     f"MACs {work['eff_macs']:.4g}), dense SynOps {work['synops_dense']:.4g}, spikes "
                     f"{work['spikes']:.4g}, activation sparsity {work['activation_sparsity']:.3f}")
    return lines


def _target(t: dict[str, Any]) -> list[str]:
    b = t["budget"]
    lines = ["", f"== {t['target']}: {t['title']} -> {t['verdict'].upper()}  (budget {b['name']}: "
                 f"cores {_fmt(b['cores'])}, chips {_fmt(b['chips'])})"]
    rows = [["layer", "cores", "range", "tile", "binding", "max util", "note"]]
    for p in t["layers"]:
        util = max(p["utilization"].values()) if p["utilization"] else None
        rows.append([p["layer"], _fmt(p["cores"]), _range(p["cores_range"]), p["tile"] or "-", p["binding"],
                     "-" if util is None else f"{100 * util:.0f}%", p["problem"]])
    lines.append(_table(rows))
    systems = ", ".join(f"{k} ({v['chips']} chips) {'yes' if v['fits'] else 'no' if v['fits'] is False else '?'}"
                        for k, v in t["systems"].items())
    lines.append(f"total cores {_fmt(t['cores'])} (range {_range(t['cores_range'])}), chips {_fmt(t['chips'])}"
                 + (f"; fits on: {systems}" if systems else ""))
    for c in t["checks"]:
        head = "" if c["headroom"] is None else f", headroom {100 * c['headroom']:.1f}%"
        lines.append(f"  {c['limit']}: need {_fmt(c['need'])}"
                     + (f" (up to {_fmt(c['need_high'])})" if c["need_high"] not in (None, c["need"]) else "")
                     + f" of {_fmt(c['have'])}{head} [{c['basis']}]")
    e = t["energy_latency"]
    if e["energy_uj"] is not None or e["latency_ms"] is not None:
        parts = f" (dynamic {_range(e['dynamic_uj'])}, static {_range(e['static_uj'])})" if e["static_uj"] else ""
        lines.append(f"  energy per inference {_range(e['energy_uj'])} uJ{parts}, latency {_range(e['latency_ms'])} "
                     f"ms ({e['note']})")
        lines += [f"    basis: {line}" for line in e["basis"]]
    lines += [f"  unknown: {line}" for line in e["unknown"]]
    lines += [f"  published (context, not this network): {line}" for line in e["published_measurements_context"]]
    if t["unknown_in_profile"]:
        lines.append(f"  unknown in the profile (never filled in): {', '.join(t['unknown_in_profile'])}")
    return lines


def render(result: dict[str, Any]) -> str:
    lines = _network(result)
    for t in result["targets"]:
        lines += _target(t)
    return "\n".join(lines)


def plot(result: dict[str, Any], path: str | Path, *, force: bool = True) -> Path:
    """Cores (with range) and the highest per-core utilization per layer, one panel per target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = result["targets"]
    fig, axes = plt.subplots(len(targets), 1, figsize=(max(6.0, 0.9 * len(result["layers"]) + 3), 3.2 * len(targets)),
                             squeeze=False)
    for ax, t in zip(axes[:, 0], targets, strict=True):
        names = [p["layer"] for p in t["layers"]]
        cores = [p["cores"] or 0 for p in t["layers"]]
        lo = [c - (p["cores_range"][0] if p["cores_range"][0] is not None else c) for c, p in zip(cores, t["layers"],
                                                                                                  strict=True)]
        hi = [(p["cores_range"][1] if p["cores_range"][1] is not None else c) - c for c, p in zip(cores, t["layers"],
                                                                                                  strict=True)]
        x = range(len(names))
        err = [[max(0, v) for v in lo], [max(0, v) for v in hi]]
        ax.bar(x, cores, color="tab:blue", yerr=err, capsize=4, label="cores (range)")
        ax.set_ylabel("cores")
        ax.set_xticks(list(x), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{t['target']}: {t['verdict']} (total {t['cores']} cores, {t['chips']} chip(s))", fontsize=9)
        util_ax = ax.twinx()
        util = [100 * max(p["utilization"].values()) if p["utilization"] else 0 for p in t["layers"]]
        util_ax.plot(list(x), util, "o-", color="tab:red", label="max per-core utilization")
        util_ax.set_ylabel("utilization %", color="tab:red")
        util_ax.set_ylim(0, max([110.0] + [u + 10 for u in util]))
    fig.tight_layout()
    with atomic_path(path, force=force) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)
