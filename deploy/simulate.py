"""``snndeploy simulate``: run an exported network on Lava's CPU backend over one or many samples.

The model is converted to a :class:`~snndeploy.export.ir.LoihiNet` and built once per chunk of samples with
:func:`snndeploy.export.lava_net.build_lava` (``sample_steps``). Samples run back to back; layer i's current
and voltage are zeroed inside its neuron (Lava's ``LIFReset``) exactly before sample k reaches it (Lava adds
one step per synapse, so that is ``i`` steps after the sample enters). Each sample's spikes then equal those
of a separate run of that sample (exact for layers without bias; a bias-driven hidden layer misses the bias it
would have integrated during its first ``i`` steps). Per sample, layer i's spikes at local steps ``t <= i``
still belong to the previous sample (a separate run has none there) and are left out of the outputs; they
are real activity and stay in the activity counts.

Lava transfers Var data element by element (about 15-30 us per value), so reading a spike raster back costs
more than running a small network: only the output layer (and probed layers) are recorded, hidden layers'
spikes are counted in place (:func:`_attach_counter`), and the read-out time is reported apart from the run
time. Feeding a running network new input the same way is slower still, so a long input is split into
chunks, each built, run and stopped on its own (``chunk_steps``); their fixed start/stop cost is reported
separately.

Activity (``activity.json``, the estimator's schema ``snndeploy-activity/1``, see docs/architecture.md)
follows the NeuroBench definitions in docs/hardware.md: synaptic operations are effective accumulates, one per
incoming spike and non-zero synapse; neuron updates are every neuron at every step (Loihi updates all
compartments).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from snndeploy import validate
from snndeploy.errors import UserError
from snndeploy.export.ir import Layer, LoihiNet
from snndeploy.export.lava_batch import choose_copies, split_copies
from snndeploy.loader import load_net
from snndeploy.sim_files import InputArray, golden, layers_arrays, read_input_array

ACTIVITY_SCHEMA = "snndeploy-activity/1"  # snndeploy.hardware.activity.SCHEMA (checked by the tests)
DEFAULT_CHUNK_STEPS = 20_000  # steps per Lava build; also bounded by MAX_CHUNK_VALUES input values
MAX_CHUNK_VALUES = 1 << 23  # input values held by one build's source (int64: 64 MiB)
COUNT_SCALE = 64  # fixed_pt LIF: v grows by a_in << 6
DRAIN_STEPS = 256  # Extractor channel depth: recorded spikes are drained at least this often
MAX_COUNT_VTH = (1 << 17) - 1  # a counter would spike at ~131,000 counts: builds stay below MAX_BUILD_STEPS
MAX_BUILD_STEPS = 100_000
ENCODE_PART = 500  # images rate-coded at a time
VALUES_PER_RECEIVE = 8  # an Extractor receive of one step's spikes costs about as much as reading 8 Var values


# ----------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Inputs:
    """Binary spike inputs ``(N, *input_shape, T)`` (uint8), optional integer labels, and where they came from.

    ``bias`` ``(N, *input_shape)``: a static input held as the input layer's bias (spikes are then all zero);
    ``layout`` and ``batched`` say how an input file was laid out (:mod:`snndeploy.sim_files`).
    """

    spikes: np.ndarray
    labels: np.ndarray | None
    source: str
    bias: np.ndarray | None = None
    layout: str = ""
    batched: bool = True

    @property
    def samples(self) -> int:
        return int(self.spikes.shape[0])

    @property
    def steps(self) -> int:
        return int(self.spikes.shape[-1])


def _binary(x: np.ndarray, where: str, path: Path | None) -> np.ndarray:
    """Spikes as uint8 0/1; event counts above one become one spike (a Loihi spike carries no count)."""
    x = np.asarray(x)
    if x.dtype == bool:
        return x.astype(np.uint8)
    if not np.issubdtype(x.dtype, np.number):
        raise UserError(f"{where}: expected numbers, got {x.dtype}", path)
    if np.any(x < 0) or not np.all(np.isfinite(x)):
        raise UserError(f"{where}: spike inputs must be non-negative", path)
    return (x > 0).astype(np.uint8)


def fit_input_shape(x: np.ndarray, shape: tuple[int, ...], *, batched: bool | None = None,
                    path: Path | None = None) -> np.ndarray:
    """``(*shape, T)`` or ``(N, *shape, T)`` (or the same number of values per step) -> ``(N, *shape, T)``."""
    size = math.prod(shape)
    if batched is None:
        single = x.ndim >= 2 and math.prod(x.shape[:-1]) == size and (x.ndim - 1 == len(shape) or x.ndim == 2)
        batched = not single
    if not batched:
        x = x[None]
    if x.ndim < 3 or math.prod(x.shape[1:-1]) != size:
        raise UserError(f"input of shape {tuple(x.shape)} does not fit the network input {shape} "
                        "(expected (*shape, T) or (N, *shape, T))", path)
    return x.reshape(x.shape[0], *shape, x.shape[-1])


def read_input_arrays(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(inputs, labels or None) of a ``.npy`` file or a ``.npz`` with ``x`` (or ``spikes``) and optional ``y``."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        validate.check_npz(path)
    else:
        validate.check_npy(path)
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read input spikes ({type(exc).__name__})", path) from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        return data, None
    with data:
        key = next((k for k in ("x", "spikes", "inputs") if k in data.files), None)
        if key is None:
            raise UserError(f".npz input needs an 'x' (or 'spikes') array; found {data.files}", path)
        label_key = next((k for k in ("y", "labels") if k in data.files), None)
        labels = None if label_key is None else np.asarray(data[label_key]).astype(np.int64).reshape(-1)
        return data[key], labels


def load_input_file(path: str | Path, shape: tuple[int, ...], *, bias_input: bool = False,
                    steps: int | None = None) -> Inputs:
    """``.npy`` in lava-dl's golden layout (:mod:`snndeploy.sim_files`), or ``.npz`` with ``x`` (or ``spikes``) and
    optional ``y`` (or ``labels``). ``bias_input``: the network starts with a bias-driven input layer, so an
    array without a time axis is that layer's bias, run for ``steps`` steps."""
    path = Path(path)
    x, labels = read_input_arrays(path)
    try:
        read = read_input_array(x, shape, bias_input=bias_input, path=path)
    except UserError as exc:  # the same number of values per step in another shape (a 28x28 image into 784 inputs)
        try:
            read = InputArray(fit_input_shape(np.asarray(x), shape, path=path), None, "reshaped (C-major)", True)
        except UserError:
            raise exc from None
    if read.spikes is not None:
        spikes = _binary(validate.check_spikes(read.spikes, path), "input", path)
    else:
        if steps is None:
            raise UserError("a static input (the input layer's bias) needs --steps or a model that records its "
                            "time steps", path)
        spikes = np.zeros((read.bias.shape[0], *shape, steps), dtype=np.uint8)
    if labels is not None and labels.size != spikes.shape[0]:
        raise UserError(f"{labels.size} labels for {spikes.shape[0]} samples", path)
    return Inputs(spikes, labels, str(path), read.bias, read.layout, read.batched)


