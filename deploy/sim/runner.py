"""The chunked Lava CPU runner: an exported network over one or many samples.

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
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from snndeploy import lava_runner
from snndeploy.errors import UserError
from snndeploy.export.ir import Layer, LoihiNet
from snndeploy.export.lava_net import DEFAULT_SPARSE_BELOW, MODES, build_lava, from_lava_layout, import_lava
from snndeploy.sim.activity import ActivityCounter

DEFAULT_CHUNK_STEPS = 20_000  # steps per Lava build; also bounded by MAX_CHUNK_VALUES input values
MAX_CHUNK_VALUES = 1 << 23  # input values held by one build's source (int64: 64 MiB)
COUNT_SCALE = 64  # fixed_pt LIF: v grows by a_in << 6
DRAIN_STEPS = 256  # Extractor channel depth: recorded spikes are drained at least this often
MAX_COUNT_VTH = (1 << 17) - 1  # a counter would spike at ~131,000 counts: builds stay below MAX_BUILD_STEPS
MAX_BUILD_STEPS = 100_000



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


def _attach_counter(neuron, layer: Layer, mode: str):
    """A never-spiking integrator behind ``neuron`` whose voltage counts each neuron's spikes (read once per run).

    Reading a spike raster back from Lava costs ~15-20 us per value, so hidden layers are counted in place:
    an identity ``Sparse`` synapse into a ``LIF`` with full current decay and no voltage decay accumulates
    ``64 x`` spikes (fixed_pt) or the spikes (floating_pt) in ``v``. The count lags one step (the synapse).
    """
    from lava.proc.lif.process import LIF
    from lava.proc.sparse.process import Sparse
    from scipy.sparse import identity

    n = layer.size
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


def _extractor(neuron, buffer_size: int):
    """Spikes leave through a Lava ``Extractor``: a channel of whole arrays, ~1000x faster than a sink's Var read."""
    from lava.proc.io.extractor import Extractor

    extractor = Extractor(shape=neuron.s_out.shape, buffer_size=buffer_size)
    neuron.s_out.connect(extractor.in_port)
    return extractor


def run_config(mode: str):
    """``Loihi2SimCfg`` for ``mode``, with the (untagged) Extractor model named explicitly."""
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel

    return Loihi2SimCfg(select_tag=mode, exception_proc_model_map={Extractor: PyLoihiExtractorModel})


def _stops(n: int, steps: int, every_step: bool, every_sample: bool) -> list[int]:
    """Cumulative step counts at which the run pauses: after the first step, every ``DRAIN_STEPS`` (or sample),
    at the end and after the idle step. Each pause costs a few milliseconds."""
    total = n * steps
    if every_step:
        return list(range(1, total + 2))
    marks = {1, total, total + 1} | set(range(DRAIN_STEPS, total, DRAIN_STEPS))
    if every_sample:
        marks |= {(k + 1) * steps for k in range(n)}
    return sorted(marks)


def _run_chunk(net: LoihiNet, x: np.ndarray, mode: str, keep: tuple[int, ...], probes: tuple[int, ...],
               timing: Timing, timeout_s: float | None, sparse_below: float, advance: Callable[[int], None],
               every_sample: bool = False):
    """Build, run and stop one chunk ``x`` ``(n, *shape, T)``.

    Returns (spike rasters of the ``keep`` layers ``(*shape, n*T)``, spikes per neuron of every layer, u/v probes).
    One extra step with no input runs last, so that the counters take in the spikes of the final step.
    """
    n, steps = x.shape[0], x.shape[-1]
    total = n * steps
    flat = np.concatenate([*x, np.zeros_like(x[0][..., :1])], axis=-1)  # samples back to back, one idle step
    t0 = time.perf_counter()
    lava = build_lava(net, flat, mode=mode, sparse_below=sparse_below, record="output",
                      sample_steps=steps if n > 1 else None)
    counters = {i: _attach_counter(layer.neuron, net.layers[i], mode)
                for i, layer in enumerate(lava.layers) if i not in keep}
    extractors = {i: _extractor(lava.layers[i].neuron, DRAIN_STEPS) for i in keep}
    proc, cfg = lava.layers[0].neuron, run_config(mode)
    timing.build_s += time.perf_counter() - t0
    received: dict[int, list] = {i: [] for i in keep}
    u: dict[int, list] = {i: [] for i in probes}
    v: dict[int, list] = {i: [] for i in probes}
    what = f"Lava {mode} run of {net.name}"

    def read(count: int) -> None:
        t = time.perf_counter()
        for i, extractor in extractors.items():
            received[i].extend(extractor.receive() for _ in range(count))
        for i in probes:
            u[i].append(np.array(lava.layers[i].neuron.u.get()))
            v[i].append(np.array(lava.layers[i].neuron.v.get()))
        timing.read_s += time.perf_counter() - t

    done = 0
    with lava_runner.lava_session(proc):
        for stop_at in _stops(n, steps, bool(probes), every_sample):
            count = stop_at - done
            t = time.perf_counter()
            lava_runner.run_steps(proc, count, cfg, timeout_s=timeout_s, stop_after=False, what=what)
            if done == 0:
                timing.start_s += time.perf_counter() - t  # compile, start and the first step
            else:
                timing.run_s += time.perf_counter() - t
                timing.run_steps += count
            read(count)
            finished = min(stop_at, total) // steps - min(done, total) // steps
            done = stop_at
            if finished:
                advance(finished)
        t = time.perf_counter()
        counts = {i: _read_count(c, mode) for i, c in counters.items()}
        timing.read_s += time.perf_counter() - t
        t = time.perf_counter()
    timing.stop_s += time.perf_counter() - t
    timing.chunks += 1

    def stack(values: list) -> np.ndarray:
        return from_lava_layout(np.stack(values, axis=-1))[..., :total]

    rasters = {i: stack(values).astype(np.uint8) for i, values in received.items()}
    per_neuron = [rasters[i].sum(axis=-1) if i in rasters else counts[i] for i in range(len(net.layers))]
    probed = {i: {"u": _split(stack(u[i]), n, steps, i), "v": _split(stack(v[i]), n, steps, i)} for i in probes}
    return rasters, per_neuron, probed


