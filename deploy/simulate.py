"""``snndeploy simulate``: run an exported network on Lava's CPU backend over one or many samples.

The model is converted to a :class:`~snndeploy.export.ir.LoihiNet` and built once per chunk of samples with
:func:`snndeploy.export.lava_net.build_lava` (``sample_steps``). Samples run back to back; at every sample's
first step every layer zeroes its current and voltage and drops that step's synaptic input (the previous
sample's last spikes; ``lava_procs.SampleLIF``), so each sample's spikes equal those of a separate run of it,
biases included. A sample fed as a current (the input layer's bias, bootstrap MNIST) comes through a second
source into the input layer's ``bias_in`` port, one value per neuron and step. Only axonal delays, which hold a
sample's spikes past its end, need a build of its own per sample (per copy).

Lava transfers Var data element by element (about 15-30 us per value), so reading a spike raster back costs
more than running a small network: only the output layer (and probed layers) are recorded, hidden layers'
spikes are counted in place (each ``SampleLIF`` counts its own spikes in its ``spike_count`` Var, read once per
build; netx's reset scheme, plain ``LIF`` neurons, gets a counting process pair: :func:`_attach_counter`), and the
read-out time is reported apart from the run time. Feeding a running network new input the same way is slower
still, so a long input is split into chunks, each built, run and stopped on its own (``chunk_steps``); their fixed
start/stop cost is reported separately.

Inputs come from :mod:`snndeploy.sim_inputs`, activity is counted by :mod:`snndeploy.sim_activity`, and
:mod:`snndeploy.sim_outputs` writes what a run leaves behind.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from snndeploy import lava_runner
from snndeploy.errors import UserError
from snndeploy.export.ir import W_SCALE, Layer, LoihiNet
from snndeploy.export.lava_batch import choose_copies, max_copies, split_copies, stack_copies, unrolled_kernel
from snndeploy.export.lava_net import (
    DEFAULT_SPARSE_BELOW,
    MODES,
    build_lava,
    from_lava_layout,
    import_lava,
    to_lava_layout,
)
from snndeploy.lava_workers import run_parallel
from snndeploy.sim_activity import ActivityCounter

DEFAULT_CHUNK_STEPS = 20_000  # steps per Lava build; also bounded by MAX_CHUNK_VALUES input values
MAX_CHUNK_VALUES = 1 << 23  # input values held by one build's source (int64: 64 MiB)
COUNT_SCALE = 64  # fixed_pt LIF: v grows by a_in << 6
DRAIN_STEPS = 256  # Extractor channel depth: recorded spikes are drained at least this often
MAX_COUNT_VTH = (1 << 17) - 1  # a counter would spike at ~131,000 counts: builds stay below MAX_BUILD_STEPS
MAX_BUILD_STEPS = 100_000
VALUES_PER_RECEIVE = 8  # an Extractor receive of one step's spikes costs about as much as reading 8 Var values



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
                    "to back (every layer starts afresh at each sample's first step)")
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
    """Why netx's back-to-back scheme (``reset_interval``: layer i reset as the sample reaches it, i steps late;
    what a Loihi bundle runs) cannot run samples back to back: a bias drives every layer from step 0 of a
    separate run, and axonal delays shift when a sample reaches each layer. ``simulate`` itself runs biased
    networks back to back (:func:`own_build`)."""
    if any(layer.neuron.bias is not None and np.any(np.asarray(layer.neuron.bias)) for layer in net.layers):
        return "the network has a bias"
    if any(layer.delay is not None and np.any(np.asarray(layer.delay)) for layer in net.layers):
        return "the network has axonal delays"
    if any(layer.syn_bias is not None for layer in net.layers):  # measured: back to back moved later layers' spikes
        return "a layer has a synaptic bias (an always-on axon that starts with each sample)"
    return None


def own_build(net: LoihiNet) -> str | None:
    """Why each sample needs a build (a copy) of its own in ``simulate``: axonal delays hold a sample's spikes past
    its end, where the next sample's fresh start cannot drop them. A synaptic bias runs back to back: its
    always-on axon's source replays the sample's steps, switching on anew in every sample (test on the Braille
    graph against separate builds)."""
    if any(layer.delay is not None and np.any(np.asarray(layer.delay)) for layer in net.layers):
        return "the network has axonal delays"
    return None


def chunk_samples(samples: int, steps: int, input_size: int, chunk_steps: int = DEFAULT_CHUNK_STEPS) -> int:
    """Samples per Lava build: bounded by ``chunk_steps`` and by the source's memory."""
    by_steps = max(1, min(chunk_steps, MAX_BUILD_STEPS) // steps)
    by_memory = max(1, MAX_CHUNK_VALUES // max(steps * input_size, 1))
    return max(1, min(samples, by_steps, by_memory))


def plan_runs(net: LoihiNet, samples: int, steps: int, chunk_steps: int = DEFAULT_CHUNK_STEPS,
              copies: int | None = None, alone: str | None = None, mode: str = "fixed_pt") -> RunPlan:
    """The one rule for sharing builds: ``copies`` from :func:`snndeploy.export.lava_batch.choose_copies` (group
    limit, memory, work per step), but one copy where a conv or pool layer stays a Lava ``Conv`` (not unrolled:
    ``lava_batch.unrolled_kernel``); back to back within each copy where that is exact (no axonal delays:
    :func:`own_build`), as many samples as ``chunk_steps`` and the source's memory allow. The rule's copies are
    then cut to the fewest that run the same builds (64 samples on at most 43 copies: 32 x 2, not 43 x 2 with 22
    idle copies). ``alone``: one copy per build (netx's reset scheme)."""
    if alone is not None:
        return RunPlan(1, 1, alone)
    why = own_build(net)
    if copies is None and why is None and any(layer.op in ("conv", "pool") and unrolled_kernel(layer, mode) is None
                                              for layer in net.layers):
        copies = 1  # measured: Lava's grouped Conv costs more per copy than back to back saves (docs/benchmarks.md)
    chosen = copies is None
    copies = choose_copies(net, samples, mode=mode) if chosen else \
        max(1, min(int(copies), samples, max_copies(net, mode)))
    per_copy = 1 if why is not None else \
        chunk_samples(-(-samples // copies), steps, math.prod(net.input_shape) * copies, chunk_steps)
    if chosen:
        share = -(-samples // -(-samples // (copies * per_copy)))  # samples per build, over as few builds
        copies = -(-share // per_copy)
    return RunPlan(copies, per_copy, why or "back to back is exact")


def bias_mantissas(bias: np.ndarray, mode: str) -> np.ndarray:
    """An input bias (Loihi mantissa units) as the input LIF takes it: integers in fixed_pt (exponent 6),
    SLAYER units in floating_pt (exponent 0)."""
    bias = np.asarray(bias, dtype=np.float64)
    if mode != "fixed_pt":
        return bias / W_SCALE
    if not np.allclose(bias, np.round(bias)):
        raise UserError("a fixed_pt input bias must be integers (Loihi bias mantissas)")
    return np.round(bias).astype(np.int64)


def input_bias_mant(bias: np.ndarray, mode: str) -> np.ndarray:
    """An input bias (IR order) as the input LIF's ``bias_mant`` Var (Lava order)."""
    return bias_mantissas(to_lava_layout(np.asarray(bias, dtype=np.float64)[..., None])[..., 0], mode)


def _bias_feed(bias: np.ndarray, copies: int, per_copy: int, steps: int, mode: str) -> np.ndarray:
    """``(n, *shape)`` biases -> ``(copies*C, ..., per_copy*steps + 1)``: copy b's samples back to back, each
    bias held for its ``steps`` steps, zero on the padding samples and the final idle step."""
    n = bias.shape[0]
    padded = np.concatenate([bias, np.zeros((copies * per_copy - n, *bias.shape[1:]), dtype=bias.dtype)])
    runs = bias_mantissas(padded, mode).reshape(copies, per_copy, *bias.shape[1:])
    held = np.repeat(np.moveaxis(runs, 1, -1), steps, axis=-1)  # (copies, *shape, per_copy*steps)
    return stack_copies(np.concatenate([held, np.zeros_like(held[..., :1])], axis=-1))



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


def _read_count(counter, mode: str, neuron) -> np.ndarray:
    """Spikes per neuron (IR order, copies stacked) from a counter's voltage or, without one, from the neuron's own
    ``spike_count`` (``lava_procs.SampleLIF``)."""
    if counter is None:
        count = np.array(neuron.spike_count.get(), dtype=np.int64)
        return (from_lava_layout(count[..., None])[..., 0] if count.ndim == 3 else count).reshape(-1)
    v = np.array(counter.v.get(), dtype=np.float64)
    return np.round(v / (COUNT_SCALE if mode == "fixed_pt" else 1.0)).astype(np.int64)


def _split(raster: np.ndarray, samples: int, steps: int) -> np.ndarray:
    """(…, samples*steps) -> (samples, …, steps)."""
    return np.moveaxis(raster.reshape(*raster.shape[:-1], samples, steps), -2, 0).copy()


def extractor(port, buffer_size: int):
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


def _per_sample(raster: np.ndarray, copies: int, per_copy: int, steps: int, n: int) -> np.ndarray:
    """``(copies*C, ..., per_copy*steps)`` -> ``(n, C, ..., steps)``: copy b ran samples ``b*per_copy ...``."""
    runs = split_copies(raster, copies)
    return np.concatenate([_split(run, per_copy, steps) for run in runs], axis=0)[:n]


def _run_chunk(net: LoihiNet, x: np.ndarray, mode: str, keep: tuple[int, ...], probes: tuple[int, ...],
               timing: Timing, timeout_s: float | None, sparse_below: float, advance: Callable[[int], None],
               every_sample: bool = False, copies: int = 1, bias: np.ndarray | None = None,
               reset_interval: int | None = None):
    """Build, run and stop one chunk ``x`` ``(n, *shape, T)`` on ``copies`` copies of the network side by side,
    each running ``ceil(n / copies)`` consecutive samples back to back (zero samples pad the last copy).
    ``bias`` ``(n, *input_shape)``: the input layer's bias per sample, held for its steps through a second source;
    ``reset_interval``: netx's reset scheme (one sample, its bias in the input layer's Var).

    Returns (per-sample spikes of the ``keep`` layers ``(n, *shape, T)``, spikes per neuron of every layer summed
    over the copies, per-sample u/v probes). One extra step with no input runs last, so that the counters take in
    the spikes of the final step.
    """

    n, steps = x.shape[0], x.shape[-1]
    copies = min(copies, n)
    per_copy = -(-n // copies)
    total = per_copy * steps
    padded = np.concatenate([x, np.zeros((copies * per_copy - n, *x.shape[1:]), dtype=x.dtype)])
    runs = padded.reshape(copies, per_copy, *x.shape[1:])
    flat = np.concatenate([*np.moveaxis(runs, 1, 0), np.zeros_like(runs[:, 0, ..., :1])], axis=-1)
    real = np.clip(n - np.arange(copies) * per_copy, 0, per_copy)  # real samples per copy
    t0 = time.perf_counter()
    feed = None
    if bias is not None and not reset_interval:
        feed = _bias_feed(bias, copies, per_copy, steps, mode)
        if not flat.any():
            flat = flat[..., :1]  # no spikes: the source replays one zero step
    padded_copies = None if reset_interval or copies * per_copy == n else real * steps
    lava = build_lava(net, flat if copies > 1 else flat[0], mode=mode, sparse_below=sparse_below, record="none",
                      sample_steps=None if reset_interval else steps, copies=copies, state_ports=probes,
                      reset_interval=reset_interval, bias_feed=feed, copy_steps=padded_copies, count_steps=total)
    if bias is not None and reset_interval:  # netx's scheme: one sample, its bias in the input layer's Var
        lava.layers[0].neuron.bias_mant.init = input_bias_mant(bias[0], mode)
    in_place = {i for i in range(len(net.layers)) if i not in keep and _count_in_place(total + 1, net.layers[i].size
                                                                                          * copies)}
    # SampleLIF neurons count their own spikes; netx's reset scheme (plain LIF) gets counting processes
    counters = {i: _attach_counter(lava.layers[i].neuron, net.layers[i], mode, copies) if reset_interval else None
                for i in in_place}
    extractors = {i: extractor(lava.layers[i].neuron.s_out, DRAIN_STEPS) for i in range(len(net.layers))
                  if i not in in_place}
    state = {(i, var): extractor(getattr(lava.layers[i].neuron, f"{var}_out"), DRAIN_STEPS)
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
        counts = {i: _read_count(c, mode, lava.layers[i].neuron).reshape(copies, -1).sum(axis=0)
                  for i, c in counters.items()}
        timing.read_s += time.perf_counter() - t
        t = time.perf_counter()
    timing.stop_s += time.perf_counter() - t
    timing.chunks += 1

    def stack(values: list) -> np.ndarray:
        return from_lava_layout(np.stack(values, axis=-1))[..., :total]

    rasters = {i: stack(values).astype(np.uint8) for i, values in received.items()}
    per_neuron = [split_copies(rasters[i], copies).sum(axis=(0, -1)).reshape(-1) if i in rasters else counts[i]
                  for i in range(len(net.layers))]
    spikes = {i: _per_sample(rasters[i], copies, per_copy, steps, n) for i in keep}
    probed = {i: {"u": _per_sample(stack(u[i]), copies, per_copy, steps, n),
                  "v": _per_sample(stack(v[i]), copies, per_copy, steps, n)} for i in probes}
    return spikes, per_neuron, probed


def check_inputs(net: LoihiNet, inputs: np.ndarray, mode: str) -> tuple[int, int]:
    """(samples, steps) of ``inputs`` ``(N, *net.input_shape, T)``; a one-line error if they or ``mode`` do not fit."""

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
    mantissa units in fixed_pt, as lava-dl's goldens give an image; it comes through a second source, held for
    the sample's steps, so bias-fed samples run back to back and in copies like any other).
    ``reset_interval``: netx's reset scheme inside each sample: layer i's u and v are zeroed every that many steps,
    pipelined by one step per layer (:func:`snndeploy.export.lava_net.build_lava`).
    """
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
    if reset_interval:
        workers = 1
        alone = (f"each sample is written as the input layer's bias; netx's reset_interval {reset_interval}: every "
                 f"layer's u and v are zeroed every {reset_interval} steps, one step later per layer")
    workers = max(1, min(int(workers), samples))
    if workers > 1:
        options = {"mode": mode, "probe": probe, "record": record, "timeout_s": timeout_s,
                   "chunk_steps": chunk_steps, "sparse_below": sparse_below, "copies": copies}
        return _simulate_in_workers(net, inputs, workers, options, progress, on_sample, started, input_bias)
    plan = plan_runs(net, samples, steps, chunk_steps, copies, alone, mode)
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


def _simulate_part(net: LoihiNet, inputs: np.ndarray, bias: np.ndarray | None, options: dict[str, Any],
                   report: Callable[[int], None]):
    return simulate_net(net, inputs, on_sample=report, input_bias=bias, **options)


def _simulate_in_workers(net: LoihiNet, inputs: np.ndarray, workers: int, options: dict[str, Any], progress: bool,
                         on_sample: Callable[[int], None] | None, started: float,
                         bias: np.ndarray | None = None) -> SimResult:
    """``simulate_net`` over consecutive parts of ``inputs`` in ``workers`` processes, merged in order."""
    bar = tqdm(total=inputs.shape[0], desc=f"simulate {net.name} ({workers} workers)", unit="sample",
               disable=not progress, leave=False)

    def advance(done: int) -> None:
        bar.update(done - bar.n)
        if on_sample is not None:
            on_sample(done)

    biases = [None] * workers if bias is None else np.array_split(bias, workers)
    parts = [(net, part, part_bias, options) for part, part_bias in zip(np.array_split(inputs, workers), biases,
                                                                          strict=True)]
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

