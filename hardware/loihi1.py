"""Loihi 1 packing (NengoLoihi's synapse-memory model, docs/hardware.md section 3.2 last paragraph).

Per core: <= 1,024 compartments, <= 4,096 input axons, and the synapse bits of all input axons within
128 KB. Each input axon stores its synapses in blocks of at most 64; a block costs
``n * (weight bits [+ index bits when sparse]) + header`` bits, rounded up to 64-bit words. The cheaper of
the dense and sparse encodings is used, so unstructured pruning lowers the cost. Conv layers have no
shared-weight (population) model here: they are counted as explicit synapses, an upper bound.
"""

from __future__ import annotations

import math

import numpy as np

from snndeploy.hardware.layers import LayerCount
from snndeploy.hardware.placement import Placement, closest_limit
from snndeploy.hardware.profile import Profile


def _weight_bits(layer: LayerCount, allowed: list[int]) -> int:
    need = min(8, layer.bits.bits + int(layer.bits.signed))
    return int(min((b for b in allowed if b >= need), default=max(allowed)))


def axon_bits(synapses: float, bits_each: int, block: int, header: int, word: int) -> float:
    """Bits one input axon needs for ``synapses`` synapses: full blocks of ``block`` plus a remainder block."""
    full, rest = divmod(int(math.ceil(synapses)), block)
    cost = full * math.ceil((block * bits_each + header) / word) * word
    if rest:
        cost += math.ceil((rest * bits_each + header) / word) * word
    return float(cost)


def _core_bits(layer: LayerCount, n: int, profile: Profile) -> tuple[float, str]:
    """Synapse bits on the fullest core holding ``n`` of the layer's neurons, and the encoding used."""
    block, header = int(profile.value("packing.block_synapses")), int(profile.value("packing.block_header_bits"))
    word = int(profile.value("packing.word_bits"))
    w_bits = _weight_bits(layer, [int(b) for b in profile.value("packing.weight_bits_allowed")])
    idx_bits = min(int(profile.value("packing.index_bits_max")), max(6, math.ceil(math.log2(max(n, 2)))))
    share = n / layer.neurons
    if layer.op == "dense":
        dense = layer.axons_in * axon_bits(n, w_bits, block, header, word)
        fanout = layer.in_fanout if layer.in_fanout is not None else np.full(layer.in_neurons, layer.in_fanout_mean)
        if layer.recurrent_fanout is not None:
            fanout = np.concatenate([fanout, layer.recurrent_fanout])
        fanout = np.concatenate([fanout, np.full(layer.bias_axons, layer.bias_fanout)])
        per_axon = np.ceil(fanout * share)
        full, rest = np.divmod(per_axon, block)
        sparse = float((full * np.ceil((block * (w_bits + idx_bits) + header) / word) * word
                        + (rest > 0) * np.ceil((rest * (w_bits + idx_bits) + header) / word) * word).sum())
        return (dense, "dense") if dense <= sparse else (sparse, "sparse")
    # conv / pool / input: explicit synapses spread over the input axons that feed this core
    axons = min(layer.in_neurons, max(1, math.ceil(layer.in_neurons * share)))
    per_axon = layer.synapses_nonzero * share / axons
    return axons * axon_bits(per_axon, w_bits + idx_bits, block, header, word), "sparse (conv unrolled)"


def place(layer: LayerCount, profile: Profile) -> Placement:
    budget = {"Compartments": profile.value("core.compartments"), "AxonsIn": profile.value("core.axons_in"),
              "SynapseBits": profile.value("core.synapse_bits")}
    basis = (f"NengoLoihi synapse-memory model: blocks of {profile.value('packing.block_synapses')} synapses, "
             f"cheaper of dense/sparse encoding [{profile.cite('packing.block_synapses')}; "
             f"{profile.cite('core.synapse_bits')}]")
    n_total = layer.neurons
    parts = max(1, math.ceil(n_total / budget["Compartments"]))
    fan_in = layer.axons_in if layer.op == "dense" else None
    if fan_in is not None and fan_in > budget["AxonsIn"]:
        return Placement(layer.name, None, None, None, "AxonsIn", False, basis, budget=budget,
                         problem=f"fan-in {fan_in} exceeds {int(budget['AxonsIn'])} input axons per core")
    while parts <= n_total:
        n = math.ceil(n_total / parts)
        bits, encoding = _core_bits(layer, n, profile)
        axons = fan_in if fan_in is not None else min(layer.in_neurons, math.ceil(layer.in_neurons * n / n_total))
        if bits <= budget["SynapseBits"] and axons <= budget["AxonsIn"]:
            usage = {"Compartments": n, "AxonsIn": axons, "SynapseBits": bits}
            binding = "Compartments" if parts == math.ceil(n_total / budget["Compartments"]) and parts > 1 else (
                "SynapseBits" if parts > 1 else closest_limit(usage, budget))
            return Placement(layer.name, parts, parts, parts, binding, True, f"{basis}; {encoding}",
                             f"{n} neurons", usage, budget)
        parts = max(parts + 1, math.ceil(parts * bits / budget["SynapseBits"]),
                    math.ceil(parts * axons / budget["AxonsIn"]))
    return Placement(layer.name, None, None, None, "SynapseBits", False, basis, budget=budget,
                     problem="one neuron's input synapses do not fit one core")
