"""Simulation speed on Lava's CPU backend (``snndeploy simulate``, fixed_pt): steps/s of the fixture networks,
dense and magnitude-pruned, with the fixed cost of starting and stopping a run reported separately.

    .venv/bin/python benchmarks/simulate_speed.py [--repeats 2] [--sparsity 0.9] [--out results/x.json]

Per network and variant it runs ``simulate_net`` over the same inputs and reports the best of ``--repeats``
runs (the machine is shared): steps/s while stepping (``run_s``), the fixed overhead (building the processes,
compile + start = the first step, stop), reading results back, and the wall time. Pruning zeroes the
smallest-magnitude ``--sparsity`` of each dense/conv layer's non-zero weights (Loihi integer weights stay on
their grid); dense layers below 30 % density become Lava ``Sparse`` processes. Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

import snndeploy  # noqa: F401  (Lava compatibility hook first)
from snndeploy.export.ir import LoihiNet
from snndeploy.settings import fixtures_dir


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


def cases(root: Path) -> dict[str, tuple[LoihiNet, np.ndarray, str]]:
    """name -> (network, inputs (N, *shape, T), what the inputs are)."""
    from snndeploy.loader import load_net
    from snndeploy.sim.inputs import dataset_inputs

    oxford = load_net(root / "oxford" / "network.net")
    mlp128 = load_net(root / "mnist-mlp-128" / "network.net")
    mlp512 = load_net(root / "mnist-mlp-512" / "network.net")
    tiny = load_net(root / "tinynet" / "tiny.net")
    rng = np.random.default_rng(0)
    return {
        "oxford": (oxford, np.load(root / "dense-cuba" / "in.npy")[None, :, :1000].astype(np.uint8),
                   "lava-dl dense-cuba/in.npy, 1 x 1000 steps"),
        "mnist-mlp-128": (mlp128, dataset_inputs("mnist", mlp128.input_shape, samples=40, steps=25).spikes,
                          "40 MNIST test digits x 25 steps"),
        "mnist-mlp-512": (mlp512, dataset_inputs("mnist", mlp512.input_shape, samples=10, steps=16).spikes,
                          "10 MNIST test digits x 16 steps (voltage read-out probed every step)"),
        "tinynet": (tiny, (rng.random((10, *tiny.input_shape, 16)) < 0.2).astype(np.uint8),
                    "10 x 16 steps of random spikes (rate 0.2)"),
    }


def measure(net: LoihiNet, x: np.ndarray, repeats: int) -> dict:
    from snndeploy.sim.runner import simulate_net

    best: dict | None = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = simulate_net(net, x)
        wall = time.perf_counter() - start
        row = {**result.timing.to_dict(), "wall_s": wall, "output_spikes": int(result.output.sum()),
               "spikes": int(sum(a.spikes for a in result.activity.layers))}
        if best is None or row["steps_per_s"] > best["steps_per_s"]:
            best = row
    return best


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["network"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for offset, variant in ((-0.2, "dense"), (0.2, "pruned")):
        sel = {r["network"]: r for r in rows if r["variant"] == variant}
        xs = [i + offset for i, n in enumerate(names) if n in sel]
        axes[0].bar(xs, [sel[n]["steps_per_s"] for n in names if n in sel], width=0.4, label=variant)
        axes[1].bar(xs, [sel[n]["overhead_s"] for n in names if n in sel], width=0.4, label=variant)
    for ax, title in zip(axes, ("steps/s while running", "fixed overhead per run (s)"), strict=True):
        ax.set_xticks(range(len(names)), names, rotation=15)
        ax.set_title(title)
        ax.legend()
    fig.suptitle("snndeploy simulate on Lava CPU (fixed_pt)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    from snndeploy.export.lava_net import import_lava

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "simulate_speed.json"))
    args = parser.parse_args()
    import_lava()
    rows = []
    for name, (net, x, what) in cases(fixtures_dir() / "lava-dl").items():
        for variant in ("dense", "pruned"):
            variant_net = net if variant == "dense" else magnitude_prune(net, args.sparsity)
            row = {"network": name, "variant": variant, "inputs": what, "samples": int(x.shape[0]),
                   "steps_per_sample": int(x.shape[-1]), "neurons": sum(lay.size for lay in net.layers),
                   "weight_density": round(density(variant_net), 4),
                   **measure(variant_net, x, args.repeats)}
            rows.append(row)
            print(f"{name:<14} {variant:<6} density {row['weight_density']:.3f}  {row['steps_per_s']:7.1f} steps/s  "
                  f"overhead {row['overhead_s']:5.2f} s (build {row['build_s']:.2f}, start {row['start_s']:.2f}, "
                  f"stop {row['stop_s']:.2f})  read {row['read_s']:.2f} s  wall {row['wall_s']:.1f} s", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"sparsity": args.sparsity, "repeats": args.repeats, "rows": rows}, indent=2) + "\n")
    plot(rows, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
