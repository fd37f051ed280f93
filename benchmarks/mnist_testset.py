"""A whole test set through Lava fixed_pt, against the torch model on the same spikes (issue 21's goal).

    .venv/bin/python benchmarks/mnist_testset.py [--model ../shared/fixtures/lava-dl/mnist-mlp-512/network.net]
        [--samples all] [--steps 16] [--workers 2] [--out benchmarks/results/mnist_testset.json]

Encodes the MNIST test digits as ``snndeploy simulate --dataset mnist`` does (seed 0), runs them through
``simulate_net`` (the default build-sharing rule, ``--workers`` Lava runtimes), and then through the torch model of
the same file (``load_model``, batches of 500) with the same prediction rule (most output spikes; a voltage
read-out: highest summed voltage). Reports wall time (encoding apart), samples/s, both accuracies, how many
predictions differ and whether every output spike and read-out voltage is equal; records the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

import snndeploy  # noqa: F401  (Lava compatibility hook first)
from snndeploy.settings import fixtures_dir


def torch_predictions(model, spikes: np.ndarray, net) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, output values in Lava's alignment) of the torch model, 500 samples at a time."""
    from snndeploy.export.verify import S_SCALE, torch_reference_batch

    readout = not net.layers[-1].neuron.spiking
    preds, outs = [], []
    for start in range(0, len(spikes), 500):
        spk, _, _ = torch_reference_batch(model, spikes[start:start + 500])
        last = spk[-1]
        out = last[..., :spikes.shape[-1]] * S_SCALE if readout else last[..., 1:]
        outs.append(out)
        preds.append(out.reshape(out.shape[0], out.shape[1], -1).sum(axis=-1).argmax(axis=1))
    return np.concatenate(preds), np.concatenate(outs)


def main() -> None:
    from snndeploy.cli_support import ALL_SAMPLES
    from snndeploy.export.lava_net import import_lava
    from snndeploy.lava_workers import default_workers
    from snndeploy.loader import load_model, load_net
    from snndeploy.sim_inputs import dataset_inputs
    from snndeploy.simulate import simulate_net

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(fixtures_dir() / "lava-dl" / "mnist-mlp-512" / "network.net"))
    parser.add_argument("--samples", default="all")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "mnist_testset.json"))
    args = parser.parse_args()
    import_lava()
    torch.set_num_threads(1)
    load_start = os.getloadavg()
    net = load_net(args.model)
    samples = ALL_SAMPLES if args.samples == "all" else int(args.samples)
    t0 = time.perf_counter()
    inputs = dataset_inputs("mnist", net.input_shape, samples=samples, steps=args.steps)
    encode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = simulate_net(net, inputs.spikes, workers=args.workers, progress=True)
    lava_s = time.perf_counter() - t0
    load_end = os.getloadavg()
    lava_pred = result.predictions()
    t0 = time.perf_counter()
    torch_pred, torch_out = torch_predictions(load_model(args.model).eval(), inputs.spikes, net)
    torch_s = time.perf_counter() - t0
    out_layer = len(net.layers) - 1
    lava_out = result.probes[out_layer]["v"] if "v" in result.probes.get(out_layer, {}) else result.output
    row = {
        "model": args.model, "samples": result.samples, "steps": args.steps, "workers": args.workers,
        "plan": result.plan.describe(), "copies": result.plan.copies, "builds": result.timing.chunks,
        "encode_s": encode_s, "lava_wall_s": lava_s, "samples_per_s": result.samples / lava_s,
        "lava_accuracy": float(np.mean(lava_pred == inputs.labels)),
        "torch_accuracy": float(np.mean(torch_pred == inputs.labels)), "torch_s": torch_s,
        "predictions_differ": int(np.sum(lava_pred != torch_pred)),
        "outputs_equal": bool(np.array_equal(lava_out.astype(np.float64), torch_out.astype(np.float64))),
        "load_start": load_start, "load_end": load_end, "cores": os.cpu_count(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(row, indent=2) + "\n")
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
