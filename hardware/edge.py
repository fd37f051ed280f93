"""Packing for the other edge targets: TrueNorth crossbars, Speck (DYNAP-CNN) cores, Xylo, SpiNNaker 2, Akida.

Each rule uses only the published limits in the target's profile; where a target publishes no per-core
capacity (SpiNNaker 2 neurons per PE, Akida NPU capacity) the core count stays unknown (``None``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

from snndeploy.hardware.layers import LayerCount
from snndeploy.hardware.placement import Placement, closest_limit
from snndeploy.hardware.profile import Profile


def truenorth(layer: LayerCount, profile: Profile) -> Placement:
    """256 x 256 binary crossbar per core: neuron tiles x axon tiles of the fan-in (a lower bound past 256)."""
    neurons, axons = profile.value("core.neurons"), profile.value("core.axons")
    fan_in = layer.axons_in if layer.op == "dense" else max(layer.fan_in_max, 1)
    cores = math.ceil(layer.neurons / neurons) * math.ceil(fan_in / axons)
    usage = {"Neurons": min(layer.neurons, neurons), "Axons": min(fan_in, axons)}
    budget = {"Neurons": neurons, "Axons": axons}
    problem = ""
    if fan_in > axons:
        problem = f"fan-in {fan_in} > {axons} axons: splitting inputs across cores needs extra summing neurons"
    basis = (f"crossbar tiles: ceil(N/{neurons}) x ceil(fan-in/{axons}) [{profile.cite('core.neurons')}]; "
             "weights must map to the axon types of a binary crossbar")
    binding = "Axons" if fan_in > axons else ("Neurons" if cores > 1 else closest_limit(usage, budget))
    return Placement(layer.name, cores, cores, cores, binding, True, basis, "", usage, budget, problem)


def _pow2(x: int) -> int:
    return 2 ** math.ceil(math.log2(max(x, 1)))


def speck_memory(layer: LayerCount) -> tuple[int, int]:
    """(kernel memory, neuron memory) entries of a DYNAP-CNN layer (sinabs memory_summary rule, S15)."""
    if layer.op == "dense":
        c_in, kernel = (layer.in_shape[0], (layer.in_shape[1], layer.in_shape[2])) if len(layer.in_shape) == 3 \
            else (layer.in_neurons, (1, 1))
        c_out, fy, fx = layer.neurons, 1, 1
    else:
        c_in = layer.in_channels // max(1, layer.groups) if layer.op == "conv" else 1
        kernel = layer.kernel
        c_out, fy, fx = (layer.out_shape + (1, 1))[:3] if len(layer.out_shape) == 1 else layer.out_shape
    kmem = c_in * _pow2(kernel[0] * kernel[1]) * _pow2(c_out)
    nmem = c_out * _pow2(fy) * _pow2(fx)
    return int(kmem), int(nmem)


def speck(layers: tuple[LayerCount, ...], profile: Profile) -> list[Placement]:
    """Each conv/dense layer takes one of the 9 cores whose kernel and neuron memories hold it (max matching);
    sum pooling rides on the previous layer's core."""
    kmem_cap = [int(v) for v in profile.value("core.kernel_memory")]
    nmem_cap = [int(v) for v in profile.value("core.neuron_memory")]
    basis = f"DYNAP-CNN memories per core, bipartite layer-to-core matching [{profile.cite('core.kernel_memory')}]"
    # sum pooling rides on the previous core; a leading input layer is the chip's input stage (DVS / events in)
    needs = [None if lay.op == "pool" or (i == 0 and lay.op == "input") else speck_memory(lay)
             for i, lay in enumerate(layers)]
    rows = [i for i, need in enumerate(needs) if need is not None]
    fits = np.array([[needs[i][0] <= k and needs[i][1] <= n for k, n in zip(kmem_cap, nmem_cap, strict=True)]
                     for i in rows], dtype=bool).reshape(len(rows), len(kmem_cap))
    match = maximum_bipartite_matching(csr_matrix(fits.astype(np.int8)), perm_type="column") if rows else []
    out = []
    for layer, need in zip(layers, needs, strict=True):
        if need is None:
            where = "sum pooling runs inside the previous core" if layer.op == "pool" else "chip input stage"
            out.append(Placement(layer.name, 0, 0, 0, "none", True, where))
            continue
        r = rows.index(layers.index(layer))
        core = int(match[r]) if len(match) else -1
        problem = _speck_limits(layer, profile)
        if core < 0:
            problem = problem or ("no free core holds its kernel/neuron memory" if fits[r].any()
                                  else "kernel or neuron memory larger than every core's")
        budget = {"KernelMem": kmem_cap[core] if core >= 0 else max(kmem_cap),
                  "NeuronMem": nmem_cap[core] if core >= 0 else max(nmem_cap)}
        usage = {"KernelMem": need[0], "NeuronMem": need[1]}
        one = 1 if core >= 0 else None
        out.append(Placement(layer.name, one, one, one, closest_limit(usage, budget),
                             core >= 0 and not problem, basis, f"core {core}" if core >= 0 else "", usage, budget,
                             problem))
    return out


