"""lava-dl netx HDF5 (``.net``) <-> :class:`~snndeploy.export.ir.LoihiNet`.

netx stores Loihi integers: weights and biases in units of 1/64 of SLAYER's, decays out of 4096 and the
threshold mantissa ``vThMant``. Reading accepts everything lava-dl's SLAYER blocks write (``input``,
``dense``, ``dense_rec``, ``conv``, ``pool``, ``flatten``) for CUBA/LOIHI and SDNN (sigma-delta) neurons; other
layer or neuron types are named in the error. An SDNN input layer is netx's delta encoder: netx ignores its
weight and bias, so a file that sets them to anything but identity is refused rather than run differently.
Writing produces files that netx 0.6 loads (``pool`` layers excepted: netx refuses them, snndeploy's own Lava
converter runs them).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from snndeploy import validate
from snndeploy.atomic import atomic_path
from snndeploy.errors import UserError
from snndeploy.export import checks
from snndeploy.export.ir import (
    MAX_VTH_MANT,
    NETX_READOUT_DECAYS,
    SD_ACTIVATIONS,
    SD_EXP,
    SD_MESSAGE_BITS,
    W_SCALE,
    Layer,
    LoihiNet,
    Neuron,
    SigmaDelta,
)
from snndeploy.models.netx_import import netx_io_spec

CUBA_TYPES = ("CUBA", "LOIHI")
SDNN_TYPE = "SDNN"


def _str(ds) -> str:
    value = ds[()]
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0]
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def _pair(ds, default: int) -> tuple[int, int]:
    if ds is None:
        return (default, default)
    arr = np.atleast_1d(np.asarray(ds[()])).astype(int)
    return (int(arr[0]), int(arr[-1]))


def _neuron(group, path: Path, where: str, bias=None) -> Neuron:
    if "neuron" not in group:  # netx's read-out neuron: the current integrates, the voltage equals it
        return Neuron(i_decay=np.array(NETX_READOUT_DECAYS[0]), v_decay=np.array(NETX_READOUT_DECAYS[1]),
                      threshold=np.array(MAX_VTH_MANT / W_SCALE), bias=bias, spiking=False)
    cfg = group["neuron"]
    kind = _str(cfg["type"])
    if kind == SDNN_TYPE:
        return _sigma_delta(cfg, path, where, bias)
    if kind not in CUBA_TYPES:
        raise UserError(f"{where}: neuron type {kind!r} is not supported (only CUBA/LOIHI/SDNN)", path)
    vth = np.asarray(cfg["vThMant"][()])
    return Neuron(i_decay=np.asarray(cfg["iDecay"][()]).astype(np.int64),
                  v_decay=np.asarray(cfg["vDecay"][()]).astype(np.int64),
                  threshold=vth.astype(np.float64) / W_SCALE, bias=bias,
                  spiking=bool(np.all(vth < MAX_VTH_MANT)))


def _sigma_delta(cfg, path: Path, where: str, bias) -> SigmaDelta:
    activation = _str(cfg["activation"]) if "activation" in cfg else "relu"
    if activation not in SD_ACTIVATIONS:
        raise UserError(f"{where}: SDNN activation {activation!r} has no Lava sigma-delta model "
                        f"(only {', '.join(SD_ACTIVATIONS)})", path)
    sigma_output = "sigma_output" in cfg and bool(np.asarray(cfg["sigma_output"][()]))
    if sigma_output and bias is not None and np.any(bias):
        raise UserError(f"{where}: a sigma_output layer cannot have a bias (Lava's Sigma has none)", path)
    bits = int(np.asarray(cfg["messageBits"][()])) if "messageBits" in cfg else SD_MESSAGE_BITS
    vth = np.asarray(cfg["vThMant"][()]) if "vThMant" in cfg else np.array(0)
    return SigmaDelta(threshold=vth.astype(np.float64) / W_SCALE, bias=None if sigma_output else bias,
                      activation=activation, sigma_output=sigma_output, message_bits=bits)


def _sd_input(g, path: Path, where: str, shape) -> Layer:
    """netx's SDNN input layer: a delta encoder fed straight from the source (weight and bias are ignored)."""
    weight = float(np.asarray(g["weight"][()]).reshape(-1)[0]) if "weight" in g else W_SCALE
    bias = np.asarray(g["bias"][()]) if "bias" in g else np.zeros(1)
    if weight != W_SCALE or np.any(bias):
        raise UserError(f"{where}: an SDNN input layer with a weight or bias (netx ignores both)", path)
    return Layer(where, "input", shape, shape, _neuron(g, path, where), np.array(1.0))