def input_current(net: LoihiNet, values: np.ndarray) -> np.ndarray:
    """The bias mantissas (Loihi units) that feed ``values`` ``(N, *input_shape)`` as a current into the input
    layer: ``round(64 (weight x + bias))``, exactly what the torch model's input block computes."""
    from snndeploy.export.ir import W_SCALE

    layer = net.layers[0]
    weight = float(np.asarray(layer.weight).reshape(-1)[0])
    bias = 0.0 if layer.neuron.bias is None else np.asarray(layer.neuron.bias, dtype=np.float64)
    return np.round(W_SCALE * (weight * values + bias))



def dataset_inputs(name: str, shape: tuple[int, ...], *, samples: int, steps: int, seed: int = 0,
                   max_rate: float = 1.0, net: LoihiNet | None = None) -> Inputs:
    """The first ``samples`` test samples of a dataset: events binned; images as the model records (``net``'s
    ``meta['io']``): a current into a first input layer (its bias per sample, normalised as recorded), else
    rate-coded spikes (fixed seed)."""
    from snndeploy.data.datasets import feed_for, load_arrays
    from snndeploy.models.spec import IOSpec

    if samples < 1:
        raise UserError(f"--samples must be at least 1, got {samples}")
    _, test, info = load_arrays(name, time_steps=steps)
    count = min(samples, len(test.y))
    labels = np.asarray(test.y[:count]).astype(np.int64)
    source = f"dataset {info.name} (test, first {count})"
    feed = feed_for((net.meta.get("io") if net is not None else None) or IOSpec())
    if info.kind != "events" and feed.encoding == "current" and net is not None and net.layers[0].op == "input":
        values = np.asarray(test.x[:count], dtype=np.float64).reshape(count, *shape)
        if feed.normalize is not None:
            values = (values - feed.normalize[0]) / feed.normalize[1]
        bias = input_current(net, values)
        return Inputs(np.zeros((count, *shape, steps), dtype=np.uint8), labels, f"{source}; {feed.note}", bias,
                      "", True)
    if info.kind == "events":
        x = _binary(test.x[:count], info.name, None)
    else:  # encoded in parts (a whole test set's random draws would take gigabytes); the same draws as at once
        rng = np.random.default_rng(seed)
        parts = []
        for start in range(0, count, ENCODE_PART):
            values = np.asarray(test.x[start:min(count, start + ENCODE_PART)], dtype=np.float32)[..., None]
            parts.append((rng.random((*values.shape[:-1], steps)) < np.clip(values * max_rate, 0, 1))
                         .astype(np.uint8))
        x = np.concatenate(parts)
    x = fit_input_shape(x, shape, batched=True)
    return Inputs(x, labels, source if info.kind == "events" else f"{source}; rate spikes (max rate {max_rate:g})")


def with_steps(inputs: Inputs, steps: int | None) -> Inputs:
    """Cut or zero-pad every sample to ``steps`` time steps."""
    if steps is None or steps == inputs.steps:
        return inputs
    if steps < 1:
        raise UserError(f"--steps must be at least 1, got {steps}")
    x = inputs.spikes[..., :steps]
    if x.shape[-1] < steps:
        pad = np.zeros((*x.shape[:-1], steps - x.shape[-1]), dtype=x.dtype)
        x = np.concatenate([x, pad], axis=-1)
    return replace(inputs, spikes=x)


# ----------------------------------------------------------------------------------------------- activity


def _valid_taps(size_in: int, size_out: int, k: int, stride: int, pad: int, dil: int) -> np.ndarray:
    """``(k, size_in)``: whether input position x reaches an output through kernel tap j."""
    x = np.arange(size_in)[None, :]
    j = np.arange(k)[:, None]
    num = x + pad - j * dil
    out = num // stride
    return (num % stride == 0) & (out >= 0) & (out < size_out)


def fan_out(layer: Layer) -> np.ndarray:
    """Non-zero synapses leaving each input neuron of ``layer`` (IR layout of its input, flattened)."""
    if layer.op == "dense":
        return np.count_nonzero(layer.dense_weight(), axis=0).astype(np.int64)
    if layer.op == "input":
        nonzero = int(np.count_nonzero(np.asarray(layer.weight)))
        return np.full(math.prod(layer.in_shape), nonzero, dtype=np.int64)
    c_in, h_in, w_in = layer.in_shape
    _, h_out, w_out = layer.out_shape
    if layer.op == "pool":
        kh, kw = layer.kernel
        per_tap = np.full((c_in, kh, kw), int(np.count_nonzero(np.asarray(layer.weight))), dtype=np.int64)
    else:  # conv: per input channel and tap, the output channels (of its group) with a non-zero weight
        w = np.asarray(layer.weight) != 0
        c_out, c_grp, kh, kw = w.shape
        per_tap = np.zeros((c_in, kh, kw), dtype=np.int64)
        out_per_group = c_out // layer.groups
        for g in range(layer.groups):
            block = w[g * out_per_group:(g + 1) * out_per_group].sum(axis=0)  # (c_grp, kh, kw)
            per_tap[g * c_grp:(g + 1) * c_grp] = block
    vy = _valid_taps(h_in, h_out, kh, layer.stride[0], layer.padding[0], layer.dilation[0]).astype(np.int64)
    vx = _valid_taps(w_in, w_out, kw, layer.stride[1], layer.padding[1], layer.dilation[1]).astype(np.int64)
    return np.einsum("cij,iy,jx->cyx", per_tap, vy, vx).reshape(-1)


