"""LoihiNet <-> NIR graphs (``.nir`` files written and read with the ``nir`` package).

Standard nodes: ``Input``, ``Flatten``, ``Linear``, ``Conv2d``, ``SumPool2d``, ``CubaLIF``, ``Delay``, ``Output``
(recurrence as a ``Linear`` edge from a neuron node back to itself). NIR neurons are continuous-time; with
time step ``dt`` (graph metadata) the Loihi CUBA neuron is their forward-Euler discretisation:

* ``tau_syn = dt / (iDecay/4096)``, ``tau_mem = dt / (vDecay/4096)`` (``inf`` for a zero decay);
* ``r = tau_mem / dt`` and ``w_in = gain * tau_syn / dt`` so that synaptic input reaches ``u`` and ``u`` reaches
  ``v`` with factor one (``gain`` is the pooling or input-scale weight, 1 after Linear/Conv2d);
* ``v_leak = bias / (vDecay/4096)`` (the per-step voltage bias), ``v_reset = 0``, spike when ``v > v_threshold``.

The Loihi values themselves (integer decays, threshold mantissa, integer weights with exponent, bias,
the layer's op and gain) travel in each node's ``metadata['snndeploy']``, so a file written here reads back
exactly.

A sigma-delta layer (lava-dl SDNN, :class:`~snndeploy.export.ir.SigmaDelta`) is its synapse node followed by a
``nir.I`` node (``r = 1``): the sigma unit, NIR's integrator. NIR has no activation or delta-encoding primitive,
so the rest of the neuron travels in the node's ``metadata['snndeploy']``: ``neuron: sigma_delta`` (``delta`` for
the input encoder, an ``I`` node straight after the ``Input``), ``threshold``, ``vth_mant``, ``bias``,
``activation``, ``cum_error``, ``sigma_output``, ``spike_exp``, ``state_exp``, ``message_bits``. The file is a valid
NIR graph with the network's structure and weights; only snndeploy (or a reader of that metadata) runs it as a
sigma-delta network. Graphs from other tools (snnTorch, Norse, sinabs, rockpool) are read from the standard fields;
``Affine`` bias, ``LIF``, ``IF``, ``AvgPool2d`` and ``Scale`` are mapped too; anything else is named.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from snndeploy import validate
from snndeploy.atomic import atomic_path
from snndeploy.errors import UserError
from snndeploy.export import checks
from snndeploy.export.ir import DECAY_UNITY, W_SCALE, Layer, LoihiNet, Neuron, SigmaDelta, per_neuron
from snndeploy.export.quantize import fit_weights

FORMAT = "snndeploy-loihi-cuba/1"
KEY = "snndeploy"
# Published NIR graphs that record no time steps where their paper states them, by SHA-256 of the file
# (docs/benchmarks.md "Real networks"): where it is said, steps per sample, how the sample is fed and read.
PUBLISHED_NIR = {
    "e2fa55bda7aab5a772485e1b690358bcb825b303eca7dc426e3973937fcb5bcb": (
        "NIR paper (paper/02_cnn/lava_apply.ipynb: N-MNIST events as tonic ToFrame(time_window=1e3) frames, 1 ms "
        "each; cnn_numbers.npy: 300 steps per digit; class = highest mean output)", 300, "events", "spike_count"),
}


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    out = np.full(a.shape, np.inf)
    np.divide(a, b, out=out, where=b != 0)
    return out


def _plain(meta: dict) -> dict:
    """nir.write compresses every array: 0-d arrays must be written as plain numbers."""
    return {k: (v.item() if isinstance(v, np.ndarray) and v.ndim == 0 else v) for k, v in meta.items()}


def _neuron_node(layer: Layer, dt: float, gain: float):
    import nir

    n, shape = layer.neuron, layer.out_shape
    du = per_neuron(n.i_decay, shape).astype(np.float64) / DECAY_UNITY
    dv = per_neuron(n.v_decay, shape).astype(np.float64) / DECAY_UNITY
    bias = np.zeros(shape) if n.bias is None else per_neuron(n.bias, shape).astype(np.float64)
    tau_syn, tau_mem = _div(dt, du), _div(dt, dv)
    threshold = per_neuron(n.threshold, shape).astype(np.float64) if n.spiking else np.full(shape, np.inf)
    meta = {"i_decay": np.asarray(n.i_decay, dtype=np.int64), "v_decay": np.asarray(n.v_decay, dtype=np.int64),
            "threshold": np.asarray(n.threshold, dtype=np.float64), "vth_mant": n.vth_mant,
            "spiking": int(n.spiking), "gain": float(gain), "layer": layer.name, "op": layer.op,
            "reset": "zero"}
    if n.bias is not None:
        meta["bias"] = np.asarray(n.bias, dtype=np.float64)
    v_leak = np.where(bias != 0, _div(bias, dv), 0.0)  # no bias: 0 even where the voltage does not decay
    return nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=_div(tau_mem, dt), v_leak=v_leak,
                       v_threshold=threshold, v_reset=np.zeros(shape), w_in=gain * _div(tau_syn, dt),
                       metadata={KEY: _plain(meta)})


def _conv_bias(layer: Layer) -> np.ndarray:
    """A conv layer's synaptic bias as NIR's per-channel ``Conv2d`` bias (zeros without one)."""
    if layer.syn_bias is None:
        return np.zeros(layer.out_shape[0], np.float32)
    bias = np.asarray(layer.syn_bias, dtype=np.float64).reshape(layer.out_shape[0], -1)
    if np.any(bias != bias[:, :1]):
        raise UserError(f"{layer.name}: a synaptic bias that varies within a channel has no NIR Conv2d form")
    return bias[:, 0]


def _sd_node(layer: Layer):
    """``nir.I`` standing for the sigma unit; the sigma-delta parameters in metadata (see the module doc)."""
    import nir

    n: SigmaDelta = layer.neuron
    meta = {"neuron": "delta" if layer.op == "input" else "sigma_delta", "layer": layer.name, "op": layer.op,
            "threshold": np.asarray(n.threshold, dtype=np.float64), "vth_mant": n.vth_mant,
            "activation": n.activation, "cum_error": int(n.cum_error), "sigma_output": int(n.sigma_output),
            "spike_exp": n.spike_exp, "state_exp": n.state_exp, "message_bits": n.message_bits}
    if n.bias is not None:
        meta["bias"] = np.asarray(n.bias, dtype=np.float64)
    return nir.I(r=np.ones(layer.out_shape), metadata={KEY: _plain(meta)})


def _sd_from_meta(meta: dict) -> SigmaDelta:
    bias = meta.get("bias")
    return SigmaDelta(threshold=np.asarray(meta["threshold"], dtype=np.float64),
                      bias=None if bias is None else np.asarray(bias, dtype=np.float64),
                      activation=str(meta["activation"]), cum_error=bool(meta["cum_error"]),
                      sigma_output=bool(meta["sigma_output"]), spike_exp=int(meta["spike_exp"]),
                      state_exp=int(meta["state_exp"]), message_bits=int(meta["message_bits"]))


def _weight_meta(w: np.ndarray) -> dict:
    ints = np.round(np.asarray(w, dtype=np.float64) * W_SCALE)
    meta = {"w_scale": W_SCALE, "weight_int": ints.astype(np.int32),
            "density": float(np.count_nonzero(ints)) / max(ints.size, 1),
            "on_grid": int(np.allclose(ints, np.asarray(w, dtype=np.float64) * W_SCALE, rtol=0, atol=1e-6))}
    try:
        _, bits, exp = fit_weights(ints.astype(np.int64), "w")
        meta.update(num_weight_bits=bits, weight_exp=exp)
    except ValueError:
        pass
    return meta


def to_nir(net: LoihiNet):
    """The NIR graph of ``net`` (standard nodes plus exact Loihi metadata)."""
    import nir

    nodes: dict = {"input": nir.Input(input_type={"input": np.array(net.input_shape)})}
    edges: list[tuple[str, str]] = []
    prev, prev_shape = "input", tuple(net.input_shape)
    for layer in net.layers:
        name = layer.name
        gain = 1.0
        if len(prev_shape) > 1 and layer.op == "dense":
            nodes[f"{name}_flatten"] = nir.Flatten(input_type={"input": np.array(prev_shape)}, start_dim=0,
                                                   end_dim=-1)
            edges.append((prev, f"{name}_flatten"))
            prev = f"{name}_flatten"
        syn = f"{name}_syn"
        if layer.op == "dense" and layer.syn_bias is not None:  # NIR's Affine bias is a synaptic bias
            w = layer.dense_weight().astype(np.float32)
            nodes[syn] = nir.Affine(weight=w, bias=np.asarray(layer.syn_bias, dtype=np.float64).reshape(-1),
                                    metadata={KEY: _weight_meta(w)})
        elif layer.op == "dense":
            w = layer.dense_weight().astype(np.float32)
            nodes[syn] = nir.Linear(weight=w, metadata={KEY: _weight_meta(w)})
        elif layer.op == "conv":
            w = np.asarray(layer.weight, dtype=np.float32)
            nodes[syn] = nir.Conv2d(input_shape=tuple(layer.in_shape[1:]), weight=w, stride=np.array(layer.stride),
                                    padding=np.array(layer.padding), dilation=np.array(layer.dilation),
                                    groups=layer.groups, bias=_conv_bias(layer), metadata={KEY: _weight_meta(w)})
        elif layer.op == "pool":
            gain = float(np.asarray(layer.weight).reshape(-1)[0])
            nodes[syn] = nir.SumPool2d(kernel_size=np.array(layer.kernel), stride=np.array(layer.stride),
                                       padding=np.array(layer.padding),
                                       metadata={KEY: {"in_shape": np.array(layer.in_shape),
                                                       "out_shape": np.array(layer.out_shape)}})
        else:  # input: an element-wise scale, carried by the neuron's w_in
            gain = float(np.asarray(layer.weight).reshape(-1)[0])
            syn = None
        if syn is not None:
            edges.append((prev, syn))
        sd = layer.neuron.kind == "sigma_delta"
        neuron = f"{name}_sigma" if sd else f"{name}_lif"
        nodes[neuron] = _sd_node(layer) if sd else _neuron_node(layer, net.dt, gain)
        edges.append((syn or prev, neuron))
        prev = neuron
        if layer.recurrent is not None:
            r = np.asarray(layer.recurrent, dtype=np.float32)
            nodes[f"{name}_rec"] = nir.Linear(weight=r, metadata={KEY: {**_weight_meta(r), "recurrent": 1}})
            edges += [(neuron, f"{name}_rec"), (f"{name}_rec", neuron)]
        if layer.delay is not None:
            nodes[f"{name}_delay"] = nir.Delay(delay=np.asarray(layer.delay, dtype=np.float64) * net.dt)
            edges.append((neuron, f"{name}_delay"))
            prev = f"{name}_delay"
        prev_shape = layer.out_shape
    nodes["output"] = nir.Output(output_type={"output": np.array(prev_shape)})
    edges.append((prev, "output"))
    meta = {"format": FORMAT, "name": net.name, "dt": float(net.dt), "reset": net.reset, "w_scale": W_SCALE,
            "decay_unity": DECAY_UNITY, "spike_condition": "v > v_threshold",
            "quantize": int(bool(net.meta.get("quantize", True)))}
    if net.time_steps:
        meta["time_steps"] = int(net.time_steps)
    meta.update(_io_meta(net.meta.get("io")))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={KEY: _plain(meta)}, type_check=False)


def _io_meta(io) -> dict:
    """How the network is fed and read (``snndeploy.models.spec.IOSpec``) as flat graph metadata."""
    if io is None:
        return {}
    meta = {f"io_{key}": value for key, value in (("encoding", io.encoding), ("readout", io.readout),
                                                   ("source", io.source)) if value}
    if io.normalize is not None:
        meta["io_normalize"] = np.asarray(io.normalize, dtype=np.float64)
    return meta


def _io_from_meta(gmeta: dict):
    from snndeploy.models.spec import IOSpec

    normalize = gmeta.get("io_normalize")
    return IOSpec(encoding=gmeta.get("io_encoding") or None, readout=gmeta.get("io_readout") or None,
                  normalize=None if normalize is None else tuple(float(v) for v in np.asarray(normalize)),
                  source=str(gmeta.get("io_source", "")))


def write_nir(net: LoihiNet, path: str | Path, *, force: bool = False) -> Path:
    """Write ``net`` as a ``.nir`` file (atomically; an existing file only with ``force``)."""
    import nir

    graph = to_nir(checks.check_net(net, path))  # no NaN, inf or broken shape reaches the file
    with atomic_path(path, force=force) as tmp:
        nir.write(tmp, graph)
    return Path(path)


def read_graph(path: str | Path):
    import nir

    path = validate.check_nir_file(path)  # content, dataset sizes and node types, before nir reads it whole
    try:
        graph = nir.read(path, type_check=False)
    except Exception as exc:  # h5py/nir raise many types on corrupt or foreign files
        detail = next((line for line in str(exc).splitlines() if line.strip()), "")[:120]
        raise UserError(f"not a readable NIR file ({type(exc).__name__}: {detail})", path) from None
    validate.check_graph(graph, path)
    return graph


def read_nir(path: str | Path, *, dt: float | None = None, reset: str | None = None) -> LoihiNet:
    """Read a ``.nir`` file as a LoihiNet (exact for files written here; see :func:`from_nir`)."""
    path = Path(path)
    try:
        net = checks.check_net(from_nir(read_graph(path), dt=dt, name=path.stem, reset=reset), path)
    except UserError as exc:
        raise UserError(exc.problem, path) from None
    return _published(net, path) if net.time_steps is None else net


def _published(net: LoihiNet, path: Path) -> LoihiNet:
    """``net`` with the time steps and feed its paper states (:data:`PUBLISHED_NIR`), if it is listed there."""
    from snndeploy.models.spec import IOSpec

    entry = PUBLISHED_NIR.get(hashlib.sha256(path.read_bytes()).hexdigest())
    if entry is None:
        return net
    source, steps, encoding, readout = entry
    io = IOSpec(encoding=encoding, readout=readout, source=f"time steps and feed from the {source}")
    return replace(net, time_steps=steps, meta={**net.meta, "io": io})


# ----------------------------------------------------------------------------------------------- reading


def _meta(node) -> dict:
    meta = getattr(node, "metadata", None) or {}
    return dict(meta.get(KEY, {})) if isinstance(meta.get(KEY, {}), dict) else {}


def _chain(graph) -> list[str]:
    """Node names from the Input to the Output, following forward edges (recurrent back-edges skipped)."""
    import nir

    inputs = [k for k, v in graph.nodes.items() if isinstance(v, nir.Input)]
    if len(inputs) != 1:
        raise UserError(f"expected one Input node, found {len(inputs)}")
    succ: dict[str, list[str]] = {}
    for a, b in graph.edges:
        succ.setdefault(a, []).append(b)
    order, node, seen = [], inputs[0], set()
    while True:
        order.append(node)
        seen.add(node)
        nxt = [b for b in succ.get(node, []) if b not in seen and not _is_back_edge(graph, node, b, succ)]
        if not nxt:
            break
        if len(nxt) > 1:
            raise UserError(f"node {node!r} branches to {nxt}: only chains (plus self-recurrence) are supported")
        node = nxt[0]
    return order


def _is_back_edge(graph, a: str, b: str, succ: dict) -> bool:
    """``a -> b`` where b leads straight back to a: a recurrent weight node."""
    return a in succ.get(b, [])


def _shape(arr) -> tuple[int, ...]:
    return tuple(int(s) for s in np.asarray(arr).reshape(-1))


NEURONS = ("CubaLIF", "LIF", "IF", "CubaLI", "LI", "I", "Threshold")  # NIR neuron nodes read as a CUBA neuron
TIMED_NEURONS = ("CubaLIF", "LIF", "CubaLI", "LI")  # their decays depend on the time step
READ_OUTS = ("CubaLI", "LI", "I")  # leaky or plain integrators without a threshold: voltage read-outs


def _loihi_values(meta: dict) -> bool:
    """Whether a neuron node carries snndeploy's exact Loihi values (a file written here), not just part of them."""
    return {"i_decay", "v_decay", "threshold"} <= meta.keys()


