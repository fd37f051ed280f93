"""Simulation speed on Lava's CPU backend (fixed_pt): samples/s of every way of running many samples, in one run.

    .venv/bin/python benchmarks/simulate_speed.py [--samples 64] [--sparsity 0.9] [--cases mnist-mlp-512,...]
                                                  [--out benchmarks/results/simulate_speed.json]

For each network (mnist-mlp-128, mnist-mlp-512 (lava-dl's bootstrap MNIST: every digit fed as a current, the
input layer's bias, as its tutorial does; biased layers, voltage read-out), the N-MNIST CNN of
examples/nmnist_cnn.yaml with seeded weights on real nmnist-small events, tinynet (biased conv)), dense and with
the ``--sparsity`` smallest-magnitude weights of every dense/conv layer zeroed, it measures, one after another on
the same inputs:

* ``netx``: lava-dl's ``netx.hdf5.Network`` built, run and stopped once per sample (through ``lava_runner``), the
  output read from a ``RingBuffer`` sink - what a user of netx does for a test set (a few samples: it is slow);
* ``per-sample``: ``simulate_net`` with one Lava build per sample (``copies=1``, one sample per build);
  ``per-sample Conv`` / ``back-to-back Conv`` (conv networks): the same with every conv and pool layer built as
  Lava's own ``Conv`` process instead of its unrolled ``Sparse`` matrix (``lava_batch.unrolled_kernel``);
* ``back-to-back``: ``simulate_net`` with one copy running many samples per build (networks without axonal delays);
* ``B=<n>``: ``simulate_net`` with n network copies per build (``lava_batch``), ``B=auto`` the default rule;
* ``workers``: the default rule on ``--workers`` Lava runtimes in parallel processes.

samples/s is samples over wall time (building, compiling, running, reading and stopping included; imports and
the input encoding excluded). Peak memory is the largest sum of resident memory over this process and all its
children (Lava's workers) sampled every 0.1 s during the run, as PSS (a page shared by k processes counts 1/k to
each), so that pages the forked workers share with this process are counted once. Every batched result is
checked spike for spike (output spikes, and a read-out's voltage) against the per-sample run of the same samples.
Not part of CI; the machine is shared, so state its load with the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import psutil

import snndeploy  # noqa: F401  (Lava compatibility hook first)
from snndeploy.export.ir import LoihiNet
from snndeploy.settings import REPO_ROOT, fixtures_dir


def magnitude_prune(net: LoihiNet, sparsity: float) -> LoihiNet:
    """Zero the smallest-|w| ``sparsity`` share of each dense/conv layer's non-zero weights."""
    layers = []
    for layer in net.layers:
        if layer.op not in ("dense", "conv"):
            layers.append(layer)
            continue
        w = np.asarray(layer.weight, dtype=np.float64).copy()
        nz = np.flatnonzero(w)
        cut = int(round(len(nz) * sparsity))
        order = nz[np.argsort(np.abs(w.flat[nz]), kind="stable")]
        w.flat[order[:cut]] = 0.0
        layers.append(replace(layer, weight=w))
    return net.with_layers(layers)


def density(net: LoihiNet) -> float:
    sizes = [(np.count_nonzero(lay.weight), np.asarray(lay.weight).size) for lay in net.layers
             if lay.op in ("dense", "conv")]
    return sum(a for a, _ in sizes) / max(sum(b for _, b in sizes), 1)


def nmnist_cnn() -> LoihiNet:
    import torch

    from snndeploy.export.slayer_io import from_slayer
    from snndeploy.loader import load_model

    torch.manual_seed(0)
    return from_slayer(load_model(REPO_ROOT / "examples" / "nmnist_cnn.yaml"))


