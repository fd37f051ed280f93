"""Import a trained lava-dl netx HDF5 network (``.net``/``.h5``) as a trainable SLAYER model.

``read_netx_spec(path)`` gives the :class:`ModelSpec` and a state dict; ``import_netx(path)`` gives the built
:class:`SlayerNet` with those weights. Loihi units become SLAYER's float units exactly as lava-dl's own
``slayer.neuron.cuba.neuron_params`` and ``slayer.auto`` define them:

* weights and biases: Loihi value / 64 (the neuron ``scale`` 1 << 6); weights stay on the 8-bit grid,
  so the quantized model computes with exactly the hdf5 integers;
* threshold: ``vThMant`` / 64; current/voltage decay: ``iDecay`` / 4096, ``vDecay`` / 4096.

Each layer keeps its own neuron parameters (a per-block override when they differ from the first layer).
Supported layers: input (with or without neurons), dense, conv, pool, flatten; a dense layer without neurons
(a non-spiking readout) becomes an ``affine`` block with netx's neuron for it (``NETX_READOUT_DECAYS``: current
decay 0, voltage decay 1, what lava-dl's netx and so Loihi run for such a layer; docs/export.md). CUBA/LOIHI
neurons only (sigma-delta and resonate-and-fire hdf5 layers are reported as unsupported). With ``quantize`` on,
the imported model runs the same fixed-point arithmetic as netx's ``fixed_pt`` Lava models, one time step of delay
per layer included
(tests/test_models_netx.py compares every layer spike for spike on oxford, mnist-mlp-128 and tinynet; a netx
input layer is driven through its bias from step 0, so with one the Lava run is one step ahead of SLAYER).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snndeploy import validate
from snndeploy.errors import UserError
from snndeploy.loihi import NETX_READOUT_DECAYS
from snndeploy.models.build import build_model
from snndeploy.models.spec import BlockSpec, IOSpec, ModelSpec, NeuronSpec

# lava-dl's published networks whose input normalisation only their tutorial states, by SHA-256 of the netx file
# (docs/benchmarks.md "Real networks"): where it is said, and (mean, std) of x -> (x - mean) / std on [0, 1] data.
PUBLISHED_IO = {
    "9b0bbd50581dab691cf57e79898506ad2f70e015d163178ac3d13ac403fd72f3": (
        "lava-dl bootstrap MNIST tutorial (tutorials/lava/lib/dl/bootstrap/mnist/train.ipynb: "
        "transforms.Normalize((0.5), (0.5)))", (0.5, 0.5)),
    "4a47723327c0c9e18d8ac3dcbfa2f2e011e6f2c03ebe80cb3b9360ae56124fd3": (
        "lava-dl PilotNet LIF tutorial (tutorials/lava/lib/dl/netx/pilotnet_snn/dataset.py: "
        "2 * weight * x - weight + bias)", (0.5, 0.5)),
}
W_SCALE = 1 << 6  # SLAYER weight/threshold units per Loihi unit
MAX_VTH_MANT = (1 << 17) - 1  # netx's threshold of a layer read by voltage (it never spikes)
P_SCALE = 1 << 12  # Loihi decay units per 1.0
CUBA_TYPES = ("CUBA", "LOIHI")


def _scalar(group, key: str, default: Any = None) -> Any:
    if key not in group:
        return default
    value = group[key][()]
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)
        if value.dtype.kind in "SO":
            item = value[0]
            return item.decode() if isinstance(item, bytes) else str(item)
        return value[0].item() if value.size == 1 else value
    return value.item() if hasattr(value, "item") else value


def _layer_type(layer) -> str:
    return _scalar(layer, "type")


def neuron_from_netx(group, base: NeuronSpec, where: str) -> NeuronSpec:
    """SLAYER neuron parameters for a netx ``neuron`` group (Loihi units -> float units)."""
    kind = _scalar(group, "type", "CUBA")
    if kind not in CUBA_TYPES:
        raise UserError(f"{where}: netx neuron type {kind!r} cannot be imported (only CUBA/LOIHI)")
    return NeuronSpec(
        kind="cuba",
        threshold=float(_scalar(group, "vThMant")) / W_SCALE,
        current_decay=float(_scalar(group, "iDecay")) / P_SCALE,
        voltage_decay=float(_scalar(group, "vDecay")) / P_SCALE,
        tau_grad=base.tau_grad,
        scale_grad=base.scale_grad,
        graded_spike=bool(_scalar(group, "gradedSpike", False)),
    )


def netx_readout_neuron(base: NeuronSpec) -> NeuronSpec:
    """The neuron netx runs a layer with when its file gives none: the current integrates, the voltage equals it."""
    i_decay, v_decay = NETX_READOUT_DECAYS
    return NeuronSpec(kind="cuba", threshold=base.threshold, current_decay=i_decay / P_SCALE,
                      voltage_decay=v_decay / P_SCALE, tau_grad=base.tau_grad, scale_grad=base.scale_grad)


def _shape(layer) -> tuple[int, ...]:
    """netx stores shapes as (C, H, W) or (F,); SLAYER uses the same order."""
    return tuple(int(s) for s in np.asarray(layer["shape"][()]).reshape(-1))


def _pair(layer, key: str) -> tuple[int, int]:
    values = [int(k) for k in np.asarray(layer[key][()]).reshape(-1)]
    return (values[0], values[-1])


def _read_layers(handle, path: Path, base: NeuronSpec):
    """(BlockSpec, neuron or None, {param: array}) per layer, and the input shape if an input layer gives it."""
    layers = handle["layer"]
    try:
        order = sorted(layers.keys(), key=int)
    except ValueError as exc:
        raise UserError("netx 'layer' group has non-numeric entries", path) from exc
    input_shape, rows = None, []
    for key in order:
        layer = layers[key]
        kind = _layer_type(layer)
        where = f"layer {key} ({kind})"
        validate.check_netx_layer(f"layer/{key}", layer, path)
        neuron = neuron_from_netx(layer["neuron"], base, where) if "neuron" in layer else None
        params: dict[str, np.ndarray] = {}
        if kind == "input":
            input_shape = _shape(layer)
            if neuron is None:
                continue  # a plain shape declaration
            params["weight"] = np.asarray(_scalar(layer, "weight", W_SCALE), dtype=np.float64).reshape(1)
            params["bias"] = np.asarray(_scalar(layer, "bias", 0), dtype=np.float64).reshape(1)
            rows.append((BlockSpec("input"), neuron, params))
        elif kind == "flatten":
            rows.append((BlockSpec("flatten"), None, params))
        elif kind == "dense":
            out = int(_scalar(layer, "outFeatures", _shape(layer)[0]))
            params["weight"] = np.asarray(layer["weight"][()], dtype=np.float64)
            block = BlockSpec("dense" if neuron is not None else "affine", out=out,
                              delay="delay" in layer, bias="bias" in layer)
            neuron = neuron or netx_readout_neuron(base)
            if "bias" in layer:
                params["bias"] = np.asarray(layer["bias"][()], dtype=np.float64).reshape(-1)
            if "delay" in layer:
                params["delay"] = np.asarray(layer["delay"][()], dtype=np.float64).reshape(-1)
            rows.append((block, neuron, params))
        elif kind in ("conv", "pool"):
            # netx stores these as [height, width], like the spec (netx's own Lava build reverses them to x, y)
            geometry = {name: _pair(layer, key) for name, key in (("kernel", "kernelSize"), ("stride", "stride"),
                                                                   ("padding", "padding"),
                                                                   ("dilation", "dilation"))}
            params["weight"] = np.asarray(layer["weight"][()], dtype=np.float64)
            if "bias" in layer:
                params["bias"] = np.asarray(layer["bias"][()], dtype=np.float64).reshape(-1)
            if "delay" in layer:
                params["delay"] = np.asarray(layer["delay"][()], dtype=np.float64).reshape(-1)
            if neuron is None:
                raise UserError(f"{where}: a {kind} layer without neurons cannot be imported", path)
            if kind == "pool":
                rows.append((BlockSpec("pool", **geometry, delay="delay" in layer), neuron, params))
                continue
            rows.append((BlockSpec("conv", out=int(_scalar(layer, "outChannels")), **geometry,
                                   groups=int(_scalar(layer, "groups", 1)), delay="delay" in layer,
                                   bias="bias" in layer), neuron, params))
        else:
            raise UserError(f"{where}: netx layer type {kind!r} is not supported", path)
    return input_shape, rows


def _infer_input_shape(rows, path: Path) -> tuple[int, ...]:
    block, _, params = rows[0]
    if block.kind in ("dense", "affine"):
        return (int(params["weight"].shape[1]),)
    raise UserError("the first layer is a conv layer and the file has no input layer with its shape; "
                    "pass input_shape=(C, H, W)", path)


def read_netx_spec(path: str | Path, *, name: str | None = None, time_steps: int | None = None,
              input_shape: tuple[int, ...] | None = None,
              neuron: NeuronSpec | None = None) -> tuple[ModelSpec, dict[str, np.ndarray]]:
    """The spec and per-block parameters (Loihi units) of a netx HDF5 file."""
    import h5py

    path = validate.require_file(path, "netx")
    validate.check_hdf5(path)
    base = neuron or NeuronSpec()
    try:
        with h5py.File(path, "r") as handle:
            if "layer" not in handle:
                raise UserError("not a netx network (no 'layer' group)", path)
            file_shape, rows = _read_layers(handle, path, base)
            if time_steps is None:
                time_steps = int(_scalar(handle["simulation"], "tSample", 25)) if "simulation" in handle else 25
    except OSError as exc:
        raise UserError(f"cannot read as HDF5 ({exc})", path) from exc
    except KeyError as exc:
        raise UserError(f"netx file lacks an expected entry {exc}", path) from exc
    if not rows:
        raise UserError("netx network has no layers", path)
    shape = tuple(input_shape or file_shape or _infer_input_shape(rows, path))
    last, last_neuron, _ = rows[-1]
    never_spikes = last_neuron is not None and last_neuron.threshold * W_SCALE >= MAX_VTH_MANT
    io = netx_io_spec(path, fed=rows[0][0].kind == "input", voltage_out=last.kind == "affine" or never_spikes)
    neurons = [n for _, n, _ in rows if n is not None]
    model_neuron = neurons[0] if neurons else base
    blocks = tuple(b if n is None or n == model_neuron else _with_neuron(b, n) for b, n, _ in rows)
    try:
        spec = ModelSpec(name=name or path.stem, input_shape=shape, time_steps=time_steps, neuron=model_neuron,
                         blocks=blocks, quantize=True, io=io)
    except UserError as exc:
        raise UserError(exc.problem, path) from exc
    return spec, {str(i): p for i, (_, _, p) in enumerate(rows)}


def netx_io_spec(path: Path, *, fed: bool, voltage_out: bool) -> IOSpec:
    """What a netx file says about feeding and reading its network (``fed``: an input layer with neurons, which a
    current drives; ``voltage_out``: a non-spiking output), plus the published-network table."""
    readout = "voltage_sum" if voltage_out else "spike_count"
    source = (f"netx file: {'an input layer (current input)' if fed else 'no input layer'}, "
              f"{'an Affine (non-spiking) output' if readout == 'voltage_sum' else 'a spiking output'}")
    entry = PUBLISHED_IO.get(hashlib.sha256(path.read_bytes()).hexdigest())
    if entry is not None:
        source += f"; normalisation from the {entry[0]}"
    return IOSpec(encoding="current" if fed else None, normalize=None if entry is None else entry[1],
                  readout=readout, source=source)


def _with_neuron(block: BlockSpec, neuron: NeuronSpec) -> BlockSpec:
    import dataclasses

    return dataclasses.replace(block, neuron=neuron)


def _load_block(module: torch.nn.Module, block: BlockSpec, params: dict[str, np.ndarray], path: Path,
                index: int) -> None:
    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a / W_SCALE, dtype=torch.float32)

    if block.kind == "input":
        module.weight.data = tensor(params["weight"])
        module.bias.data = tensor(params["bias"])
        return
    if "weight" in params:
        synapse = module.synapse
        weight = params["weight"]
        if weight.size != synapse.weight.numel():
            raise UserError(f"layer {index}: weight of shape {weight.shape} does not fit "
                            f"{tuple(synapse.weight.shape)}", path)
        synapse.weight.data = tensor(weight).reshape(synapse.weight.shape)
    if "bias" in params:
        module.neuron.norm.value.data = tensor(params["bias"]).reshape(module.neuron.norm.value.shape)
    if "delay" in params:
        module.delay.delay.data = torch.as_tensor(params["delay"], dtype=torch.float32)


def import_netx(path: str | Path, **kwargs):
    """A trainable SlayerNet with the weights and neuron parameters of a netx HDF5 file (see read_netx_spec)."""

    path = Path(path)
    spec, params = read_netx_spec(path, **kwargs)
    net = build_model(spec)
    for i, (module, block) in enumerate(zip(net.blocks, spec.blocks, strict=True)):
        _load_block(module, block, params[str(i)], path, i)
    return net