@dataclass
class LayerCounts:
    """Totals over the whole run: spikes per neuron, effective synaptic operations in, neuron updates."""

    name: str
    op: str
    neurons: int
    synapses: int
    per_neuron: np.ndarray
    synops: int = 0
    recurrent_synops: int = 0
    neuron_updates: int = 0

    @property
    def spikes(self) -> int:
        return int(self.per_neuron.sum())


class ActivityCounter:
    """Accumulates per-layer activity from per-neuron spike counts of each chunk."""

    def __init__(self, net: LoihiNet):
        self.net = net
        self.fan_out = [fan_out(layer) for layer in net.layers]
        self.rec_fan_out = [None if layer.recurrent is None else
                            np.count_nonzero(np.asarray(layer.recurrent), axis=0).astype(np.int64)
                            for layer in net.layers]
        self.layers = [LayerCounts(layer.name, layer.op, layer.size, int(self.fan_out[i].sum()),
                                   np.zeros(layer.size, dtype=np.int64)) for i, layer in enumerate(net.layers)]
        self.input_per_neuron = np.zeros(math.prod(net.input_shape), dtype=np.int64)
        self.steps = 0

    def add(self, input_counts: np.ndarray, layer_counts: list[np.ndarray], steps: int) -> None:
        """``input_counts``: spikes per input neuron; ``layer_counts[i]``: spikes per neuron of layer i (IR order)."""
        self.steps += steps
        incoming = input_counts.reshape(-1).astype(np.int64)
        self.input_per_neuron += incoming
        for i, counts in enumerate(layer_counts):
            act = self.layers[i]
            counts = counts.reshape(-1).astype(np.int64)
            act.synops += int(incoming @ self.fan_out[i])
            if self.rec_fan_out[i] is not None:
                act.recurrent_synops += int(counts @ self.rec_fan_out[i])
            act.per_neuron += counts
            act.neuron_updates += act.neurons * steps
            incoming = counts

    def merge(self, other: ActivityCounter) -> None:
        """Add the counts of another run of the same network (another worker's samples)."""
        self.steps += other.steps
        self.input_per_neuron += other.input_per_neuron
        for mine, theirs in zip(self.layers, other.layers, strict=True):
            mine.per_neuron += theirs.per_neuron
            mine.synops += theirs.synops
            mine.recurrent_synops += theirs.recurrent_synops
            mine.neuron_updates += theirs.neuron_updates

    def to_dict(self, *, samples: int, steps_per_sample: int, model: str, precision: str) -> dict[str, Any]:
        """The activity file (schema of :mod:`snndeploy.hardware.activity`): means per sample, plus run totals."""
        per = max(samples, 1)
        layers = []
        for i, act in enumerate(self.layers):
            layer = self.net.layers[i]
            layers.append({
                "name": act.name, "neurons": act.neurons, "spikes": act.spikes / per, "graded": False,
                "spikes_per_neuron": (act.per_neuron / per).tolist(),
                "synops": (act.synops + act.recurrent_synops) / per,
                "neuron_updates": act.neuron_updates / per,
                "index": i, "op": act.op, "shape": list(layer.out_shape), "spiking": bool(layer.neuron.spiking),
                "synapses": act.synapses, "rate": act.spikes / max(act.neurons * self.steps, 1),
                "totals": {"spikes": act.spikes, "synops": act.synops, "recurrent_synops": act.recurrent_synops,
                           "neuron_updates": act.neuron_updates},
            })
        in_spikes = int(self.input_per_neuron.sum())
        return {"schema": ACTIVITY_SCHEMA, "source": "lava", "model": model, "network": self.net.name,
                "precision": precision, "backend": "lava-cpu (Loihi2SimCfg)", "samples": samples,
                "time_steps": steps_per_sample, "steps": self.steps,
                "counting": "means per sample; synops = incoming spikes x non-zero synapses (effective ACs), "
                            "neuron_updates = neurons x steps; counted over the whole back-to-back run",
                "input": {"name": "input", "neurons": int(self.input_per_neuron.size), "spikes": in_spikes / per,
                          "graded": False, "spikes_per_neuron": (self.input_per_neuron / per).tolist(),
                          "shape": list(self.net.input_shape)},
                "layers": layers,
                "totals": {"spikes": sum(a.spikes for a in self.layers) / per,
                           "synops": sum(a.synops + a.recurrent_synops for a in self.layers) / per,
                           "neuron_updates": sum(a.neuron_updates for a in self.layers) / per}}


# ----------------------------------------------------------------------------------------------- running


@dataclass
class Timing:
    """Seconds: building processes, first step (compile + start), stepping, Var reads, stopping; summed over chunks."""

    build_s: float = 0.0
    start_s: float = 0.0
    run_s: float = 0.0
    read_s: float = 0.0
    stop_s: float = 0.0
    chunks: int = 0
    run_steps: int = 0  # steps timed in run_s (each chunk's first step is in start_s)
    wall_s: float = 0.0  # the whole simulation, as the caller waited for it
    workers: int = 1  # Lava runtimes in parallel; the other figures are summed over them

    def add(self, other: Timing) -> None:
        for name in ("build_s", "start_s", "run_s", "read_s", "stop_s", "chunks", "run_steps"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def steps_per_s(self) -> float:
        return self.run_steps / self.run_s if self.run_s > 0 else float("nan")

    @property
    def overhead_s(self) -> float:
        """The fixed cost of starting and stopping runs (build, compile, start, stop)."""
        return self.build_s + self.start_s + self.stop_s

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "steps_per_s": self.steps_per_s, "overhead_s": self.overhead_s,
                "overhead_per_chunk_s": self.overhead_s / max(self.chunks, 1)}