def cases(root: Path, samples: int) -> dict[str, tuple[LoihiNet, np.ndarray, np.ndarray | None, str]]:
    """name -> (network, inputs (N, *shape, T), the input layer's bias per sample or None, what the inputs are)."""
    from snndeploy.loader import load_net
    from snndeploy.sim_inputs import dataset_inputs

    mlp128 = load_net(root / "mnist-mlp-128" / "network.net")
    mlp512 = load_net(root / "mnist-mlp-512" / "network.net")
    tiny = load_net(root / "tinynet" / "tiny.net")
    cnn = nmnist_cnn()
    rng = np.random.default_rng(0)
    bootstrap = dataset_inputs("mnist", mlp512.input_shape, samples=samples, steps=16, net=mlp512)
    return {
        "mnist-mlp-128": (mlp128, dataset_inputs("mnist", mlp128.input_shape, samples=samples, steps=25).spikes,
                          None, f"{samples} MNIST test digits x 25 steps"),
        "mnist-mlp-512": (mlp512, bootstrap.spikes, bootstrap.bias,
                          f"{samples} MNIST test digits x 16 steps, each a current (the input layer's bias)"),
        "nmnist-cnn": (cnn, dataset_inputs("nmnist-small", cnn.input_shape, samples=samples, steps=30).spikes,
                       None, f"{samples} nmnist-small test samples x 30 steps"),
        "tinynet": (tiny, (rng.random((samples, *tiny.input_shape, 16)) < 0.2).astype(np.uint8),
                    None, f"{samples} x 16 steps of random spikes (rate 0.2)"),
    }


class PeakRss:
    """Largest proportional set size (PSS: shared pages split among the processes sharing them) of this process
    plus its children while the block runs - Lava's workers are forks of this process and share most pages."""

    def __enter__(self) -> PeakRss:
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_full_info().pss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(0.1)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def netx_per_sample(net: LoihiNet, x: np.ndarray, bias: np.ndarray | None) -> dict:
    """lava-dl netx: one ``hdf5.Network`` per sample from the netx file of ``net``, output read from a sink; a
    sample fed as a current is its input layer's ``bias_mant``, as lava-dl's tests feed an image."""
    from lava.lib.dl import netx
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc import io

    from snndeploy import lava_runner
    from snndeploy.export.netx_io import write_netx
    from snndeploy.simulate import input_bias_mant

    with tempfile.TemporaryDirectory() as tmp:
        path = write_netx(net, Path(tmp) / "net.net", force=True)
        start = time.perf_counter()
        for k, sample in enumerate(x):
            network = netx.hdf5.Network(net_config=str(path))
            if bias is not None:
                network.in_layer.neuron.bias_mant.init = input_bias_mant(bias[k], "fixed_pt")
            elif net.layers[0].op == "input" and len(net.input_shape) == 1:
                # netx drives an input layer with neurons through its bias only (docs/benchmarks.md "Export")
                network.in_layer.neuron.bias_mant.init = sample.mean(axis=-1) * 64
            else:
                source = io.source.RingBuffer(data=sample.reshape(*network.inp.shape, -1).astype(np.int64))
                source.s_out.connect(network.inp)
            sink = io.sink.RingBuffer(shape=network.out.shape, buffer=x.shape[-1])
            network.out.connect(sink.a_in)
            with lava_runner.lava_session(network):
                lava_runner.run_steps(network, x.shape[-1], Loihi2SimCfg(select_tag="fixed_pt"), stop_after=False)
                sink.data.get()
        wall = time.perf_counter() - start
    return {"wall_s": wall}


@contextlib.contextmanager
def lava_conv(on: bool):
    """With ``on``, every conv and pool layer is built as Lava's own ``Conv`` (no layer unrolls into a ``Sparse``)."""
    from snndeploy.export import lava_batch

    kept = lava_batch.MAX_UNROLLED_SYNAPSES
    lava_batch.MAX_UNROLLED_SYNAPSES = 0 if on else kept
    try:
        yield
    finally:
        lava_batch.MAX_UNROLLED_SYNAPSES = kept


def run_ours(net: LoihiNet, x: np.ndarray, conv: bool = False, **options) -> tuple[dict, object]:
    from snndeploy.simulate import simulate_net

    start = time.perf_counter()
    with lava_conv(conv):
        result = simulate_net(net, x, **options)
    wall = time.perf_counter() - start
    t = result.timing
    return {"wall_s": wall, "copies": result.plan.copies, "per_copy": result.plan.per_copy, "builds": t.chunks,
            "overhead_s": t.overhead_s, "run_s": t.run_s, "read_s": t.read_s}, result


def same_outputs(a, b) -> bool:
    out = len(a.net.layers) - 1
    same = np.array_equal(a.output, b.output)
    if "v" in a.probes.get(out, {}):
        same = same and np.array_equal(a.probes[out]["v"], b.probes[out]["v"])
    return same