def _speck_limits(layer: LayerCount, profile: Profile) -> str:
    if layer.out_channels > profile.value("limits.max_channels"):
        return f"{layer.out_channels} channels > {profile.value('limits.max_channels')}"
    if layer.op == "conv" and max(layer.kernel) > profile.value("limits.max_kernel"):
        return f"kernel {layer.kernel} larger than {profile.value('limits.max_kernel')}"
    return ""


def xylo(layers: tuple[LayerCount, ...], profile: Profile) -> list[Placement]:
    """One Xylo core: first layer <= input channels, hidden layers share the hidden neurons, last <= outputs."""
    lim = {k: profile.value(f"limits.{k}") for k in ("input_channels", "hidden_neurons", "output_neurons",
                                                      "max_fanout")}
    hidden = sum(lay.neurons for lay in layers[:-1])
    basis = f"Xylo single-core limits [{profile.cite('limits.hidden_neurons')}]"
    out = []
    for i, layer in enumerate(layers):
        problem = ""
        if layer.op in ("conv", "pool"):
            problem = "Xylo runs dense (and recurrent) layers only"
        elif i == 0 and layer.in_neurons > lim["input_channels"]:
            problem = f"{layer.in_neurons} inputs > {lim['input_channels']} input channels"
        elif i == len(layers) - 1 and layer.neurons > lim["output_neurons"]:
            problem = f"{layer.neurons} outputs > {lim['output_neurons']} output neurons"
        elif i < len(layers) - 1 and hidden > lim["hidden_neurons"]:
            problem = f"{hidden} hidden neurons in all > {lim['hidden_neurons']}"
        elif i > 0 and layer.in_fanout_max > lim["max_fanout"]:
            problem = f"a neuron fans out to {layer.in_fanout_max} > {lim['max_fanout']}"
        usage = {"Hidden": hidden if i < len(layers) - 1 else 0, "FanOut": layers[i + 1].in_fanout_max
                 if i + 1 < len(layers) else 0}
        budget = {"Hidden": lim["hidden_neurons"], "FanOut": lim["max_fanout"]}
        out.append(Placement(layer.name, 1 if i == 0 else 0, 1 if i == 0 else 0, 1 if i == 0 else 0,
                             closest_limit(usage, budget), not problem, basis, "", usage, budget, problem))
    return out


def spinnaker2(layer: LayerCount, profile: Profile) -> Placement:
    """Neurons per PE and the synapse row format are software-defined: cores stay unknown."""
    return Placement(layer.name, None, None, None, "unknown", True,
                     f"neurons per PE unknown (software-defined); {profile.value('chip.cores')} PEs of "
                     f"{profile.value('core.sram_kb')} KB per chip [{profile.cite('chip.cores')}]")


def akida(layer: LayerCount, profile: Profile) -> Placement:
    """Akida layer constraints (weight bits, fully-connected input size); NPU capacity is unknown."""
    problem = ""
    bits = layer.bits.bits + int(layer.bits.signed)
    if layer.op == "dense":
        if layer.in_neurons > profile.value("limits.fc_max_inputs"):
            problem = f"{layer.in_neurons} inputs > {profile.value('limits.fc_max_inputs')} (fully connected)"
        elif bits > profile.value("limits.fc_weight_bits_max"):
            problem = (f"weights need {bits} bits (with sign); Akida fully-connected layers take <= "
                       f"{profile.value('limits.fc_weight_bits_max')} (re-quantise)")
    elif layer.op == "conv":
        sizes = profile.value("limits.conv_kernel_sizes", [])
        if sizes and max(layer.kernel) not in sizes:
            problem = f"kernel {layer.kernel} not in {sizes}"
        elif bits > profile.value("limits.conv_weight_bits_max", 4):
            problem = (f"weights need {bits} bits (with sign); Akida conv layers take <= "
                       f"{profile.value('limits.conv_weight_bits_max', 4)}")
    return Placement(layer.name, None, None, None, "unknown", not problem,
                     f"Akida 1.0 layer constraints [{profile.cite('limits.fc_max_inputs')}]; NPU capacity unknown",
                     problem=problem)