def _spiking_node(node) -> bool:
    return type(node).__name__ not in READ_OUTS


def _decays_and_gain(node, shape, dt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(du, dv, input gain, v_leak) of a NIR neuron node as the forward-Euler step of its equations; a node of
    None is the pass-through of a synapse read straight out (no current or voltage memory)."""
    kind = type(node).__name__
    ones = np.ones(shape)
    if kind in ("CubaLIF", "CubaLI"):
        du, dv = _div(dt, node.tau_syn), _div(dt, node.tau_mem)
        return du, dv, np.asarray(node.w_in) * du * np.asarray(node.r) * dv, np.asarray(node.v_leak, np.float64)
    if kind in ("LIF", "LI"):
        dv = _div(dt, node.tau)
        return ones, dv, np.asarray(node.r) * dv, np.asarray(node.v_leak, dtype=np.float64)
    if kind in ("IF", "I"):
        return ones, np.zeros(shape), np.asarray(node.r, dtype=np.float64), np.zeros(shape)
    return ones, ones, ones, np.zeros(shape)  # Threshold (memoryless) or no neuron node at all


def _neuron_from_nir(node, shape, dt: float, where: str, structure_only: bool = False) -> tuple[Neuron, np.ndarray]:
    """(Neuron, input gain per neuron) of a NIR neuron node (None: a synapse read out as it is)."""
    meta = _meta(node) if node is not None else {}
    if _loihi_values(meta):
        bias = meta.get("bias")
        neuron = Neuron(i_decay=np.asarray(meta["i_decay"]).astype(np.int64),
                        v_decay=np.asarray(meta["v_decay"]).astype(np.int64),
                        threshold=np.asarray(meta["threshold"], dtype=np.float64),
                        bias=None if bias is None else np.asarray(bias, dtype=np.float64),
                        spiking=bool(meta.get("spiking", 1)))
        return neuron, np.asarray(float(meta.get("gain", 1.0)))
    v_reset = getattr(node, "v_reset", None)
    if v_reset is not None and np.any(np.asarray(v_reset) != 0) and not structure_only:
        raise UserError(f"{where}: v_reset != 0 has no Loihi equivalent (Loihi resets the voltage to 0)")
    du, dv, gain, v_leak = _decays_and_gain(node, shape, dt)
    if not np.all(np.isfinite(gain)) and not structure_only:  # w_in = tau_syn = inf: only our metadata has it
        raise UserError(f"{where}: a synaptic current that never decays (tau_syn = w_in = inf) has no input gain "
                        "NIR can state; only files written by snndeploy (with its metadata) carry it")
    i_decay = np.round(np.clip(du, 0, 1) * DECAY_UNITY).astype(np.int64)
    v_decay = np.round(np.clip(dv, 0, 1) * DECAY_UNITY).astype(np.int64)
    bias = v_leak * dv
    if node is None or not _spiking_node(node):
        threshold = np.asarray(np.inf)
    else:
        threshold = np.asarray(getattr(node, "v_threshold", getattr(node, "threshold", None)), dtype=np.float64)
    return Neuron(i_decay=_squeeze(i_decay), v_decay=_squeeze(v_decay), threshold=_squeeze(threshold),
                  bias=None if not np.any(bias) else bias, spiking=bool(np.all(np.isfinite(threshold)))), \
        np.asarray(gain, dtype=np.float64)


def _squeeze(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a.reshape(-1)[:1].reshape(()) if np.unique(a).size == 1 else a


def from_nir(graph, *, dt: float | None = None, name: str = "nir", reset: str | None = None,
             structure_only: bool = False) -> LoihiNet:
    """A LoihiNet for a NIR graph: synapse node(s) then neuron node per layer; unsupported nodes are named.

    ``reset`` is the reset mechanism the network was trained with, where the graph does not record it (NIR 1.0 has
    only ``v_reset``): ``zero`` runs it as Loihi does, ``subtract`` is refused (see :func:`reset_notes`).

    ``structure_only`` is the estimator's reading: layers, shapes and weights as the graph has them (scipy.sparse
    weights stay sparse), while dynamics that only matter for running it (an unrecorded time step, reset by
    subtraction, ``v_reset``, per-neuron input gains, delays) do not stop the import. Such a net is for counting,
    not for running."""
    import nir

    if reset not in (None, *RESETS):
        raise UserError(f"unknown reset {reset!r} (use {' or '.join(RESETS)})")

    gmeta = _meta(graph)
    graph = flatten_subgraphs(graph)
    validate.check_graph(graph)
    if "dt" in gmeta:
        dt = float(gmeta["dt"])
    elif dt is None:
        if not structure_only and any(type(n).__name__ in TIMED_NEURONS for n in graph.nodes.values()):
            raise UserError("the graph does not record its time step: pass dt (--dt); snnTorch, SpikingJelly and "
                            "the NIR paper graphs use 1e-4")
        # counting with no time step: no decay is known, so a CubaLIF current keeps its memory and its synaptic
        # bias is counted as the always-on axon it needs
        dt = 0.0 if structure_only else 1.0
    order = _chain(graph)
    nodes = graph.nodes
    input_shape = _shape(nodes[order[0]].input_type["input"])
    succ: dict[str, list[str]] = {}
    for a, b in graph.edges:
        succ.setdefault(a, []).append(b)
    layers: list[Layer] = []
    shape = input_shape
    pending: dict | None = None
    flattened = False
    unrecorded: list[str] = []
    for key in order[1:]:
        node = nodes[key]
        where = f"node {key!r}"
        if isinstance(node, nir.Output):
            break
        if isinstance(node, nir.Flatten):
            flattened = len(shape) > 1
            shape = (int(np.prod(shape)),)
            continue
        synapse = _synapse_node(node, key, shape, where, keep_sparse=structure_only)
        if structure_only and pending is not None and (synapse is not None or isinstance(node, nir.Scale)):
            # counted as the graph has it: the first synapse read out as it is (no merging), then the next one
            layers.append(_layer(pending["name"], None, pending, shape, dt, nodes, succ, flattened, True))
            pending, flattened = None, False
        if synapse is not None:
            pending = synapse if pending is None else _compose(pending, synapse, where)
            shape = tuple(synapse["out_shape"])
            continue
        if isinstance(node, nir.Scale) and pending is None:
            pending = {"op": "input", "weight": np.asarray(node.scale, dtype=np.float64), "in_shape": shape,
                       "out_shape": shape, "syn_bias": np.zeros(1), "name": key}
            continue
        if isinstance(node, nir.Delay):
            if structure_only:  # axonal delays cost no synapses or neurons
                continue
            if not layers:
                raise UserError(f"{where}: a Delay before the first neuron layer is not supported")
            steps = np.asarray(node.delay, dtype=np.float64) / dt
            if not np.allclose(steps, np.round(steps)):
                raise UserError(f"{where}: delays are not whole time steps of dt={dt:g}")
            layers[-1] = replace(layers[-1], delay=np.round(steps).astype(np.int64))
            continue
        if isinstance(node, nir.I) and _meta(node).get("neuron") in ("sigma_delta", "delta"):
            layers.append(_sd_layer(key, node, pending, shape, flattened))
            shape = layers[-1].out_shape
            pending, flattened = None, False
            continue
        if type(node).__name__ in NEURONS:
            if not structure_only and _reset_of(key, node, reset) is None and _spiking_node(node):
                unrecorded.append(key)
            layers.append(_layer(key, node, pending, shape, dt, nodes, succ, flattened, structure_only))
            shape = layers[-1].out_shape
            pending, flattened = None, False
            continue
        raise UserError(f"{where}: NIR node type {type(node).__name__} is not supported by the Loihi export "
                        "(supported: Input, Flatten, Linear, Affine, Conv2d, SumPool2d, AvgPool2d, Scale, "
                        "CubaLIF, LIF, IF, CubaLI, LI, I, Delay, Output)")
    if pending is not None:  # a synapse straight into the Output: its current, read out every step
        layers.append(_layer(pending["name"], None, pending, shape, dt, nodes, succ, flattened, structure_only))
    if not layers:
        raise UserError("the NIR graph has no neuron layers")
    steps = gmeta.get("time_steps")
    return LoihiNet(name=str(gmeta.get("name", name)), input_shape=input_shape, layers=tuple(layers), dt=dt,
                    time_steps=int(steps) if steps is not None else None,
                    meta={"quantize": bool(gmeta.get("quantize", 0)), "io": _io_from_meta(gmeta),
                          "notes": reset_notes(unrecorded) if reset is None else []})


RESETS = ("zero", "subtract")


def _recorded_reset(node) -> str | None:
    """The reset mechanism a neuron node records: snndeploy's metadata (``reset``) or another tool's
    ``reset``/``reset_mechanism`` metadata key; None when it records none (NIR 1.0 has no such field)."""
    meta = getattr(node, "metadata", None) or {}
    for source in (_meta(node), meta):
        for key in ("reset", "reset_mechanism"):
            value = source.get(key)
            if value is not None:
                text = value.decode() if isinstance(value, bytes) else str(np.asarray(value).reshape(-1)[0])
                return "subtract" if "sub" in text.lower() else "zero"
    return None


def _reset_of(key: str, node, reset: str | None) -> str | None:
    """The reset node ``key`` runs with (None: the graph does not say, it runs reset to zero); reset by
    subtraction, recorded or asked for, is refused by name."""
    recorded = _recorded_reset(node)
    if (reset or recorded) == "subtract":
        how = "the graph records" if reset is None else "--reset subtract asks for"
        raise UserError(f"node {key!r}: {how} reset by subtraction, which no Lava neuron model does (Lava's LIF "
                        "and Loihi's CUBA neuron set v to 0 after a spike); what would run instead is reset to "
                        "zero: pass --reset zero to accept that change knowingly")
    return reset or recorded


def reset_notes(nodes: list[str]) -> list[str]:
    """What runs for neuron nodes whose reset mechanism the graph does not record."""
    if not nodes:
        return []
    return [f"neuron node(s) {', '.join(map(repr, nodes))}: the graph records no reset mechanism (NIR 1.0 has only "
            "v_reset = 0; snnTorch writes reset by subtraction that way too): they run with reset to zero, as "
            "snnTorch's own import does. Trained with reset by subtraction? --reset subtract refuses it (no Lava "
            "neuron model subtracts); --reset zero accepts reset to zero and drops this note"]


def _synapse_node(node, key: str, shape: tuple[int, ...], where: str, keep_sparse: bool = False) -> dict | None:
    """The pending-synapse description of a Linear/Affine/Conv2d/SumPool2d/AvgPool2d node (None for others)."""
    import nir

    if isinstance(node, (nir.Linear, nir.Affine)):
        w = _matrix(node.weight, keep_sparse)
        if w.ndim != 2:
            raise UserError(f"{where}: weight of shape {w.shape} is not a 2-D (out, in) matrix")
        if w.shape[1] != int(np.prod(shape)):
            raise UserError(f"{where}: weight of shape {w.shape} does not fit the input of shape {shape}")
        return {"op": "dense", "weight": w, "in_shape": (w.shape[1],), "out_shape": (w.shape[0],),
                "syn_bias": np.asarray(getattr(node, "bias", 0.0), dtype=np.float64), "name": key}
    if isinstance(node, nir.Conv2d):
        w = np.asarray(node.weight, dtype=np.float64)
        if w.ndim != 4 or len(shape) != 3:
            raise UserError(f"{where}: Conv2d needs a (out, in/groups, kh, kw) weight and a (C, H, W) input, got "
                            f"{w.shape} and {shape}")
        stride, dilation = _pair(node.stride), _pair(node.dilation)
        padding = _conv_padding(node.padding, w.shape[2:], dilation, where)
        out_hw = [(shape[1 + i] + 2 * padding[i] - dilation[i] * (w.shape[2 + i] - 1) - 1) // stride[i] + 1
                  for i in range(2)]
        if min(out_hw) < 1:
            raise UserError(f"{where}: Conv2d with a {w.shape[2]}x{w.shape[3]} kernel makes the {shape[1]}x{shape[2]} "
                            "input empty: a zero-size layer")
        return {"op": "conv", "weight": w, "in_shape": shape, "out_shape": (w.shape[0], *out_hw),
                "stride": stride, "padding": padding, "dilation": dilation, "groups": int(node.groups),
                "syn_bias": np.asarray(node.bias, dtype=np.float64), "name": key}
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        if len(shape) != 3:
            raise UserError(f"{where}: pooling needs a (C, H, W) input, gets {shape}")
        k, stride, padding = _pair(node.kernel_size), _pair(node.stride), _pair(node.padding)
        out_hw = [(shape[1 + i] + 2 * padding[i] - k[i]) // stride[i] + 1 for i in range(2)]
        if min(out_hw) < 1:
            raise UserError(f"{where}: pooling with a {k[0]}x{k[1]} kernel makes the {shape[1]}x{shape[2]} input "
                            "empty: a zero-size layer")
        scale = 1.0 if isinstance(node, nir.SumPool2d) else 1.0 / (k[0] * k[1])
        return {"op": "pool", "weight": np.array(scale), "in_shape": shape, "out_shape": (shape[0], *out_hw),
                "stride": stride, "padding": padding, "kernel": k, "syn_bias": np.zeros(1), "name": key}
    return None


def _conv_padding(padding, kernel, dilation: tuple[int, int], where: str) -> tuple[int, int]:
    """Integer padding of a Conv2d; ``valid`` is none, ``same`` the symmetric padding that keeps the size."""
    if not isinstance(padding, str):
        return _pair(padding)
    reach = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
    if padding == "valid":
        return 0, 0
    if padding == "same" and all(r % 2 == 0 for r in reach):
        return reach[0] // 2, reach[1] // 2
    raise UserError(f"{where}: padding {padding!r} is not supported (integers, 'valid', or 'same' with an odd "
                    "dilated kernel)")


def _pool_matrix(first: dict) -> np.ndarray:
    """The (C*Ho*Wo, C*H*W) matrix of a sum pooling (zero padding) times its weight."""
    c, h, w = first["in_shape"]
    _, ho, wo = first["out_shape"]
    (kh, kw), (sh, sw), (ph, pw) = first["kernel"], first["stride"], first["padding"]
    mat = np.zeros((c * ho * wo, c * h * w))
    for ch in range(c):
        for y in range(ho):
            for x in range(wo):
                for a in range(kh):
                    for b in range(kw):
                        iy, ix = y * sh - ph + a, x * sw - pw + b
                        if 0 <= iy < h and 0 <= ix < w:
                            mat[(ch * ho + y) * wo + x, (ch * h + iy) * w + ix] = 1.0
    return mat * float(np.asarray(first["weight"]).reshape(-1)[0])


def _compose(first: dict, second: dict, where: str) -> dict:
    """Two synapse nodes with no neuron between them, as one: sum pooling followed by Conv2d or Linear (sinabs)."""
    if first["op"] != "pool" or np.any(first["syn_bias"]):
        raise UserError(f"{where}: {first['name']!r} then {second['name']!r} without a neuron between them: only "
                        "sum/average pooling followed by Conv2d or Linear can be merged")
    if second["op"] == "dense":
        return {**second, "weight": second["weight"] @ _pool_matrix(first), "in_shape": (int(np.prod(
            first["in_shape"])),), "name": f"{first['name']}+{second['name']}"}
    k, s, p = first["kernel"], first["stride"], first["padding"]
    c, h, w = first["in_shape"]
    exact = k == s and p == (0, 0) and h % k[0] == 0 and w % k[1] == 0 and second["dilation"] == (1, 1)
    if second["op"] != "conv" or not exact:
        raise UserError(f"{where}: pooling {first['name']!r} followed by {second['name']!r} can be merged only "
                        "for non-overlapping pooling without padding on an input it divides, then a Conv2d")
    weight = np.repeat(np.repeat(second["weight"], k[0], axis=2), k[1], axis=3)
    weight = weight * float(np.asarray(first["weight"]).reshape(-1)[0])
    return {**second, "weight": weight, "in_shape": first["in_shape"],
            "stride": (second["stride"][0] * k[0], second["stride"][1] * k[1]),
            "padding": (second["padding"][0] * k[0], second["padding"][1] * k[1]),
            "name": f"{first['name']}+{second['name']}"}


def flatten_subgraphs(graph):
    """Inline nested ``NIRGraph`` nodes (snnTorch writes recurrent layers that way): inner nodes become
    ``outer.inner``; edges into the subgraph go to what its ``Input`` feeds, edges out of it leave from what feeds
    its ``Output``."""
    import nir

    if not any(isinstance(n, nir.NIRGraph) for n in graph.nodes.values()):
        return graph
    nodes, edges = {}, []
    entries: dict[str, list[str]] = {}
    exits: dict[str, list[str]] = {}
    for key, node in graph.nodes.items():
        if not isinstance(node, nir.NIRGraph):
            nodes[key] = node
            continue
        inner = flatten_subgraphs(node)
        ins = [k for k, v in inner.nodes.items() if isinstance(v, nir.Input)]
        outs = [k for k, v in inner.nodes.items() if isinstance(v, nir.Output)]
        if len(ins) != 1 or len(outs) != 1:
            raise UserError(f"subgraph {key!r} needs exactly one Input and one Output node to be inlined")
        for a, b in inner.edges:
            if a not in inner.nodes or b not in inner.nodes:
                raise UserError(f"subgraph {key!r}: edge ({a!r}, {b!r}) names a node it does not have")
        entries[key] = [f"{key}.{b}" for a, b in inner.edges if a == ins[0]]
        exits[key] = [f"{key}.{a}" for a, b in inner.edges if b == outs[0]]
        nodes.update({f"{key}.{k}": v for k, v in inner.nodes.items() if k not in (ins[0], outs[0])})
        edges += [(f"{key}.{a}", f"{key}.{b}") for a, b in inner.edges if a != ins[0] and b != outs[0]]
    for a, b in graph.edges:
        edges += [(x, y) for x in exits.get(a, [a]) for y in entries.get(b, [b])]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=graph.metadata, type_check=False)


def _pair(value) -> tuple[int, int]:
    arr = np.atleast_1d(np.asarray(value)).astype(int)
    return (int(arr[0]), int(arr[-1]))


def _sd_layer(key, node, pending, shape, flattened: bool) -> Layer:
    """A sigma-delta layer from snndeploy's metadata on a ``nir.I`` node (the input encoder has no synapse)."""
    meta = _meta(node)
    if pending is None:
        pending = {"op": "input", "weight": np.array(1.0), "in_shape": shape, "out_shape": shape, "name": key}
    if np.any(np.asarray(pending.get("syn_bias", 0.0))):
        raise UserError(f"node {pending['name']!r}: a synaptic bias before a sigma-delta unit would be integrated "
                        "every step; sigma-delta biases belong in the neuron")
    return Layer(str(meta.get("layer", key)), pending["op"], tuple(pending["in_shape"]), tuple(pending["out_shape"]),
                 _sd_from_meta(meta), pending["weight"], stride=pending.get("stride", (1, 1)),
                 padding=pending.get("padding", (0, 0)), dilation=pending.get("dilation", (1, 1)),
                 groups=pending.get("groups", 1), kernel=pending.get("kernel", (1, 1)),
                 flatten=pending["op"] == "dense" and (flattened or len(shape) > 1))