def _bias(group) -> np.ndarray | None:
    return np.asarray(group["bias"][()], dtype=np.float64) / W_SCALE if "bias" in group else None


def read_netx(path: str | Path, input_shape: tuple[int, ...] | None = None, *,
              clip_weights: bool = False) -> LoihiNet:
    """Read a netx HDF5 file; ``input_shape`` (C,) or (C, H, W) is used only when the file cannot tell (no input
    layer and a convolution first: a dense first layer's fan-in is the input size).

    Every value is validated (:mod:`snndeploy.validate`); ``clip_weights`` clips weights outside Loihi's 8 bits.
    """
    path = validate.require_file(path, "netx")
    validate.check_hdf5(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise UserError(f"not a readable netx HDF5 file ({exc.__class__.__name__})", path) from None
    with f:
        if "layer" not in f:
            raise UserError("not a netx network file (no 'layer' group)", path)
        try:
            net = _read_layers(f, path, input_shape, clip_weights)
        except KeyError as exc:
            raise UserError(f"netx file is missing field {exc}", path) from None
        except UserError as exc:
            raise UserError(exc.problem, exc.path or path) from None
    return checks.check_net(net, path, integer_ranges=True, clip_weights=clip_weights)


def _dense_fan_in(group) -> tuple[int, ...] | None:
    """The input shape a file's first layer tells when it is dense: its fan-in."""
    keys = sorted(group.keys(), key=int)
    first = group[keys[0]] if keys else None
    if first is not None and "weight" in first and _str(first["type"]) in ("dense", "dense_rec"):
        return (int(np.asarray(first["weight"]).shape[-1]),)
    return None


def _read_layers(f, path: Path, input_shape, clip_weights: bool) -> LoihiNet:
    group = f["layer"]
    layers: list[Layer] = []
    input_shape = _dense_fan_in(group) or input_shape
    shape = tuple(input_shape) if input_shape else None
    net_input = shape
    flatten = False
    for idx in sorted(group.keys(), key=int):
        g = group[idx]
        kind = _str(g["type"])
        name = f"layer{idx}"
        validate.check_netx_layer(f"layer/{idx}", g, path, clip_weights=clip_weights)
        if kind == "input":
            shape = tuple(int(s) for s in g["shape"][()])
            net_input = shape
            if "neuron" in g and _str(g["neuron/type"]) == SDNN_TYPE:
                layers.append(_sd_input(g, path, name, shape))
            elif "neuron" in g:
                weight = float(np.asarray(g["weight"][()]).reshape(-1)[0]) / W_SCALE if "weight" in g else 1.0
                layers.append(Layer(name, "input", shape, shape, _neuron(g, path, name, _bias(g)),
                                    np.array(weight)))
            continue
        if kind == "flatten":
            flatten = True
            continue
        if shape is None and kind in ("dense", "dense_rec"):  # no input layer: the first fan-in tells
            shape = net_input = (int(np.asarray(g["weight"]).shape[-1]),)
        if shape is None:
            raise UserError(f"{name}: the input shape is unknown (no input layer); pass input_shape", path)
        out_shape = tuple(int(s) for s in np.atleast_1d(g["shape"][()]))
        if kind in ("dense", "dense_rec"):  # lava-dl writes a dense layer's shape as [N, 1, 1]
            out_shape = (int(np.prod(out_shape)),)
        delay = np.asarray(g["delay"][()]).astype(np.int64) if "delay" in g else None
        if kind in ("dense", "dense_rec"):
            if "weight/imag" in g:
                raise UserError(f"{name}: complex dense layers are not supported", path)
            w = np.asarray(g["weight"][()], dtype=np.float64)
            w = w.reshape(int(np.prod(out_shape)), -1) / W_SCALE
            rec = np.asarray(g["weight_rec"][()], dtype=np.float64).reshape(w.shape[0], -1) / W_SCALE \
                if kind == "dense_rec" else None
            in_shape = (int(np.prod(shape)),) if (flatten or len(shape) > 1) else shape
            layers.append(Layer(name, "dense", in_shape, out_shape, _neuron(g, path, name, _bias(g)), w,
                                flatten=flatten or len(shape) > 1, recurrent=rec, delay=delay))
        elif kind in ("conv", "pool"):
            w = np.asarray(g["weight"][()], dtype=np.float64)
            w = w.reshape(w.shape[:4]) if w.ndim >= 4 else w
            common = dict(stride=_pair(g.get("stride"), 1), padding=_pair(g.get("padding"), 0),
                          dilation=_pair(g.get("dilation"), 1), delay=delay)
            neuron = _neuron(g, path, name, _bias(g))
            if kind == "conv":
                layers.append(Layer(name, "conv", shape, out_shape, neuron, w / W_SCALE,
                                    groups=int(np.asarray(g["groups"][()])) if "groups" in g else 1, **common))
            else:
                kernel = _pair(g.get("kernelSize"), 1)
                layers.append(Layer(name, "pool", shape, out_shape, neuron,
                                    np.array(float(w.reshape(-1)[0]) / W_SCALE), kernel=kernel, **common))
        else:
            raise UserError(f"{name}: netx layer type {kind!r} is not supported", path)
        flatten = False
        shape = out_shape
    if not layers:
        raise UserError("the network has no layers", path)
    if net_input is None:
        raise UserError("the input shape is unknown", path)
    steps = int(f["simulation/tSample"][()]) if "simulation/tSample" in f else None
    io = netx_io_spec(path, fed=layers[0].op == "input", voltage_out=not layers[-1].neuron.spiking)
    return LoihiNet(name=path.stem, input_shape=net_input, layers=tuple(layers), time_steps=steps, meta={"io": io})


def _write_sigma_delta(g, neuron: SigmaDelta) -> None:
    g.create_dataset("neuron/type", data=SDNN_TYPE)
    g.create_dataset("neuron/activation", data=neuron.activation)
    g.create_dataset("neuron/vThMant", data=int(np.asarray(neuron.vth_mant).reshape(-1)[0]))
    if neuron.sigma_output:
        g.create_dataset("neuron/sigma_output", data=True)
    if neuron.message_bits != SD_MESSAGE_BITS:
        g.create_dataset("neuron/messageBits", data=neuron.message_bits)


def _decays(neuron: Neuron) -> tuple[int, int] | None:
    i_decay, v_decay = np.unique(neuron.i_decay), np.unique(neuron.v_decay)
    return (int(i_decay[0]), int(v_decay[0])) if i_decay.size == v_decay.size == 1 else None


def _write_neuron(g, neuron: Neuron | SigmaDelta, name: str) -> None:
    if neuron.kind == "sigma_delta":
        if np.unique(np.asarray(neuron.threshold)).size > 1 or neuron.cum_error or neuron.spike_exp != SD_EXP:
            raise UserError(f"{name}: netx stores one delta threshold per layer and neither cum_error nor a "
                            f"spike_exp other than {SD_EXP}")
        return _write_sigma_delta(g, neuron)
    if not neuron.spiking and _decays(neuron) == NETX_READOUT_DECAYS:
        return  # netx's neuron for a layer without one (any other read-out writes its decays)
    g.create_dataset("neuron/type", data="CUBA")
    g.create_dataset("neuron/iDecay", data=neuron.i_decay)
    g.create_dataset("neuron/vDecay", data=neuron.v_decay)
    g.create_dataset("neuron/vThMant", data=neuron.vth_mant if neuron.spiking else MAX_VTH_MANT)
    g.create_dataset("neuron/refDelay", data=1)
    g.create_dataset("neuron/gradedSpike", data=False)


def _type(g, kind: str) -> None:
    g.create_dataset("type", (1,), "S10", [kind.encode("ascii")])


def write_netx(net: LoihiNet, path: str | Path, *, force: bool = False) -> Path:
    """Write ``net`` as a netx HDF5 file (atomically; an existing file only with ``force``)."""
    path = Path(path)
    checks.check_net(net, path, integer_ranges=True)
    for layer in net.layers:
        if layer.syn_bias is not None:
            raise UserError(f"{layer.name}: netx has no synaptic bias (the always-on input axon a bias into a neuron "
                            "with current memory needs); export it to NIR or Lava", path)
    with atomic_path(path, force=force) as tmp, h5py.File(tmp, "w") as f:
        idx = 0
        if not net.layers or net.layers[0].op != "input":
            g = f.create_group(f"layer/{idx}")
            _type(g, "input")
            g.create_dataset("shape", data=np.array(net.input_shape))
            idx += 1
        for layer in net.layers:
            if layer.flatten and len(_prev_shape(net, layer)) > 1:
                g = f.create_group(f"layer/{idx}")
                _type(g, "flatten")
                g.create_dataset("shape", data=np.array([int(np.prod(layer.in_shape))]))
                idx += 1
            g = f.create_group(f"layer/{idx}")
            _write_layer(g, layer)
            idx += 1
        if net.time_steps:
            f.create_dataset("simulation/Ts", data=1)
            f.create_dataset("simulation/tSample", data=int(net.time_steps))
    return path


def _prev_shape(net: LoihiNet, layer: Layer) -> tuple[int, ...]:
    i = net.layers.index(layer)
    return net.layers[i - 1].out_shape if i > 0 else net.input_shape


def _ints(values) -> np.ndarray:
    return np.round(np.asarray(values, dtype=np.float64) * W_SCALE).astype(np.float32)


def _write_layer(g, layer: Layer) -> None:
    if layer.neuron.bias is not None:
        g.create_dataset("bias", data=_ints(np.atleast_1d(layer.neuron.bias)))
    if layer.op == "input":
        _type(g, "input")
        g.create_dataset("shape", data=np.array(layer.out_shape))
        if layer.neuron.kind != "sigma_delta":  # netx's delta encoder has no weight
            g.create_dataset("weight", data=_ints(np.atleast_1d(layer.weight)))
    elif layer.op == "dense":
        _type(g, "dense_rec" if layer.recurrent is not None else "dense")
        g.create_dataset("shape", data=np.array(layer.out_shape))
        w = layer.dense_weight()
        g.create_dataset("inFeatures", data=w.shape[1])
        g.create_dataset("outFeatures", data=w.shape[0])
        g.create_dataset("weight", data=_ints(w))
        if layer.recurrent is not None:
            g.create_dataset("weight_rec", data=_ints(layer.recurrent))
    else:
        _type(g, layer.op)
        g.create_dataset("shape", data=np.array(layer.out_shape))
        g.create_dataset("stride", data=np.array(layer.stride))
        g.create_dataset("padding", data=np.array(layer.padding))
        g.create_dataset("dilation", data=np.array(layer.dilation))
        if layer.op == "conv":
            w = np.asarray(layer.weight)
            g.create_dataset("inChannels", data=layer.in_shape[0])
            g.create_dataset("outChannels", data=layer.out_shape[0])
            g.create_dataset("kernelSize", data=np.array(w.shape[2:4]))
            g.create_dataset("groups", data=layer.groups)
            g.create_dataset("weight", data=_ints(w)[..., None])
        else:
            g.create_dataset("kernelSize", data=np.array(layer.kernel))
            k = layer.kernel
            g.create_dataset("weight", data=np.full((1, 1, k[0], k[1], 1), _ints(layer.weight), np.float32))
    if layer.delay is not None:
        g.create_dataset("delay", data=np.asarray(layer.delay, dtype=np.float32))
    _write_neuron(g, layer.neuron, layer.name)
