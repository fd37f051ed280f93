"""``snndeploy simulate`` for sigma-delta (SDNN) networks: graded spikes on Lava's own ``lava.proc.sdn`` models.

A sigma-delta network is built by :func:`snndeploy.export.lava_net.build_lava` exactly as netx builds it (the
input layer is a ``Delta`` encoder fed straight from the source) and run one sample per build: its layers have
no reset, so samples cannot share a run. Inputs are netx's integers (``fixed``) and an input shorter than
``--steps`` is replayed from its start, as Lava's ``RingBuffer`` source does with lava-dl's one-frame test
inputs. Every layer's graded output leaves through an ``Extractor`` (whole arrays per step); values are Loihi's
integer payloads in both precisions (``float`` results are scaled back, not rounded). ``--probe`` layers also
keep their ``sigma`` state per step.

Activity counts a graded spike as one message (a non-zero output), so synaptic operations are messages x
non-zero fan-out as for binary spikes; each message carries the layer's ``message_bits`` payload.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from snndeploy import lava_runner, validate
from snndeploy.data.datasets import feed_for, load_arrays
from snndeploy.errors import UserError
from snndeploy.export.ir import W_SCALE, LoihiNet
from snndeploy.export.lava_net import build_lava, from_lava_layout, import_lava, netx_layout_to_ir, sd_payload
from snndeploy.models.spec import IOSpec
from snndeploy.sim_activity import ActivityCounter
from snndeploy.sim_inputs import Inputs, dataset_inputs, fit_input_shape, read_input_arrays
from snndeploy.simulate import RunPlan, SimResult, Timing, check_inputs, extractor, run_config


class SdActivityCounter(ActivityCounter):
    """Activity of graded spikes: a message is a non-zero output; its payload bits are recorded per layer."""

    def to_dict(self, **kwargs) -> dict[str, Any]:
        out = super().to_dict(**kwargs)
        out["counting"] = ("graded spikes: one message per non-zero output; " + out["counting"])
        first = self.net.layers[0].neuron
        out["input"].update(graded=True, payload_bits=int(getattr(first, "message_bits", 0)))
        for row, layer in zip(out["layers"], self.net.layers, strict=True):
            bits = int(getattr(layer.neuron, "message_bits", 0))
            row.update(graded=layer.neuron.graded, payload_bits=bits, payload_bits_total=row["spikes"] * bits)
        return out


def load_sd_input(path: str | Path, shape: tuple[int, ...]) -> Inputs:
    """Graded inputs: ``.npy`` (or ``.npz`` ``x``) of ``(*shape, T)`` or ``(N, *shape, T)``, or netx's own layout
    (W, H, C) for images, recognised by its shape (lava-dl's test inputs are written that way)."""
    path = Path(path)
    data, _ = read_input_arrays(path)
    x = netx_layout_to_ir(validate.check_spikes(np.asarray(data), path, signed=True), shape)
    if np.any(x != np.round(x)):
        raise UserError("sigma-delta inputs must be integers (netx's fixed-point input values)", path)
    return Inputs(fit_input_shape(x.astype(np.int64), shape, path=path), None, str(path))


def replay_steps(inputs: Inputs, steps: int | None) -> Inputs:
    """Cut or replay every sample to ``steps`` steps (Lava's RingBuffer replays its data from the start)."""
    if steps is None or steps == inputs.steps:
        return inputs
    if steps < 1:
        raise UserError(f"--steps must be at least 1, got {steps}")
    return Inputs(inputs.spikes[..., np.arange(steps) % inputs.steps], inputs.labels, inputs.source)


def _run_sample(net: LoihiNet, x: np.ndarray, mode: str, probes: tuple[int, ...], timing: Timing,
                timeout_s: float | None) -> tuple[list[np.ndarray], dict[int, np.ndarray]]:
    """One build and run: every layer's graded output ``(*shape, T)`` (payload units) and probed sigmas."""
    steps = x.shape[-1]
    t0 = time.perf_counter()
    lava = build_lava(net, x, mode=mode, record="output")
    extractors = [extractor(layer.neuron.s_out, steps + 1) for layer in lava.layers]
    proc = lava.layers[0].neuron
    timing.build_s += time.perf_counter() - t0
    sigmas: dict[int, list] = {i: [] for i in probes}
    with lava_runner.lava_session(proc):
        done = 0
        for stop_at in (range(1, steps + 1) if probes else sorted({1, steps})):
            t = time.perf_counter()
            lava_runner.run_steps(proc, stop_at - done, run_config(mode), timeout_s=timeout_s, stop_after=False,
                                  what=f"Lava {mode} run of {net.name}")
            if done:
                timing.run_s += time.perf_counter() - t
                timing.run_steps += stop_at - done
            else:
                timing.start_s += time.perf_counter() - t  # compile, start and the first step
            done = stop_at
            for i in probes:
                sigmas[i].append(np.array(lava.layers[i].neuron.sigma.get()))
        t = time.perf_counter()
        outputs = [from_lava_layout(np.stack([e.receive() for _ in range(steps)], axis=-1)) for e in extractors]
        timing.read_s += time.perf_counter() - t
        t = time.perf_counter()
    timing.stop_s += time.perf_counter() - t
    timing.chunks += 1
    outputs = [sd_payload(o, layer, mode) for o, layer in zip(outputs, net.layers, strict=True)]
    sigmas = {i: [sd_payload(s, net.layers[i], mode, state=True) for s in v] for i, v in sigmas.items()}
    return outputs, {i: from_lava_layout(np.stack(v, axis=-1)) for i, v in sigmas.items()}


def simulate_sd(net: LoihiNet, inputs: np.ndarray, *, mode: str = "fixed_pt", probe: tuple[int, ...] = (),
                timeout_s: float | None = 600.0) -> SimResult:
    """Run graded ``inputs`` ``(N, *net.input_shape, T)`` through a sigma-delta ``net``, one build per sample."""
    samples, steps = check_inputs(net, inputs, mode)
    inputs = np.asarray(inputs)
    import_lava()
    start = time.perf_counter()
    counter, timing = SdActivityCounter(net), Timing()
    layers: list[list[np.ndarray]] = [[] for _ in net.layers]
    sigma: dict[int, list[np.ndarray]] = {i: [] for i in probe}
    for x in inputs:
        outputs, sigmas = _run_sample(net, x, mode, probe, timing, timeout_s)
        counts = [np.count_nonzero(o, axis=-1).reshape(-1) for o in outputs]
        counter.add(np.count_nonzero(x, axis=-1).reshape(-1), counts, steps)
        for i, o in enumerate(outputs):
            layers[i].append(o)
        for i, s in sigmas.items():
            sigma[i].append(s)
    layer_out = {i: np.stack(v) for i, v in enumerate(layers)}
    probes = {i: {"spikes": layer_out[i], "sigma": np.stack(sigma[i])} for i in probe}
    timing.wall_s = time.perf_counter() - start
    return SimResult(net=net, mode=mode, output=layer_out[len(net.layers) - 1], probes=probes, activity=counter,
                     timing=timing, steps=steps, samples=samples, layer_spikes=layer_out,
                     plan=RunPlan(1, 1, "sigma-delta layers have no reset"))


def sd_dataset_inputs(name: str, net: LoihiNet, *, samples: int, steps: int, seed: int = 0) -> Inputs:
    """The first ``samples`` test samples of a dataset as a sigma-delta network's inputs: what its model was
    trained on (the model's recorded feed: an image held every step for ``current``, else spikes) on netx's
    integer input grid (x 64, the rounding of the SLAYER model's input block)."""
    feed = feed_for(net.meta.get("io") or IOSpec())
    _, test, info = load_arrays(name, time_steps=steps)
    if feed.encoding != "current" or info.kind == "events":
        spikes = dataset_inputs(name, net.input_shape, samples=samples, steps=steps, seed=seed)
        return Inputs(spikes.spikes.astype(np.int64) * W_SCALE, spikes.labels, spikes.source)
    if samples < 1:
        raise UserError(f"--samples must be at least 1, got {samples}")
    count = min(samples, len(test.y))
    values = np.asarray(test.x[:count], dtype=np.float64)[..., None]
    if feed.normalize is not None:
        values = (values - feed.normalize[0]) / feed.normalize[1]
    frames = fit_input_shape(np.round(values * W_SCALE).astype(np.int64), net.input_shape, batched=True)
    return Inputs(np.repeat(frames, steps, axis=-1), np.asarray(test.y[:count]).astype(np.int64),
                  f"dataset {info.name} (test, first {count}); {feed.note}; x 64 to netx's input integers")


def prepare_sd(net: LoihiNet, input_path: Path | None, samples: int | None, steps: int | None,
               dataset: str | None = None) -> Inputs:
    """The inputs of ``snndeploy simulate`` for a sigma-delta network: a file, or a dataset's test frames."""
    if dataset is not None and input_path is None:
        return sd_dataset_inputs(dataset, net, samples=samples or 100, steps=steps or int(net.time_steps or 25))
    if input_path is None:
        raise UserError(f"{net.name} is a sigma-delta network: give its graded inputs with --input FILE "
                        "or --dataset NAME")
    inputs = load_sd_input(input_path, net.input_shape)
    if samples is not None:
        inputs = Inputs(inputs.spikes[:samples], None, inputs.source)
    return replay_steps(inputs, steps or inputs.steps)