def _matrix(weight, keep_sparse: bool):
    """A dense-layer weight as float64; where ``keep_sparse`` asks (counting) scipy.sparse stays sparse CSR and
    float arrays keep their precision."""
    if sp.issparse(weight):
        return weight.tocsr() if keep_sparse else weight.toarray().astype(np.float64)
    weight = np.asarray(weight)
    return weight if keep_sparse and weight.dtype.kind == "f" else weight.astype(np.float64)  # counting: no copy


def _scale_rows(weight, gain: np.ndarray):
    """``weight`` with each output row (dense) or output channel (conv) times its gain (a scalar: all of them)."""
    gain = np.asarray(gain, dtype=np.float64)
    if gain.size == 1:
        return weight * float(gain.reshape(-1)[0])
    column = gain.reshape((-1,) + (1,) * (len(weight.shape) - 1))
    return weight.multiply(column).tocsr() if sp.issparse(weight) else weight * column


def _gain_of(op: str, gains: np.ndarray, out_shape: tuple[int, ...], where: str) -> np.ndarray:
    """The input gain folded into a layer's weights: one number, one per output row of a dense layer, or one per
    output channel of a conv layer (a shared kernel cannot take a gain per position)."""
    gains = np.round(np.asarray(gains, dtype=np.float64), 12)  # equal up to float noise of dt / tau
    if np.unique(gains).size == 1:
        return np.asarray(gains.reshape(-1)[0])
    per = per_neuron(gains, out_shape)
    if op == "dense":
        return per.reshape(-1)
    if op == "conv" and np.all(per == per.reshape(per.shape[0], -1)[:, :1, None]):
        return per.reshape(per.shape[0], -1)[:, 0]
    raise UserError(f"{where}: per-neuron input gains (w_in * r * dt / tau) are supported for dense layers and per "
                    f"channel for conv layers, not for a {op} layer")