@dataclass(frozen=True)
class RunPlan:
    """How samples share Lava builds: ``copies`` network copies side by side, each running ``per_copy`` samples
    back to back (1: every copy's sample starts from step 0 of a fresh build)."""

    copies: int
    per_copy: int
    reason: str

    @property
    def per_build(self) -> int:
        return self.copies * self.per_copy

    def describe(self) -> str:
        if self.per_copy > 1:
            return (f"{self.copies} network copies per Lava build, each running up to {self.per_copy} samples back "
                    "to back (layers reset as a sample reaches them)")
        return f"{self.copies} network copies per Lava build, one sample each from step 0 ({self.reason})"


@dataclass
class SimResult:
    """Per-sample output spikes ``(N, *out, T)``, probes by layer index, activity and timing."""

    net: LoihiNet
    mode: str
    output: np.ndarray
    probes: dict[int, dict[str, np.ndarray]]
    activity: ActivityCounter
    timing: Timing
    steps: int
    samples: int
    layer_spikes: dict[int, np.ndarray] = field(default_factory=dict)
    plan: RunPlan | None = None

    def predictions(self) -> np.ndarray:
        """Class per sample: most output spikes (ties: lowest index); a voltage read-out: highest summed voltage."""
        out_layer = len(self.net.layers) - 1
        if not self.net.layers[out_layer].neuron.spiking and "v" in self.probes.get(out_layer, {}):
            scores = self.probes[out_layer]["v"].reshape(self.samples, -1, self.steps).sum(axis=-1)
        else:
            scores = self.output.reshape(self.samples, -1, self.steps).sum(axis=-1)
        return np.argmax(scores, axis=1)


def resolve_layers(net: LoihiNet, names: tuple[str, ...] | list[str]) -> tuple[int, ...]:
    """Layer indices for names or indices (negative counts from the end)."""
    found = []
    for name in names:
        text = str(name)
        idx = next((i for i, layer in enumerate(net.layers) if layer.name == text), None)
        if idx is None:
            try:
                idx = int(text)
            except ValueError:
                idx = None
            if idx is not None and -len(net.layers) <= idx < len(net.layers):
                idx %= len(net.layers)
            else:
                idx = None
        if idx is None:
            choices = ", ".join(f"{i}:{layer.name}" for i, layer in enumerate(net.layers))
            raise UserError(f"no layer {text!r} to probe; layers are {choices}")
        found.append(idx)
    return tuple(dict.fromkeys(found))


def separate_runs(net: LoihiNet) -> str | None:
    """Why samples cannot run back to back, if they cannot: a bias drives every layer from step 0 of a separate
    run (no reset step reproduces that while the previous sample still drains), and axonal delays shift when a
    sample reaches each layer. Such networks get one Lava build per sample."""
    if any(layer.neuron.bias is not None and np.any(np.asarray(layer.neuron.bias)) for layer in net.layers):
        return "the network has a bias"
    if any(layer.delay is not None and np.any(np.asarray(layer.delay)) for layer in net.layers):
        return "the network has axonal delays"
    return None


