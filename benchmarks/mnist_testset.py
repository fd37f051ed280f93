"""A whole test set through Lava fixed_pt, against the torch model on the same digits (issue 21's goal).

    nice -n 15 .venv/bin/python benchmarks/mnist_testset.py [--samples all]
        [--model ../shared/fixtures/lava-dl/mnist-mlp-512/network.net] [--steps 16] [--workers 2]
        [--part 1000] [--out benchmarks/results/mnist_testset.json]

Feeds the MNIST test digits as ``snndeploy simulate --dataset mnist`` does (the model's recorded input pipeline:
for lava-dl's bootstrap network each digit, normalised, is a current = the input layer's bias; else rate spikes,
seed 0), runs them through ``simulate_net`` (the default build-sharing rule, ``--workers`` Lava runtimes) in parts
of ``--part`` digits, and then through the torch model of the same file on the same inputs. Resumable: every
finished part is kept under ``benchmarks/results/runs/mnist_testset/`` (its Lava wall time with it), and a rerun
with the same arguments only runs the missing parts; a progress bar shows digits/s and the ETA.

Reports Lava wall time (summed over the parts; encoding and torch apart), digits/s, both accuracies, how many
predictions differ, and how many digits agree spike for spike in every spiking layer; peak memory (PSS of this
process and its Lava processes) and the load average, since the machine is shared.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

import snndeploy  # noqa: F401  (Lava compatibility hook first)
from snndeploy.settings import fixtures_dir

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from simulate_speed import PeakRss  # noqa: E402

RUNS = HERE / "results" / "runs" / "mnist_testset"


def torch_outputs(model, net, x: np.ndarray, values: np.ndarray | None) -> list[np.ndarray]:
    """Per exported neuron layer, the torch model's outputs in Lava's alignment ``(N, ..., T)``: rate spikes through
    ``torch_reference_batch``; a current (``values``, the normalised digits) replicated over the steps, as
    ``snndeploy evaluate`` feeds it. Spikes: Lava's step t is torch's t + 1; a read-out's voltage: torch's first
    ``T`` steps (export verification's alignment; in Lava's voltage units for rate spikes)."""
    from snndeploy.export.verify import S_SCALE, torch_reference_batch

    steps = x.shape[-1]
    if values is None:
        spk, _, _ = torch_reference_batch(model, x)
        return [s[..., 1:] if layer.neuron.spiking else s[..., :steps] * S_SCALE for s, layer in zip(spk, net.layers,
                                                                                                    strict=True)]
    with torch.no_grad():
        inp = torch.as_tensor(values, dtype=torch.float32)[..., None].expand(*values.shape, steps + 1)
        _, outs = model(inp.contiguous(), return_all=True)
    return [o[..., 1:].numpy() if layer.neuron.spiking else o[..., :steps].numpy()
            for o, layer in zip(outs, net.layers, strict=True)]


def torch_predictions(model, net, inputs, values, start: int, stop: int) -> np.ndarray:
    """The torch model's classes for digits ``start:stop`` by the rule ``SimResult.predictions`` applies to Lava's
    output (most output spikes; a read-out: highest summed voltage), over the same steps."""
    x = inputs.spikes[start:stop]
    out = torch_outputs(model, net, x, None if values is None else values[start:stop])[-1]
    return out.reshape(stop - start, -1, x.shape[-1]).sum(-1).argmax(1)


def run_part(net, model, inputs, values, start: int, stop: int, workers: int, advance) -> dict:
    from snndeploy.simulate import simulate_net

    spiking = tuple(i for i, layer in enumerate(net.layers) if layer.neuron.spiking)
    x = inputs.spikes[start:stop]
    bias = None if inputs.bias is None else inputs.bias[start:stop]
    t0 = time.perf_counter()
    result = simulate_net(net, x, workers=workers, record=spiking, input_bias=bias, on_sample=advance)
    wall = time.perf_counter() - t0
    ref = torch_outputs(model, net, x, None if values is None else values[start:stop])
    exact = np.ones(stop - start, dtype=bool)
    for i in spiking:
        exact &= np.all((result.layer_spikes[i] == ref[i]).reshape(stop - start, -1), axis=1)
    return {"lava_pred": result.predictions(), "exact": exact,
            "lava_wall_s": wall, "builds": result.timing.chunks, "copies": result.plan.copies,
            "per_copy": result.plan.per_copy, "plan": result.plan.describe()}


def main() -> None:
    from tqdm import tqdm

    from snndeploy.cli_support import ALL_SAMPLES
    from snndeploy.export.lava_net import import_lava
    from snndeploy.lava_workers import default_workers
    from snndeploy.loader import load_model, load_net
    from snndeploy.sim_inputs import dataset_inputs
    from snndeploy.simulate import RunPlan

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(fixtures_dir() / "lava-dl" / "mnist-mlp-512" / "network.net"))
    parser.add_argument("--samples", default="all")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--part", type=int, default=1000, help="digits per resumable part")
    parser.add_argument("--out", default=str(HERE / "results" / "mnist_testset.json"))
    args = parser.parse_args()
    import_lava()
    torch.set_num_threads(1)
    load_start = os.getloadavg()
    net = load_net(args.model)
    model = load_model(args.model).eval()
    samples = ALL_SAMPLES if args.samples == "all" else int(args.samples)
    t0 = time.perf_counter()
    inputs = dataset_inputs("mnist", net.input_shape, samples=samples, steps=args.steps, net=net)
    values = None if inputs.bias is None else current_values(net, len(inputs.labels))
    encode_s = time.perf_counter() - t0
    total = len(inputs.labels)
    neurons = repr(tuple(layer.neuron for layer in net.layers))  # parts of another reading of the file are stale
    key = hashlib.blake2b(f"{Path(args.model).resolve()}|{args.steps}|{args.part}|{neurons}".encode(),
                          digest_size=6).hexdigest()
    folder = RUNS / key
    folder.mkdir(parents=True, exist_ok=True)
    starts = list(range(0, total, args.part))
    done = {s for s in starts if (folder / f"part_{s:05d}.npz").exists()}
    bar = tqdm(total=total, initial=sum(min(args.part, total - s) for s in done), unit="digit", smoothing=0.05,
               desc="Lava fixed_pt")
    with PeakRss() as rss:
        for start in starts:
            if start in done:
                continue
            stop = min(start + args.part, total)
            base = bar.n
            part = run_part(net, model, inputs, values, start, stop, args.workers,
                            lambda n, base=base: bar.update(base + n - bar.n))
            bar.update(base + stop - start - bar.n)
            tmp = folder / f"part_{start:05d}.tmp.npz"
            np.savez(tmp, **{k: np.asarray(v) for k, v in part.items()})
            tmp.rename(folder / f"part_{start:05d}.npz")
    bar.close()
    parts = [np.load(folder / f"part_{s:05d}.npz") for s in starts]
    lava_pred = np.concatenate([p["lava_pred"] for p in parts])
    torch_pred = np.concatenate([torch_predictions(model, net, inputs, values, s, min(s + 500, total))
                                 for s in range(0, total, 500)])
    exact = np.concatenate([p["exact"] for p in parts])
    lava_s = float(sum(p["lava_wall_s"] for p in parts))
    labels = inputs.labels
    row = {
        "model": args.model, "samples": total, "steps": args.steps, "workers": args.workers, "part": args.part,
        "feed": inputs.source, "copies": int(parts[0]["copies"]),
        "plan": RunPlan(int(parts[0]["copies"]), int(parts[0]["per_copy"]), "").describe(),
        "per_copy": int(parts[0]["per_copy"]), "builds": int(sum(p["builds"] for p in parts)),
        "encode_s": encode_s, "lava_wall_s": lava_s, "samples_per_s": total / lava_s,
        "lava_accuracy": float(np.mean(lava_pred == labels)), "torch_accuracy": float(np.mean(torch_pred == labels)),
        "predictions_differ": int(np.sum(lava_pred != torch_pred)), "digits_spike_exact": int(exact.sum()),
        "peak_pss_mb_this_session": rss.peak / 2**20, "parts_resumed": len(done),
        "load_start": load_start, "load_end": os.getloadavg(), "cores": os.cpu_count(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(row, indent=2) + "\n")
    print(json.dumps(row, indent=2))


def current_values(net, count: int) -> np.ndarray:
    """The normalised digits that ``dataset_inputs`` turned into input currents (what torch is fed)."""
    from snndeploy.data.datasets import feed_for, load_arrays

    _, test, _ = load_arrays("mnist")
    values = np.asarray(test.x[:count], dtype=np.float64).reshape(count, *net.input_shape)
    feed = feed_for(net.meta["io"])
    return values if feed.normalize is None else (values - feed.normalize[0]) / feed.normalize[1]


if __name__ == "__main__":
    main()