def _layer(key, node, pending, shape, dt, nodes, succ, flattened: bool, structure_only: bool = False) -> Layer:
    meta = _meta(node) if node is not None else {}
    if pending is None:  # a neuron straight after the input or another neuron: element-wise input layer
        pending = {"op": "input", "weight": np.array(1.0), "in_shape": shape, "out_shape": shape,
                   "syn_bias": np.zeros(1), "name": key}
    out_shape = tuple(pending["out_shape"])
    neuron, gains = _neuron_from_nir(node, out_shape, dt, f"node {key!r}", structure_only)
    # counting takes the weights as the graph has them: without a recorded time step the gains are not known
    gain = np.asarray(1.0) if structure_only and not _loihi_values(meta) else \
        _gain_of(pending["op"], gains, out_shape, f"node {key!r}")
    weight = pending["weight"]
    if pending["op"] in ("pool", "input"):
        weight = np.array(float(np.asarray(weight).reshape(-1)[0]) * gain) if "gain" not in meta else \
            np.array(float(meta["gain"]))
    elif np.any(gain != 1.0):
        weight = _scale_rows(weight, gain)
    recurrent, rec_bias = None, np.zeros(1)
    for nxt in succ.get(key, []):
        if key in succ.get(nxt, []):
            recurrent = _scale_rows(_matrix(nodes[nxt].weight, structure_only), gain)
            rec_bias = np.asarray(getattr(nodes[nxt], "bias", 0.0), dtype=np.float64)
    # both biases enter the synaptic current every step (snnTorch sums the Linear outputs into syn)
    biases = [np.asarray(pending["syn_bias"], dtype=np.float64), rec_bias]
    constant = sum(per_neuron(b, out_shape) for b in biases) * per_neuron(gain, out_shape) \
        if any(np.any(b) for b in biases) else None
    syn_bias = None
    if constant is not None and np.all(np.asarray(neuron.i_decay) == DECAY_UNITY):
        # no current memory: a constant synaptic input is exactly a voltage bias
        neuron = replace(neuron, bias=constant if neuron.bias is None else per_neuron(neuron.bias, out_shape)
                         + constant)
    elif constant is not None:
        if pending["op"] not in ("dense", "conv"):
            raise UserError(f"node {pending['name']!r}: a synaptic bias into a neuron with current memory is "
                            "mapped for dense and conv layers only (one always-on input axon)")
        syn_bias = constant.reshape(-1)
    name = meta.get("layer", pending["name"])
    source = "none" if node is None else type(node).__name__
    return Layer(str(name), pending["op"], tuple(pending["in_shape"]), out_shape, neuron, weight,
                 stride=pending.get("stride", (1, 1)), padding=pending.get("padding", (0, 0)),
                 dilation=pending.get("dilation", (1, 1)), groups=pending.get("groups", 1),
                 kernel=pending.get("kernel", (1, 1)), recurrent=recurrent, syn_bias=syn_bias,
                 flatten=pending["op"] == "dense" and (flattened or len(shape) > 1),
                 meta={} if _loihi_values(meta) else {"source_neuron": source})
