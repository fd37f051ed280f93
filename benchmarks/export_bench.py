"""Export benchmark: export time per format, and Lava CPU steps/s of snndeploy's converted network against lava-dl
netx's network for the same netx file (dense and magnitude-pruned), both fixed_pt.

    .venv/bin/python benchmarks/export_bench.py [--steps 300] [--out benchmarks/results/export.json]

Prints a table and writes JSON. Not part of CI (timings depend on the machine's load).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

import snndeploy  # noqa: F401  (Lava compatibility hook first)
from snndeploy.settings import fixtures_dir

NETS = {"oxford": "oxford/network.net", "mnist-mlp-128": "mnist-mlp-128/network.net",
        "mnist-mlp-512": "mnist-mlp-512/network.net", "tinynet": "tinynet/tiny.net"}
WARMUP = 5


def _timed_run(proc, steps: int, cfg) -> float:
    """Steady steps/s: a short warm-up run (compile and start), then ``steps`` timed steps."""
    from snndeploy import lava_runner

    with lava_runner.lava_session(proc):
        lava_runner.run_steps(proc, WARMUP, cfg, stop_after=False)
        start = time.perf_counter()
        lava_runner.run_steps(proc, steps, cfg, stop_after=False)
        return steps / (time.perf_counter() - start)


def ours_steps_per_s(net, x: np.ndarray, bias: np.ndarray | None, sparse_below: float) -> tuple[float, list[str]]:
    from snndeploy.export.lava_net import build_lava

    lava = build_lava(net, x, sparse_below=sparse_below, record="output")  # one sink, like the netx setup
    if bias is not None:
        lava.layers[0].neuron.bias_mant.init = bias
    return _timed_run(lava.layers[0].neuron, x.shape[-1] - WARMUP, lava.run_config()), \
        [layer.synapse_kind for layer in lava.layers]


def netx_steps_per_s(path: Path, x: np.ndarray, sparse: bool, bias: np.ndarray | None) -> float:
    from lava.lib.dl import netx
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc import io

    net = netx.hdf5.Network(net_config=str(path), sparse_fc_layer=sparse)
    if bias is not None:  # an input layer with neurons is driven by its bias
        net.in_layer.neuron.bias_mant.init = bias
    else:
        source = io.source.RingBuffer(data=x)
        source.s_out.connect(net.inp)
    sink = io.sink.RingBuffer(shape=net.out.shape, buffer=x.shape[-1])
    net.out.connect(sink.a_in)
    return _timed_run(net, x.shape[-1] - WARMUP, Loihi2SimCfg(select_tag="fixed_pt"))


def measure(net, x, xl, bias, path: Path, pruned: bool, repeats: int) -> dict[str, float]:
    """Best steps/s of each runner, interleaved over ``repeats`` rounds (the machine is shared with other jobs)."""
    from snndeploy.export.lava_net import DEFAULT_SPARSE_BELOW

    runs = {"ours": lambda: ours_steps_per_s(net, x, bias, DEFAULT_SPARSE_BELOW)[0],
            "netx": lambda: netx_steps_per_s(path, xl, False, bias)}
    if pruned:
        runs["ours_dense"] = lambda: ours_steps_per_s(net, x, bias, 0.0)[0]
        runs["netx_sparse"] = lambda: netx_steps_per_s(path, xl, True, bias)
    best: dict[str, float] = {}
    for _ in range(repeats):
        for key, fn in runs.items():
            best[key] = max(best.get(key, 0.0), fn())
    return best


def export_times(net, folder: Path) -> dict[str, float]:
    from snndeploy.export.netx_io import write_netx
    from snndeploy.export.nir_io import write_nir
    from snndeploy.export.onnx_export import export_onnx

    times = {}
    for fmt, fn in (("nir", write_nir), ("netx", write_netx), ("onnx", export_onnx)):
        start = time.perf_counter()
        fn(net, folder / f"m.{fmt}", force=True)
        times[fmt] = time.perf_counter() - start
    return times


def prune(model, sparsity: float):
    from snndeploy.prune.engine import PruningEngine
    from snndeploy.prune.scores import weight_magnitude

    engine = PruningEngine(model)
    engine.prune_weights(sparsity, weight_magnitude(engine), scope="layer")
    engine.finalize()
    return model


def main() -> None:
    import torch

    from snndeploy.export.lava_net import DEFAULT_SPARSE_BELOW, import_lava
    from snndeploy.export.netx_io import write_netx
    from snndeploy.export.slayer_io import from_slayer
    from snndeploy.models.netx_import import import_netx

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", default="benchmarks/results/export.json")
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs (the machine is shared)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import_lava()
    root = fixtures_dir() / "lava-dl"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, rel in NETS.items():
            for variant in ("dense", "pruned"):
                if variant == "pruned" and name in ("tinynet", "oxford"):
                    continue
                start = time.perf_counter()
                model = import_netx(root / rel)
                if variant == "pruned":
                    model = prune(model, args.sparsity)
                net = from_slayer(model)
                convert_s = time.perf_counter() - start
                times = export_times(net, folder)
                rng = np.random.default_rng(0)
                x = (rng.random((*net.input_shape, args.steps)) < 0.1).astype(np.int64)
                bias = None
                if net.layers[0].op == "input":
                    x = np.zeros_like(x)
                    bias = rng.integers(0, 40, size=net.input_shape[::-1])
                path = write_netx(net, folder / f"{name}-{variant}.net", force=True)
                xl = x.transpose(2, 1, 0, 3) if x.ndim == 4 else x
                best = measure(net, x, xl, bias, path, variant == "pruned", args.repeats)
                kinds = ours_steps_per_s(net, x[..., :WARMUP + 1], bias, DEFAULT_SPARSE_BELOW)[1]
                ours, netx_dense = best["ours"], best["netx"]
                ours_dense, netx_sparse = best.get("ours_dense"), best.get("netx_sparse")
                row = {"net": name, "variant": variant, "slayer_to_ir_s": convert_s,
                       **{f"write_{k}_s": v for k, v in times.items()}, "ours_steps_per_s": ours,
                       "ours_synapses": kinds, "ours_all_dense_steps_per_s": ours_dense,
                       "netx_steps_per_s": netx_dense, "netx_sparse_steps_per_s": netx_sparse,
                       "neurons": int(sum(layer.size for layer in net.layers)),
                       "nonzero_weights": int(sum(np.count_nonzero(layer.weight) for layer in net.layers))}
                rows.append(row)
                print(f"{name:<14} {variant:<6} neurons {row['neurons']:>6} nnz {row['nonzero_weights']:>7}  "
                      f"nir {times['nir']:.3f}s netx {times['netx']:.3f}s onnx {times['onnx']:.3f}s  "
                      f"ours {ours:7.0f} steps/s {'/'.join(sorted(set(kinds)))}  netx {netx_dense:7.0f}"
                      + (f"  netx-sparse {netx_sparse:7.0f}  ours-all-Dense {ours_dense:7.0f}" if netx_sparse else ""),
                      flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"steps": args.steps, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
