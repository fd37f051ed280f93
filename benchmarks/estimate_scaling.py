"""Benchmark: time of ``snndeploy estimate`` (counting + packing on all shipped targets) from 1e4 to 1e8 synapses.

Three synthetic families, each a 4-layer feed-forward NIR graph of CubaLIF layers with 8-bit integer weights:
``dense`` (numpy float32 matrices, every synapse stored), ``sparse`` (scipy.sparse CSR, 10 % of the slots
non-zero; the synapse count is the non-zero count) and ``conv`` (3x3 convolutions, up to 32 channels; synapses grow
with the image while the weights stay tiny). Building the graph is not timed; ``layers_from_nir`` plus
``estimate`` on every shipped target is (best of ``--repeat`` runs).

    .venv/bin/python benchmarks/estimate_scaling.py [--max 1e8] [--repeat 3]

Prints a table and writes benchmarks/results/estimate_scaling.{json,png}.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import nir
import numpy as np
import scipy.sparse as sp

import snndeploy  # noqa: F401
from snndeploy.hardware.estimate import estimate
from snndeploy.hardware.load import layers_from_nir
from snndeploy.hardware.profile import builtin_names, load_profile

RESULTS = Path(__file__).resolve().parent / "results"
LAYERS = 4


def _lif(shape) -> nir.CubaLIF:
    one = np.ones(shape, dtype=np.float32)
    return nir.CubaLIF(tau_syn=one, tau_mem=one, r=one, v_leak=0 * one, v_threshold=one)


def _graph(input_shape, stages) -> nir.NIRGraph:
    """Input -> stages -> Output with nir's own sequential builder (the stage names are not needed here)."""
    return nir.NIRGraph.from_list(nir.Input({"input": np.array(input_shape)}), *(node for _, node in stages),
                                  type_check=False)


def _weights(rng, shape) -> np.ndarray:
    return (rng.integers(-128, 128, size=shape, dtype=np.int16) / 64).astype(np.float32)  # SLAYER units


def dense_net(synapses: float, rng) -> nir.NIRGraph:
    width = max(2, round(math.sqrt(synapses / LAYERS)))
    stages = []
    for i in range(LAYERS):
        stages += [(f"w{i}", nir.Linear(_weights(rng, (width, width)))), (f"n{i}", _lif(width))]
    return _graph((width,), stages)


def _csr(rng, rows: int, cols: int, per_row: int) -> sp.csr_matrix:
    indices = np.sort(rng.integers(0, cols, size=(rows, per_row), dtype=np.int32), axis=1).ravel()
    data = _weights(rng, rows * per_row)
    data[data == 0] = 1 / 64
    indptr = np.arange(0, rows * per_row + 1, per_row, dtype=np.int64)
    return sp.csr_matrix((data, indices, indptr), shape=(rows, cols))


def sparse_net(synapses: float, rng) -> nir.NIRGraph:
    width = max(10, round(math.sqrt(synapses / LAYERS / 0.1)))  # 10 % of width x width slots non-zero
    per_row = max(1, round(0.1 * width))
    stages = []
    for i in range(LAYERS):
        stages += [(f"w{i}", nir.Linear(_csr(rng, width, width, per_row))), (f"n{i}", _lif(width))]
    return _graph((width,), stages)


def conv_net(synapses: float, rng) -> nir.NIRGraph:
    channels = int(min(32, max(1, math.sqrt(synapses / (LAYERS * 9 * 16)))))  # images of at least 4 x 4
    side = max(2, round(math.sqrt(synapses / LAYERS / (channels * channels * 9))))
    stages = []
    for i in range(LAYERS):
        node = nir.Conv2d(input_shape=None, weight=_weights(rng, (channels, channels, 3, 3)), stride=1, padding=1,
                          dilation=1, groups=1, bias=np.zeros(channels))
        stages += [(f"c{i}", node), (f"n{i}", _lif((channels, side, side)))]
    return _graph((channels, side, side), stages)


FAMILIES = {"dense": dense_net, "sparse": sparse_net, "conv": conv_net}


def time_estimate(graph, profiles, repeat: int) -> tuple[float, dict]:
    best, result = math.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        layers = layers_from_nir(graph)
        result = estimate(layers, profiles)
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max", type=float, default=1e8, help="largest synapse count (default 1e8)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    profiles = [load_profile(name) for name in builtin_names()]
    sizes = [10.0**e for e in range(4, int(round(math.log10(args.max))) + 1)]
    rows = []
    print(f"{'family':8} {'target synapses':>16} {'synapses':>12} {'non-zero':>12} {'seconds':>9} {'ns/synapse':>10}")
    for family, build in FAMILIES.items():
        for size in sizes:
            graph = build(size, np.random.default_rng(0))
            seconds, result = time_estimate(graph, profiles, args.repeat)
            net = result["network"]
            counted = net["synapses_nonzero"] if family == "sparse" else net["synapses"]
            rows.append({"family": family, "target_synapses": size, "synapses": net["synapses"],
                         "synapses_nonzero": net["synapses_nonzero"], "seconds": seconds,
                         "loihi2_cores": result["targets"][builtin_names().index("loihi2")]["cores"]})
            print(f"{family:8} {size:16.0e} {net['synapses']:12d} {net['synapses_nonzero']:12d} {seconds:9.4f} "
                  f"{1e9 * seconds / counted:10.2f}")
            del graph, result
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"targets": builtin_names(), "layers": LAYERS, "repeat": args.repeat, "python": platform.python_version(),
            "machine": platform.machine(), "cpus": __import__("os").cpu_count()}
    (RESULTS / "estimate_scaling.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    _plot(rows)


def _plot(rows) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for family in FAMILIES:
        pts = [r for r in rows if r["family"] == family]
        xs = [r["synapses_nonzero"] if family == "sparse" else r["synapses"] for r in pts]
        ax.loglog(xs, [r["seconds"] for r in pts], "o-", label=family)
    ax.axhline(2.0, color="grey", ls="--", label="2 s target")
    ax.set_xlabel("synapses")
    ax.set_ylabel("estimate time (s), all targets")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(RESULTS / "estimate_scaling.png", dpi=110)


if __name__ == "__main__":
    main()