def chunk_samples(samples: int, steps: int, input_size: int, chunk_steps: int = DEFAULT_CHUNK_STEPS) -> int:
    """Samples per Lava build: bounded by ``chunk_steps`` and by the source's memory."""
    by_steps = max(1, min(chunk_steps, MAX_BUILD_STEPS) // steps)
    by_memory = max(1, MAX_CHUNK_VALUES // max(steps * input_size, 1))
    return max(1, min(samples, by_steps, by_memory))


def plan_runs(net: LoihiNet, samples: int, steps: int, chunk_steps: int = DEFAULT_CHUNK_STEPS,
              copies: int | None = None, alone: str | None = None) -> RunPlan:
    """The one rule for sharing builds: ``copies`` from :func:`snndeploy.export.lava_batch.choose_copies` (group
    limit, memory, work per step); back to back within each copy only where that is exact (no bias, no axonal
    delays: :func:`separate_runs`), as many samples as ``chunk_steps`` and the source's memory allow."""
    if alone is not None:  # each sample sets the input layer's bias or runs netx's reset: one build, one copy
        return RunPlan(1, 1, alone)
    why = separate_runs(net)
    if copies is None and why is None and any(layer.op in ("conv", "pool") for layer in net.layers):
        copies = 1  # measured: Lava's grouped Conv costs more per copy than back to back saves (docs/benchmarks.md)
    copies = choose_copies(net, samples) if copies is None else max(1, min(int(copies), samples))
    if why is not None:
        return RunPlan(copies, 1, why)
    per_copy = chunk_samples(-(-samples // copies), steps, math.prod(net.input_shape) * copies, chunk_steps)
    return RunPlan(copies, per_copy, "back to back is exact")


def input_bias_mant(bias: np.ndarray, mode: str) -> np.ndarray:
    """An input bias (IR order, Loihi mantissa units) as the input LIF's ``bias_mant`` (Lava order): integers in
    fixed_pt (exponent 6), SLAYER units in floating_pt (exponent 0)."""
    from snndeploy.export.ir import W_SCALE
    from snndeploy.export.lava_net import to_lava_layout

    lava = to_lava_layout(np.asarray(bias, dtype=np.float64)[..., None])[..., 0]
    if mode != "fixed_pt":
        return lava / W_SCALE
    if not np.allclose(lava, np.round(lava)):
        raise UserError("a fixed_pt input bias must be integers (Loihi bias mantissas)")
    return np.round(lava).astype(np.int64)



def _attach_counter(neuron, layer: Layer, mode: str, copies: int = 1):
    """A never-spiking integrator behind ``neuron`` whose voltage counts each neuron's spikes (read once per run).

    Reading a spike raster back from Lava costs ~15-20 us per value, so hidden layers are counted in place:
    an identity ``Sparse`` synapse into a ``LIF`` with full current decay and no voltage decay accumulates
    ``64 x`` spikes (fixed_pt) or the spikes (floating_pt) in ``v``. The count lags one step (the synapse).
    With ``copies``, the counts of copy b are entries ``b*size .. (b+1)*size - 1``.
    """
    from lava.proc.lif.process import LIF
    from lava.proc.sparse.process import Sparse
    from scipy.sparse import identity

    n = layer.size * copies
    port = neuron.s_out
    if len(layer.out_shape) == 3:
        port = port.transpose([2, 1, 0]).flatten()  # Lava's W, H, C -> C, H, W order (as the IR counts)
    if mode == "fixed_pt":
        syn = Sparse(weights=identity(n, dtype=np.int64, format="csr"), num_weight_bits=8, weight_exp=0)
        counter = LIF(shape=(n,), du=4095, dv=0, vth=MAX_COUNT_VTH, bias_mant=0, bias_exp=0)
    else:
        syn = Sparse(weights=identity(n, dtype=np.float64, format="csr"))
        counter = LIF(shape=(n,), du=1.0, dv=0.0, vth=float("inf"))
    port.connect(syn.s_in)
    syn.a_out.connect(counter.a_in)
    return counter


def _count_in_place(build_steps: int, neurons: int) -> bool:
    """Whether a hidden layer's spikes are counted in place rather than drained through an Extractor: the count is
    one Var read of every neuron (Lava sends Var data value by value), the Extractor one array per step, which
    costs about as much as ``VALUES_PER_RECEIVE`` values."""
    return neurons < VALUES_PER_RECEIVE * build_steps


def _read_count(counter, mode: str) -> np.ndarray:
    v = np.array(counter.v.get(), dtype=np.float64)
    return np.round(v / (COUNT_SCALE if mode == "fixed_pt" else 1.0)).astype(np.int64)


def _split(raster: np.ndarray, samples: int, steps: int, layer: int) -> np.ndarray:
    """(…, samples*steps) -> (samples, …, steps) with the previous sample's tail (local steps <= layer) removed."""
    x = raster.reshape(*raster.shape[:-1], samples, steps)
    x = np.moveaxis(x, -2, 0).copy()
    if samples > 1:
        x[1:, ..., :layer + 1] = 0
    return x


def _extractor(port, buffer_size: int):
    """Spikes (or u, v) leave through a Lava ``Extractor``: a channel of whole arrays, ~1000x faster than a Var read."""
    from lava.proc.io.extractor import Extractor

    extractor = Extractor(shape=port.shape, buffer_size=buffer_size)
    port.connect(extractor.in_port)
    return extractor


def run_config(mode: str):
    """``Loihi2SimCfg`` for ``mode``, with the (untagged) Extractor model named explicitly."""
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel

    return Loihi2SimCfg(select_tag=mode, exception_proc_model_map={Extractor: PyLoihiExtractorModel})


def _stops(n: int, steps: int, every_sample: bool) -> list[int]:
    """Cumulative step counts at which the run pauses: after the first step, every ``DRAIN_STEPS`` (or sample),
    at the end and after the idle step. Each pause costs a few milliseconds."""
    total = n * steps
    marks = {1, total, total + 1} | set(range(DRAIN_STEPS, total, DRAIN_STEPS))
    if every_sample:
        marks |= {(k + 1) * steps for k in range(n)}
    return sorted(marks)


def _per_sample(raster: np.ndarray, copies: int, per_copy: int, steps: int, layer: int, n: int) -> np.ndarray:
    """``(copies*C, ..., per_copy*steps)`` -> ``(n, C, ..., steps)``: copy b ran samples ``b*per_copy ...``."""
    runs = split_copies(raster, copies)
    return np.concatenate([_split(run, per_copy, steps, layer) for run in runs], axis=0)[:n]


def _run_chunk(net: LoihiNet, x: np.ndarray, mode: str, keep: tuple[int, ...], probes: tuple[int, ...],
               timing: Timing, timeout_s: float | None, sparse_below: float, advance: Callable[[int], None],
               every_sample: bool = False, copies: int = 1, bias: np.ndarray | None = None,
               reset_interval: int | None = None):
    """Build, run and stop one chunk ``x`` ``(n, *shape, T)`` on ``copies`` copies of the network side by side,
    each running ``ceil(n / copies)`` consecutive samples back to back (zero samples pad the last copy).
    ``bias`` (one sample, one copy): the input layer's bias for it; ``reset_interval``: netx's reset scheme.

    Returns (per-sample spikes of the ``keep`` layers ``(n, *shape, T)``, spikes per neuron of every layer summed
    over the copies, per-sample u/v probes). One extra step with no input runs last, so that the counters take in
    the spikes of the final step.
    """
    from snndeploy import lava_runner
    from snndeploy.export.lava_net import build_lava, from_lava_layout

    n, steps = x.shape[0], x.shape[-1]
    copies = min(copies, n)
    per_copy = -(-n // copies)
    total = per_copy * steps
    padded = np.concatenate([x, np.zeros((copies * per_copy - n, *x.shape[1:]), dtype=x.dtype)])
    runs = padded.reshape(copies, per_copy, *x.shape[1:])
    flat = np.concatenate([*np.moveaxis(runs, 1, 0), np.zeros_like(runs[:, 0, ..., :1])], axis=-1)
    real = np.clip(n - np.arange(copies) * per_copy, 0, per_copy)  # real samples per copy
    t0 = time.perf_counter()
    lava = build_lava(net, flat if copies > 1 else flat[0], mode=mode, sparse_below=sparse_below, record="none",
                      sample_steps=steps if per_copy > 1 else None, copies=copies, state_ports=probes,
                      reset_interval=reset_interval)
    if bias is not None:
        lava.layers[0].neuron.bias_mant.init = input_bias_mant(bias[0], mode)
    in_place = {i for i in range(len(net.layers)) if i not in keep and _count_in_place(total + 1, net.layers[i].size
                                                                                          * copies)}
    counters = {i: _attach_counter(lava.layers[i].neuron, net.layers[i], mode, copies) for i in in_place}
    extractors = {i: _extractor(lava.layers[i].neuron.s_out, DRAIN_STEPS) for i in range(len(net.layers))
                  if i not in in_place}
    state = {(i, var): _extractor(getattr(lava.layers[i].neuron, f"{var}_out"), DRAIN_STEPS)
             for i in probes for var in ("u", "v")}
    proc, cfg = lava.layers[0].neuron, run_config(mode)
    timing.build_s += time.perf_counter() - t0
    received: dict[int, list] = {i: [] for i in extractors}
    u: dict[int, list] = {i: [] for i in probes}
    v: dict[int, list] = {i: [] for i in probes}
    what = f"Lava {mode} run of {net.name}"

    def read(count: int) -> None:
        t = time.perf_counter()
        for i, extractor in extractors.items():
            received[i].extend(extractor.receive() for _ in range(count))
        for (i, var), extractor in state.items():
            (u if var == "u" else v)[i].extend(extractor.receive() for _ in range(count))
        timing.read_s += time.perf_counter() - t

    def finished(step: int) -> int:
        return int(np.minimum(real, min(step, total) // steps).sum())

    done = 0
    with lava_runner.lava_session(proc):
        for stop_at in _stops(per_copy, steps, every_sample):
            count = stop_at - done
            t = time.perf_counter()
            lava_runner.run_steps(proc, count, cfg, timeout_s=timeout_s, stop_after=False, what=what)
            if done == 0:
                timing.start_s += time.perf_counter() - t  # compile, start and the first step
            else:
                timing.run_s += time.perf_counter() - t
                timing.run_steps += count
            read(count)
            newly = finished(stop_at) - finished(done)
            done = stop_at
            if newly:
                advance(newly)
        t = time.perf_counter()
        counts = {i: _read_count(c, mode).reshape(copies, -1).sum(axis=0) for i, c in counters.items()}
        timing.read_s += time.perf_counter() - t
        t = time.perf_counter()
    timing.stop_s += time.perf_counter() - t
    timing.chunks += 1

    def stack(values: list) -> np.ndarray:
        return from_lava_layout(np.stack(values, axis=-1))[..., :total]

    rasters = {i: stack(values).astype(np.uint8) for i, values in received.items()}
    per_neuron = [split_copies(rasters[i], copies).sum(axis=(0, -1)).reshape(-1) if i in rasters else counts[i]
                  for i in range(len(net.layers))]
    spikes = {i: _per_sample(rasters[i], copies, per_copy, steps, i, n) for i in keep}
    probed = {i: {"u": _per_sample(stack(u[i]), copies, per_copy, steps, i, n),
                  "v": _per_sample(stack(v[i]), copies, per_copy, steps, i, n)} for i in probes}
    return spikes, per_neuron, probed


def check_inputs(net: LoihiNet, inputs: np.ndarray, mode: str) -> tuple[int, int]:
    """(samples, steps) of ``inputs`` ``(N, *net.input_shape, T)``; a one-line error if they or ``mode`` do not fit."""
    from snndeploy.export.lava_net import MODES

    if mode not in MODES:
        raise UserError(f"unknown precision {mode!r}")
    inputs = np.asarray(inputs)
    if inputs.ndim < 2 or tuple(inputs.shape[1:-1]) != tuple(net.input_shape):
        raise UserError(f"inputs of shape {inputs.shape} do not fit (N, *{tuple(net.input_shape)}, T)")
    samples, steps = int(inputs.shape[0]), int(inputs.shape[-1])
    if samples < 1 or steps < 1:
        raise UserError("no input samples or no time steps to simulate")
    return samples, steps


def simulate_net(net: LoihiNet, inputs: np.ndarray, *, mode: str = "fixed_pt", probe: tuple[int, ...] = (),
                 record: tuple[int, ...] = (), timeout_s: float | None = 600.0,
                 chunk_steps: int = DEFAULT_CHUNK_STEPS, sparse_below: float | None = None, progress: bool = False,
                 on_sample: Callable[[int], None] | None = None, copies: int | None = None,
                 workers: int = 1, input_bias: np.ndarray | None = None,
                 reset_interval: int | None = None) -> SimResult:
    """Run ``inputs`` ``(N, *net.input_shape, T)`` through ``net`` on Lava's CPU backend, sample by sample.

    How samples share Lava builds is :func:`plan_runs`' rule (``copies``: network copies per build, default
    its own choice); ``result.plan`` says which ran. Every sample's outputs equal those of a run of it alone.
    ``workers > 1`` splits the samples into that many consecutive parts, each run by its own Lava runtime in a
    worker process (:mod:`snndeploy.lava_workers`); ``on_sample`` then gets the total over the workers.

    ``probe``: layer indices whose spikes, current ``u`` and voltage ``v`` are kept per sample (``u``/``v`` leave
    through ports of ``ProbedLIF`` neurons); ``record``: layers whose spikes alone are kept
    (``result.layer_spikes``). A voltage read-out output layer is probed automatically. ``on_sample(samples_done)``
    is called after each sample, while the run is paused (an exception there stops the run like any other). Every
    run is stopped on success, error, timeout and Ctrl-C (``snndeploy.lava_runner``).

    ``input_bias`` ``(N, *net.input_shape)`` replaces the bias of the first (input) layer per sample (Loihi
    mantissa units in fixed_pt, as lava-dl's goldens give an image; each sample then runs alone, in this process).
    ``reset_interval``: netx's reset scheme inside each sample: layer i's u and v are zeroed every that many steps,
    pipelined by one step per layer (:func:`snndeploy.export.lava_net.build_lava`).
    """
    from tqdm import tqdm

    from snndeploy.export.lava_net import DEFAULT_SPARSE_BELOW, import_lava

    samples, steps = check_inputs(net, inputs, mode)
    inputs = np.asarray(inputs)
    if steps > MAX_BUILD_STEPS:
        raise UserError(f"samples of {steps} steps are longer than one Lava build may run ({MAX_BUILD_STEPS}); "
                        "split the recording into samples")
    out_layer = len(net.layers) - 1
    uv_probes = tuple(sorted(set(probe) | ({out_layer} if not net.layers[out_layer].neuron.spiking else set())))
    keep = tuple(sorted(set(probe) | set(record) | {out_layer}))
    import_lava()  # before the progress bar creates a multiprocessing lock
    started = time.perf_counter()
    if input_bias is not None and (net.layers[0].op != "input" or input_bias.shape != (samples, *net.input_shape)):
        raise UserError(f"an input bias of shape {input_bias.shape} needs a first input layer of shape "
                        f"{net.input_shape} and one bias per sample")
    alone = None
    if input_bias is not None or reset_interval:
        workers = 1
        alone = "each sample is written as the input layer's bias" + (
            f"; netx's reset_interval {reset_interval}: every layer's u and v are zeroed every {reset_interval} "
            "steps, one step later per layer" if reset_interval else "")
    workers = max(1, min(int(workers), samples))
    if workers > 1:
        options = {"mode": mode, "probe": probe, "record": record, "timeout_s": timeout_s,
                   "chunk_steps": chunk_steps, "sparse_below": sparse_below, "copies": copies}
        return _simulate_in_workers(net, inputs, workers, options, progress, on_sample, started)
    plan = plan_runs(net, samples, steps, chunk_steps, copies, alone)
    counter = ActivityCounter(net)
    timing = Timing()
    kept: dict[int, list[np.ndarray]] = {i: [] for i in keep}
    probed: dict[int, dict[str, list[np.ndarray]]] = {i: {"u": [], "v": []} for i in uv_probes}
    bar = tqdm(total=samples, desc=f"simulate {net.name}", unit="sample", disable=not progress, leave=False)
    done = [0]

    def advance(count: int) -> None:
        bar.update(count)
        done[0] += count
        if on_sample is not None:
            on_sample(done[0])

    try:
        for start in range(0, samples, plan.per_build):
            x = inputs[start:start + plan.per_build]
            spikes, counts, chunk_probes = _run_chunk(
                net, x, mode, keep, uv_probes, timing, timeout_s,
                DEFAULT_SPARSE_BELOW if sparse_below is None else sparse_below, advance, on_sample is not None,
                plan.copies, None if input_bias is None else input_bias[start:start + plan.per_build], reset_interval)
            counter.add(x.sum(axis=(0, -1), dtype=np.int64), counts, x.shape[0] * steps)
            for i in keep:
                kept[i].append(spikes[i])
            for i, values in chunk_probes.items():
                probed[i]["u"].append(values["u"])
                probed[i]["v"].append(values["v"])
    finally:
        bar.close()
    layer_spikes = {i: np.concatenate(parts, axis=0) for i, parts in kept.items()}
    probes_out = {i: {k: np.concatenate(v, axis=0) for k, v in d.items()} for i, d in probed.items()}
    for i in probe:
        probes_out.setdefault(i, {})["spikes"] = layer_spikes[i]
    timing.wall_s = time.perf_counter() - started
    return SimResult(net=net, mode=mode, output=layer_spikes[out_layer], probes=probes_out, activity=counter,
                     timing=timing, steps=steps, samples=samples, layer_spikes=layer_spikes, plan=plan)


def _simulate_part(net: LoihiNet, inputs: np.ndarray, options: dict[str, Any], report: Callable[[int], None]):
    return simulate_net(net, inputs, on_sample=report, **options)


def _simulate_in_workers(net: LoihiNet, inputs: np.ndarray, workers: int, options: dict[str, Any], progress: bool,
                         on_sample: Callable[[int], None] | None, started: float) -> SimResult:
    """``simulate_net`` over consecutive parts of ``inputs`` in ``workers`` processes, merged in order."""
    from tqdm import tqdm

    from snndeploy.lava_workers import run_parallel

    bar = tqdm(total=inputs.shape[0], desc=f"simulate {net.name} ({workers} workers)", unit="sample",
               disable=not progress, leave=False)

    def advance(done: int) -> None:
        bar.update(done - bar.n)
        if on_sample is not None:
            on_sample(done)

    parts = [(net, part, options) for part in np.array_split(inputs, workers)]
    silence = None if options["timeout_s"] is None else 2 * options["timeout_s"] + 60
    try:
        results = run_parallel(_simulate_part, parts, on_progress=advance, silence_s=silence)
    finally:
        bar.close()
    return merge_results(results, time.perf_counter() - started)


def merge_results(results: list[SimResult], wall_s: float) -> SimResult:
    """One result from the results of consecutive parts of the samples."""
    first = results[0]
    counter = ActivityCounter(first.net)
    timing = Timing(wall_s=wall_s, workers=len(results))
    for result in results:
        counter.merge(result.activity)
        timing.add(result.timing)
    layer_spikes = {i: np.concatenate([r.layer_spikes[i] for r in results]) for i in first.layer_spikes}
    probes = {i: {key: np.concatenate([r.probes[i][key] for r in results]) for key in values}
              for i, values in first.probes.items()}
    out_layer = len(first.net.layers) - 1
    return SimResult(net=first.net, mode=first.mode, output=layer_spikes[out_layer], probes=probes,
                     activity=counter, timing=timing, steps=first.steps, samples=sum(r.samples for r in results),
                     layer_spikes=layer_spikes, plan=first.plan)


# ----------------------------------------------------------------------------------------------- the command


def netx_reset_interval(net: LoihiNet, inputs: Inputs) -> int | None:
    """netx's ``reset_interval`` where it applies: a bias-driven input layer fed a static input (lava-dl's
    PilotNet convention) is reset every ``time_steps`` steps, layer by layer one step apart, as netx does."""
    return int(net.time_steps) if inputs.bias is not None and inputs.layout and net.time_steps else None



def summarize(result: SimResult, inputs: Inputs, model: str) -> dict[str, Any]:
    """The JSON-able summary of a simulation (also written as ``result.json``)."""
    out: dict[str, Any] = {
        "model": model, "network": result.net.name, "precision": result.mode, "backend": "lava-cpu (Loihi2SimCfg)",
        "input": inputs.source, "samples": result.samples, "steps_per_sample": result.steps,
        "output_shape": list(result.net.output_shape), "output_spikes": int(np.count_nonzero(result.output)),
        "layers": [{"index": i, "name": layer.name, "op": layer.op, "neurons": layer.size,
                    "spikes": result.activity.layers[i].spikes} for i, layer in enumerate(result.net.layers)],
        "sample_runs": result.plan.describe(),
        "input_layout": inputs.layout or None,
        "copies": result.plan.copies, "samples_per_copy": result.plan.per_copy,
        "timing": result.timing.to_dict(),
    }
    wall = result.timing.wall_s
    out["workers"] = result.timing.workers
    out["samples_per_s"] = result.samples / wall if wall > 0 else None
    if inputs.labels is not None:
        pred = result.predictions()
        out["accuracy"] = float(np.mean(pred == inputs.labels))
        out["correct"] = int(np.sum(pred == inputs.labels))
    return out


def write_outputs(out: Path, result: SimResult, inputs: Inputs, summary: dict[str, Any], *, force: bool,
                  record_all: bool = False, probe_files: tuple[int, ...] | None = None) -> Path:
    """``output.npy`` and (``record_all``) ``layers.npz`` in lava-dl's golden layout (:mod:`snndeploy.sim_files`),
    ``probe_<layer>_{spikes,u,v}.npy`` (IR order, one row per sample), labels/predictions, ``activity.json``,
    ``simulate.png``, ``result.json``. ``probe_files``: the layers to write probe files for (default: all probed)."""
    from snndeploy.atomic import atomic_dir, write_json

    with atomic_dir(out, force=force) as tmp:
        np.save(tmp / "output.npy", golden(result.output, inputs.batched))
        if record_all:
            names = [layer.name for layer in result.net.layers]
            np.savez(tmp / "layers.npz", **layers_arrays(names, result.layer_spikes, result.probes, inputs.batched))
        for i, values in result.probes.items():
            if probe_files is not None and i not in probe_files:
                continue
            for key, arr in values.items():
                np.save(tmp / f"probe_{result.net.layers[i].name}_{key}.npy", arr)
        if inputs.labels is not None:
            np.save(tmp / "labels.npy", inputs.labels)
            np.save(tmp / "predictions.npy", result.predictions())
        activity = activity_dict(result, summary["model"])
        write_json(tmp / "activity.json", activity)
        plot(result, activity, tmp / "simulate.png")
        write_json(tmp / "result.json", {**summary, "files": sorted(p.name for p in tmp.iterdir())
                                         + ["result.json"]})
    return out


def plot(result: SimResult, activity: dict[str, Any], path: Path) -> Path:
    """Output raster of the first sample(s) and per-layer spikes and synaptic operations per sample."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (raster, bars) = plt.subplots(1, 2, figsize=(11, 3.8))
    shown = min(result.samples, 4)
    out = result.output[:shown].reshape(shown, -1, result.steps)
    for k in range(shown):
        neuron, step = np.nonzero(out[k])
        raster.scatter(step + k * result.steps, neuron, s=4, marker="|")
        if k:
            raster.axvline(k * result.steps - 0.5, color="grey", lw=0.5)
    raster.set_xlabel(f"step ({shown} sample(s) back to back)")
    raster.set_ylabel("output neuron")
    raster.set_title("output spikes")
    names = [row["name"] for row in activity["layers"]]
    x = np.arange(len(names))
    bars.bar(x - 0.2, [max(row["spikes"], 1e-9) for row in activity["layers"]], width=0.4, label="spikes")
    bars.bar(x + 0.2, [max(row["synops"], 1e-9) for row in activity["layers"]], width=0.4, label="synaptic ops")
    bars.set_yscale("log")
    bars.set_xticks(x, names, rotation=15)
    bars.set_title("per sample (mean)")
    bars.legend()
    fig.suptitle(f"{result.net.name}: Lava CPU {result.mode}, {result.samples} sample(s) x {result.steps} steps")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def activity_dict(result: SimResult, model: str) -> dict[str, Any]:
    return result.activity.to_dict(samples=result.samples, steps_per_sample=result.steps, model=model,
                                   precision=result.mode)


def prepare(model: Path, input_path: Path | None, dataset: str | None, samples: int | None, steps: int | None,
            seed: int = 0, max_rate: float = 1.0, dt: float | None = None) -> tuple[LoihiNet, Inputs]:
    """The network and its inputs for the ``simulate`` and ``deploy`` commands."""
    if (input_path is None) == (dataset is None):
        raise UserError("give exactly one of --input FILE or --dataset NAME")
    hint = None
    if dataset is not None:
        from snndeploy.data.datasets import dataset_info

        hint = dataset_info(dataset).shape
    net = load_net(model, input_shape=hint, dt=dt)
    if input_path is not None:
        inputs = load_input_file(input_path, net.input_shape, bias_input=net.layers[0].op == "input",
                                 steps=steps or net.time_steps)
        if samples is not None:
            inputs = replace(inputs, spikes=inputs.spikes[:samples],
                             labels=None if inputs.labels is None else inputs.labels[:samples],
                             bias=None if inputs.bias is None else inputs.bias[:samples])
        return net, with_steps(inputs, steps)
    from snndeploy.data.datasets import dataset_info

    steps = int(steps or net.time_steps or dataset_info(dataset).time_steps)
    return net, dataset_inputs(dataset, net.input_shape, samples=samples or 100, steps=steps, seed=seed,
                               max_rate=max_rate, net=net)
