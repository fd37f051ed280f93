"""Loihi 2 packing model (docs/hardware.md section 3.2): netx layers split into tiles, one tile per neuro core.

Per core the compiler checks Neurons, NeuronGr, AxonIn and SynMem (S7 printouts); layers never share
cores. Conv/pool/input layers are tiled by a power-of-two channel split that fits SynMem and a spatial
split that fits the neuron budget (this reproduces the published PilotNet and YOLO-KP conv counts). Dense
layers repeat the compiler's split-by-violation-ratio loop with a calibrated SynMem cost; a layer that had to be split
holds at most ``packing.dense_split_max_neurons`` neurons per core (the most any split dense layer shows in the
published compiles; it is what makes Oxford's hidden layer 3 cores). Dense layers also carry the [lower bound,
2 x bound] band of section 3.2, because the true dense SynMem encoding is not public.
"""

from __future__ import annotations

import math

from snndeploy.hardware.layers import LayerCount
from snndeploy.hardware.placement import Placement, closest_limit
from snndeploy.hardware.profile import Profile


def _budgets(profile: Profile) -> dict[str, float]:
    return {"Neurons": profile.value("core.neurons"), "NeuronGr": profile.value("core.neuron_groups"),
            "AxonIn": profile.value("core.axons_in"), "SynMem": profile.value("core.synmem_units")}


def _dense_cost(fan_in: int, neurons: int, slots: float) -> int:
    """SynMem units for ``neurons`` on one core: at least one unit per input axon (section 3.2 rule 2)."""
    return fan_in * max(1, math.ceil(neurons / slots))


def dense_cores(fan_in: int, neurons: int, profile: Profile) -> tuple[int, int, int, str]:
    """(point, low, high, binding) for a dense layer; the point follows the compiler's violation-ratio loop."""
    budget = _budgets(profile)
    slots_point = profile.value("packing.dense_slots_point")
    slots_lo, slots_hi = profile.value("packing.dense_slots_per_unit")
    over_lo, over_hi = profile.value("packing.dense_overpartition")
    parts = max(1, math.ceil(neurons / budget["Neurons"]))
    binding = "Neurons" if parts > 1 else "none"
    for _ in range(64):
        ratio = _dense_cost(fan_in, math.ceil(neurons / parts), slots_point) / budget["SynMem"]
        if ratio <= 1 or parts >= neurons:
            break
        parts = min(neurons, parts * math.ceil(ratio))
        binding = "SynMem"
    if binding == "SynMem":  # section 3.2 rule 2 plus the per-core cap of split dense layers seen in the compiles
        parts = min(neurons, max(parts, math.ceil(neurons / profile.value("packing.dense_split_max_neurons"))))
    neuron_bound = math.ceil(neurons / budget["Neurons"])
    low = max(neuron_bound, math.ceil(over_lo * fan_in * neurons / (slots_hi * budget["SynMem"])))
    if _dense_cost(fan_in, math.ceil(neurons / neuron_bound), slots_lo) <= budget["SynMem"]:
        high = neuron_bound  # fits even at the least favourable packing seen: no split (section 3.2 rule 3)
    else:
        high = max(neuron_bound, math.ceil(over_hi * math.ceil(fan_in * neurons / (slots_lo * budget["SynMem"]))))
    return parts, min(low, parts), max(high, parts), binding


def _dense(layer: LayerCount, profile: Profile) -> Placement:
    budget = _budgets(profile)
    fan_in, n = layer.axons_in, layer.neurons
    cap = profile.value("packing.dense_split_max_neurons")
    basis = (f"dense: SynMem = fan-in x ceil(n / {profile.value('packing.dense_slots_point')}) units per core, split "
             f"by violation ratio, once split at most {cap} neurons per core "
             f"[{profile.cite('packing.dense_slots_point')}]; range = section 3.2 band "
             f"[{profile.cite('packing.dense_slots_per_unit')}]")
    if fan_in > min(budget["AxonIn"], budget["SynMem"]):
        limit = "AxonIn" if fan_in > budget["AxonIn"] else "SynMem"
        usage = {"AxonIn": fan_in, "SynMem": fan_in}
        return Placement(layer.name, None, None, None, limit, False, basis, usage=usage, budget=budget,
                         problem=f"fan-in {fan_in} needs more than one core's {limit} budget "
                                 f"({int(budget[limit])}) and netx cannot split a dense layer's inputs")
    point, low, high, binding = dense_cores(fan_in, n, profile)
    per_core = math.ceil(n / point)
    usage = {"Neurons": per_core, "NeuronGr": 1, "AxonIn": fan_in,
             "SynMem": _dense_cost(fan_in, per_core, profile.value("packing.dense_slots_point"))}
    if binding == "none":
        binding = closest_limit(usage, budget)
    return Placement(layer.name, point, low, high, binding, True, basis, f"{per_core} neurons", usage, budget)