def variants(net: LoihiNet, samples: int, workers: int, batches: list[int]) -> list[tuple[str, int, dict]]:
    """(name, samples, simulate_net options) of our ways of running, for ``net``."""
    from snndeploy.simulate import own_build

    steps_one = {"copies": 1, "chunk_steps": 1}  # one sample per build
    rows = [("per-sample", min(samples, 4), steps_one)]
    convs = any(layer.op in ("conv", "pool") for layer in net.layers)
    if convs:  # the same with Lava's own Conv processes (no unrolled conv layers)
        rows.append(("per-sample Conv", min(samples, 4), {**steps_one, "conv": True}))
    if own_build(net) is None:
        rows.append(("back-to-back", samples, {"copies": 1}))
        if convs:
            rows.append(("back-to-back Conv", samples, {"copies": 1, "conv": True}))
    rows += [(f"B={b}", samples, {"copies": b}) for b in batches if b <= samples]
    rows.append(("B=auto", samples, {}))
    rows.append((f"workers={workers}", samples, {"workers": workers}))
    return rows


def conv_step_ms(net: LoihiNet, x: np.ndarray, copies: int, repeats: int = 20) -> list[dict]:
    """Per conv layer, milliseconds of one step's arithmetic of ``copies`` copies, timed alone (no Lava runtime):
    Lava's fixed_pt ``Conv`` model's ``utils.conv`` against the unrolled matrix product the ``Sparse`` model does,
    on the layer's input spikes from a run of the first sample (step 10), the same sums."""
    from lava.proc.conv import utils

    from snndeploy.export import lava_batch
    from snndeploy.export.ir import W_SCALE, to_int_exact
    from snndeploy.export.lava_net import to_lava_layout
    from snndeploy.simulate import simulate_net

    run = simulate_net(net, x[:1], record=tuple(range(len(net.layers))), copies=1)
    rows = []
    for i, layer in enumerate(net.layers):
        fitted = lava_batch.unrolled_kernel(layer, "fixed_pt")
        if layer.op not in ("conv", "pool") or fitted is None:
            continue
        spikes = (x[0] if i == 0 else run.layer_spikes[i - 1][0])[..., 10]
        stacked = lava_batch.stack_copies(np.stack([spikes] * copies))
        xyc = to_lava_layout(stacked[..., None])[..., 0].astype(np.int32)
        kernel, groups = lava_batch.conv_kernel(lava_batch.replicate_layer(layer, copies))
        ints = to_int_exact(kernel, W_SCALE, layer.name)[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)
        lava_w = np.ascontiguousarray(ints).astype(np.int32)  # as lava_net builds a Conv
        matrix = lava_batch.unrolled_conv(layer, fitted[0], copies)
        start = time.perf_counter()
        for _ in range(repeats):
            out = utils.conv(xyc, lava_w, lava_w.shape[1:3], layer.stride[::-1], layer.padding[::-1],
                             layer.dilation[::-1], groups)
        conv = (time.perf_counter() - start) / repeats * 1e3
        flat = xyc.reshape(-1)
        start = time.perf_counter()
        for _ in range(repeats):
            product = matrix.dot(flat)
        sparse = (time.perf_counter() - start) / repeats * 1e3
        assert np.array_equal(np.left_shift(product, fitted[2]) if fitted[2] >= 0 else product >> -fitted[2],
                              out.reshape(-1)), layer.name
        rows.append({"layer": layer.name, "copies": copies, "conv_ms": conv, "sparse_ms": sparse,
                     "synapses": matrix.nnz})
        print(f"  {layer.name} x{copies}: Lava Conv {conv:7.2f} ms, unrolled Sparse {sparse:6.2f} ms per step "
              f"({matrix.nnz} synapses)", flush=True)
    return rows