def simulate_net(net: LoihiNet, inputs: np.ndarray, *, mode: str = "fixed_pt", probe: tuple[int, ...] = (),
                 record: tuple[int, ...] = (), timeout_s: float | None = 600.0,
                 chunk_steps: int = DEFAULT_CHUNK_STEPS, sparse_below: float | None = None, progress: bool = False,
                 on_sample: Callable[[int], None] | None = None) -> SimResult:
    """Run ``inputs`` ``(N, *net.input_shape, T)`` through ``net`` on Lava's CPU backend, sample by sample.

    ``probe``: layer indices whose spikes, current ``u`` and voltage ``v`` are kept per sample (``u``/``v`` cost
    one Var read per step); ``record``: layers whose spikes alone are kept (``result.layer_spikes``). A voltage
    read-out output layer is probed automatically. ``on_sample(samples_done)`` is called after each sample, while
    the run is paused (an exception there stops the run like any other). Every run is stopped on success, error,
    timeout and Ctrl-C (``snndeploy.lava_runner``).
    """
    from tqdm import tqdm

    if mode not in MODES:
        raise UserError(f"unknown precision {mode!r}")
    inputs = np.asarray(inputs)
    if inputs.ndim < 2 or tuple(inputs.shape[1:-1]) != tuple(net.input_shape):
        raise UserError(f"inputs of shape {inputs.shape} do not fit (N, *{tuple(net.input_shape)}, T)")
    samples, steps = int(inputs.shape[0]), int(inputs.shape[-1])
    if samples < 1 or steps < 1:
        raise UserError("no input samples or no time steps to simulate")
    if steps > MAX_BUILD_STEPS:
        raise UserError(f"samples of {steps} steps are longer than one Lava build may run ({MAX_BUILD_STEPS}); "
                        "split the recording into samples")
    out_layer = len(net.layers) - 1
    uv_probes = tuple(sorted(set(probe) | ({out_layer} if not net.layers[out_layer].neuron.spiking else set())))
    keep = tuple(sorted(set(probe) | set(record) | {out_layer}))
    import_lava()  # before the progress bar creates a multiprocessing lock
    per_chunk = 1 if separate_runs(net) else chunk_samples(samples, steps, math.prod(net.input_shape), chunk_steps)
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
        for start in range(0, samples, per_chunk):
            x = inputs[start:start + per_chunk]
            rasters, counts, chunk_probes = _run_chunk(
                net, x, mode, keep, uv_probes, timing, timeout_s,
                DEFAULT_SPARSE_BELOW if sparse_below is None else sparse_below, advance, on_sample is not None)
            counter.add(x.sum(axis=(0, -1), dtype=np.int64), counts, x.shape[0] * steps)
            for i in keep:
                kept[i].append(_split(rasters[i].astype(np.uint8), x.shape[0], steps, i))
            for i, values in chunk_probes.items():
                probed[i]["u"].append(values["u"])
                probed[i]["v"].append(values["v"])
    finally:
        bar.close()
    layer_spikes = {i: np.concatenate(parts, axis=0) for i, parts in kept.items()}
    probes_out = {i: {k: np.concatenate(v, axis=0) for k, v in d.items()} for i, d in probed.items()}
    for i in probe:
        probes_out.setdefault(i, {})["spikes"] = layer_spikes[i]
    return SimResult(net=net, mode=mode, output=layer_spikes[out_layer], probes=probes_out, activity=counter,
                     timing=timing, steps=steps, samples=samples, layer_spikes=layer_spikes)