def conv_synmem(c_in_per_group: int, kernel: tuple[int, int], c_tile: int, bits: int, word_bits: int) -> int:
    """SynMem units of one conv tile: C_in * k^2 * ceil(c_tile (b+1) / 64) (section 3.2 rule 1a)."""
    return c_in_per_group * kernel[0] * kernel[1] * math.ceil(c_tile * (bits + 1) / word_bits)


def _tiles(size: int) -> list[int]:
    """Candidate tile sizes size/2^i (rounded up) down to 1."""
    out, i = [], 0
    while True:
        t = math.ceil(size / 2**i)
        if not out or t != out[-1]:
            out.append(t)
        if t == 1:
            return out
        i += 1


def _tiled(layer: LayerCount, profile: Profile) -> Placement:
    budget = _budgets(profile)
    c, h, w = (layer.out_shape + (1, 1))[:3] if len(layer.out_shape) == 1 else layer.out_shape
    c_in_g = layer.in_channels // max(layer.groups, 1)
    bits = max(1, min(layer.bits.bits, int(profile.value("packing.weight_bits_max"))))
    word = int(profile.value("packing.conv_word_bits"))
    basis = (f"{layer.op}: channel tile C/2^j fitting SynMem = C_in k^2 ceil(c_t (b+1)/{word}) with b={bits}, then "
             f"power-of-two spatial tiles within {int(budget['Neurons'])} neurons, fewest cores "
             f"[{profile.cite('packing.conv_word_bits')}; {profile.cite('core.neurons')}]")
    c_tile = next((t for t in _tiles(c) if conv_synmem(c_in_g, layer.kernel, t, bits, word) <= budget["SynMem"]), None)
    if c_tile is None:
        usage = {"SynMem": conv_synmem(c_in_g, layer.kernel, 1, bits, word)}
        return Placement(layer.name, None, None, None, "SynMem", False, basis, usage=usage, budget=budget,
                         problem="one output channel's kernel does not fit one core's SynMem")
    best: tuple[int, int, int] | None = None
    for h_t in _tiles(h):
        room = budget["Neurons"] // (h_t * c_tile)
        if room < 1:
            continue
        w_t = min(2 ** int(math.log2(room)), 2 ** math.ceil(math.log2(w)))
        cores = math.ceil(w / w_t) * math.ceil(h / h_t) * math.ceil(c / c_tile)
        if best is None or cores < best[0]:
            best = (cores, h_t, w_t)
    if best is None:
        return Placement(layer.name, None, None, None, "Neurons", False, basis, budget=budget,
                         problem=f"a channel tile of {c_tile} exceeds the per-core neuron budget")
    cores, h_t, w_t = best
    usage = {"Neurons": min(w_t, w) * h_t * c_tile, "NeuronGr": 1, "AxonIn": min(layer.in_neurons, 2),
             "SynMem": conv_synmem(c_in_g, layer.kernel, c_tile, bits, word)}
    split_c = math.ceil(c / c_tile) > 1
    binding = "SynMem" if split_c else ("Neurons" if cores > 1 else closest_limit(usage, budget))
    return Placement(layer.name, cores, cores, cores, binding, True, basis, f"{min(w_t, w)}x{h_t}x{c_tile}",
                     usage, budget)


def place(layer: LayerCount, profile: Profile) -> Placement:
    """Cores for one layer on Loihi 2 (every layer gets its own cores; section 3.1)."""
    if layer.op == "dense":
        return _dense(layer, profile)
    return _tiled(layer, profile)