def measure_case(name: str, net: LoihiNet, x: np.ndarray, bias: np.ndarray | None, args) -> list[dict]:
    rows = []
    netx_n = min(len(x), args.netx_samples)
    try:
        with PeakRss() as rss:
            wall = netx_per_sample(net, x[:netx_n], bias)["wall_s"]
    except Exception as exc:  # noqa: BLE001  (netx cannot build every file: recorded, the other methods still run)
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        rows.append({"method": "netx", "samples": 0, "samples_per_s": None, "error": error, "exact": None})
        print(f"  {'netx':<14} failed: {error}", flush=True)
        netx_rate = float("nan")
    else:
        netx_rate = netx_n / wall
        rows.append({"method": "netx", "samples": netx_n, "samples_per_s": netx_rate, "wall_s": wall,
                     "peak_rss_mb": rss.peak / 2**20, "exact": None})
        print(f"  {'netx':<14} {netx_n:>5} samples {netx_rate:8.2f} samples/s  peak RSS {rss.peak / 2**20:7.0f} MB",
              flush=True)
    reference = None
    for method, count, options in variants(net, len(x), args.workers, args.batches):
        with PeakRss() as rss:
            row, result = run_ours(net, x[:count], input_bias=None if bias is None else bias[:count], **options)
        if method == "per-sample":
            reference = result
        n_ref = reference.samples
        exact = same_outputs(_head(result, n_ref), reference) if method != "per-sample" else True
        rate = count / row["wall_s"]
        vs_netx = None if math.isnan(netx_rate) else rate / netx_rate
        rows.append({"method": method, "samples": count, "samples_per_s": rate, "vs_netx": vs_netx,
                     "peak_rss_mb": rss.peak / 2**20, "exact": exact, **row})
        print(f"  {method:<14} {count:>5} samples {rate:8.2f} samples/s  x{rate / netx_rate:6.1f} netx  "
              f"B={row['copies']} x {row['per_copy']}, {row['builds']} builds  peak RSS {rss.peak / 2**20:7.0f} MB"
              f"  exact {exact}", flush=True)
    return rows


def _head(result, n: int):
    """The first ``n`` samples of a result (for comparison with the per-sample run)."""
    out = len(result.net.layers) - 1
    probes = {i: {k: v[:n] for k, v in d.items()} for i, d in result.probes.items() if i == out}
    return replace(result, output=result.output[:n], probes=probes)


def plot(rows: list[dict], path: Path) -> None:
    """samples/s of every method, per network and variant (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys((r["network"], r["variant"]) for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(groups)), 4))
    width = 0.8 / len(methods)
    for k, method in enumerate(methods):
        values = {(r["network"], r["variant"]): r["samples_per_s"] for r in rows
                  if r["method"] == method and r["samples_per_s"] is not None}
        xs = [i + k * width for i, g in enumerate(groups) if g in values]
        ax.bar(xs, [values[g] for g in groups if g in values], width=width, label=method)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(groups))], [f"{n}\n{v}" for n, v in groups], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("samples/s (wall)")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("Lava CPU fixed_pt: netx per sample vs snndeploy simulate")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    from snndeploy.export.lava_net import import_lava
    from snndeploy.lava_workers import default_workers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--netx-samples", type=int, default=4)
    parser.add_argument("--batches", default="8,32", help="Copies per build to measure besides the default rule.")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--cases", default="mnist-mlp-128,mnist-mlp-512,nmnist-cnn,tinynet")
    parser.add_argument("--variants", default="dense,pruned")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "simulate_speed.json"))
    parser.add_argument("--conv-step", action="store_true",
                        help="Only time one step of each conv layer's arithmetic (Lava's Conv vs unrolled Sparse).")
    args = parser.parse_args()
    args.batches = [int(b) for b in args.batches.split(",") if b]
    import_lava()
    load = os.getloadavg()
    print(f"load average at start {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores", flush=True)
    rows = []
    all_cases = cases(fixtures_dir() / "lava-dl", args.samples)
    if args.conv_step:
        for name in args.cases.split(","):
            net, x, _, _ = all_cases[name]
            print(name, flush=True)
            rows += [{"network": name, **row} for copies in (1, *args.batches) for row in conv_step_ms(net, x, copies)]
        Path(args.out).write_text(json.dumps({"load_start": load, "rows": rows}, indent=2) + "\n")
        return
    for name in args.cases.split(","):
        net, x, bias, what = all_cases[name]
        for variant in args.variants.split(","):
            variant_net = net if variant == "dense" else magnitude_prune(net, args.sparsity)
            print(f"{name} {variant} (weight density {density(variant_net):.3f}), {what}", flush=True)
            for row in measure_case(name, variant_net, x, bias, args):
                rows.append({"network": name, "variant": variant, "inputs": what,
                             "weight_density": round(density(variant_net), 4), **row})
    plot(rows, Path(args.out).with_suffix(".png"))
    end_load = os.getloadavg()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": {k: v for k, v in vars(args).items()}, "load_start": load,
                               "load_end": end_load, "rows": rows}, indent=2) + "\n")
    print(f"load average at end {end_load[0]:.1f} {end_load[1]:.1f} {end_load[2]:.1f}; wrote {out}")


if __name__ == "__main__":
    main()
