"""The NIR paper's snnTorch Braille graphs: snnTorch's own NIR import against snndeploy's import of the same file.

    .venv/bin/python benchmarks/braille_snntorch.py [--samples 8] [--steps 256] [--out FILE.json]

For each graph (``paper/03_rnn/braille_noDelay_*.nir`` of neuromorphs/NIR, in tests/data/nir) and each input set
(Bernoulli spikes at two rates, and structured taxel sweeps like a fingertip sliding over a letter), the output
spikes (and the recurrent layer's spikes) of

* snnTorch: each node converted by snnTorch's own NIR import (``snntorch.import_nir._nir_to_snntorch_module``,
  the recurrent layer through snnTorch's own subgraph detection), run step by step in float32;
* snndeploy torch: the IR's step model (``export.onnx_export.StepNet``, float32, Loihi's 12-bit decays);
* snndeploy Lava floating_pt and, after ``quantize_net`` (what ``snndeploy export --quantize`` does), fixed_pt;

are compared step for step (snndeploy's layer i lags i + 1 steps: one synapse delay per layer). snnTorch 1.0's
``import_from_nir`` itself cannot build recurrent graphs with nirtorch 2.x (``'GraphModule' object has no attribute
'items'`` inside nirtorch), so its node conversions are wired here in the graph's (chain) order.

The subtract graph records no reset mechanism (NIR's CubaLIF has only ``v_reset`` = 0, and snnTorch's export writes
that for every reset mode), so both snnTorch's import and snndeploy run it with reset to zero; the script also runs
snnTorch with the reset by subtraction it was trained with, to show what that silent change costs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import snndeploy  # noqa: F401  (Lava compatibility hook first)

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "tests" / "data" / "nir"
GRAPHS = ("braille_noDelay_bias_zero", "braille_noDelay_noBias_subtract")
DT = 1e-4  # the paper's graphs record no time step; their README and snnTorch's import use 1e-4


def inputs(kind: str, samples: int, steps: int, seed: int = 0) -> np.ndarray:
    """``(samples, 12, steps)`` spikes: ``rate0.05``/``rate0.2`` Bernoulli, or ``sweep``: taxels turning on one
    after another in bursts, as a fingertip sliding over a letter does (random order, burst length and gaps)."""
    rng = np.random.default_rng(seed)
    if kind.startswith("rate"):
        return (rng.random((samples, 12, steps)) < float(kind[4:])).astype(np.float32)
    x = np.zeros((samples, 12, steps), dtype=np.float32)
    for k in range(samples):
        t = 0
        for taxel in rng.permutation(12):
            t += int(rng.integers(2, 12))
            length = int(rng.integers(4, 20))
            x[k, taxel, t:t + length] = rng.random(min(length, max(steps - t, 0))) < 0.8
            if t >= steps:
                break
    return x


def snntorch_chain(graph, reset: str | None = None):
    """The graph's modules as snnTorch's NIR import makes them, in chain order; ``reset`` overrides the neurons'
    reset mechanism (snnTorch's import always sets ``zero``)."""
    import snntorch.import_nir as sni

    graph = sni._replace_rnn_subgraph_with_nirgraph(graph)
    succ = dict(graph.edges)
    order, key = [], succ["input"]
    while key != "output":
        order.append(key)
        key = succ[key]
    modules = [(key, sni._nir_to_snntorch_module(graph.nodes[key], init_hidden=False)) for key in order]
    if reset:
        for _, mod in modules:
            if hasattr(mod, "reset_mechanism"):
                mod.reset_mechanism = reset
    return modules


def run_snntorch(modules, x: np.ndarray, same_step_reset: bool = True) -> list[np.ndarray]:
    """Spikes ``(N, n, T)`` of every neuron module for input ``x`` ``(N, 12, T)`` (states zero at the start).

    ``same_step_reset``: snnTorch 1.0's ``RSynaptic`` ignores ``reset_delay=False`` when states are passed in (its
    forward resets a local copy of the old membrane), so the reset the graphs were trained with ("noDelay": in the
    same step) is applied here after the step; False runs snnTorch 1.0 as it is (the reset lands one step late and
    the next step's input is dropped)."""
    import snntorch as snn
    import torch

    states: dict[str, tuple] = {}
    outs: dict[str, list] = {}
    with torch.no_grad():
        for t in range(x.shape[-1]):
            h = torch.as_tensor(x[..., t])
            for key, mod in modules:
                zero = torch.zeros_like(h)
                if isinstance(mod, snn.RSynaptic):
                    spk, syn, mem = mod(h, *states.get(key, (zero, zero, zero)))
                    if same_step_reset:
                        mem = mem - spk * (mod.threshold if mod.reset_mechanism == "subtract" else mem)
                    states[key] = (spk, syn, mem)
                elif isinstance(mod, snn.Synaptic):
                    spk, syn, mem = mod(h, *states.get(key, (zero, zero)))
                    states[key] = (syn, mem)
                else:
                    h = mod(h)
                    continue
                h = spk
                outs.setdefault(key, []).append(spk.numpy())
    return [np.stack(v, -1) for v in outs.values()]


def _agreement(ref: list[np.ndarray], ours: list[np.ndarray]) -> dict:
    """Step-aligned comparison: ours[i][..., i+1 : i+1+T] against ref[i]."""
    rows = []
    for i, (r, o) in enumerate(zip(ref, ours, strict=True)):
        steps = r.shape[-1]
        o = np.asarray(o)[..., i + 1:i + 1 + steps]
        diff = int(np.sum(o != r))
        rows.append({"ref_spikes": int(r.sum()), "mismatches": diff,
                     "samples_exact": int(np.sum(np.all(o.reshape(len(o), -1) == r.reshape(len(r), -1), 1)))})
    out_ref, out = ref[-1].sum(-1), np.asarray(ours[-1])[..., len(ref):len(ref) + ref[-1].shape[-1]].sum(-1)
    same_class = int(np.sum(out_ref.argmax(-1) == out.argmax(-1)))  # the read-out: most output spikes
    return {"layers": rows, "exact": all(r["mismatches"] == 0 for r in rows), "same_class": same_class,
            "mismatch_rate": sum(r["mismatches"] for r in rows) / max(sum(r["ref_spikes"] for r in rows), 1)}


def ours_torch(net, x: np.ndarray) -> list[np.ndarray]:
    import torch

    from snndeploy.export.onnx_export import StepNet, run_steps_torch

    step = StepNet(net)
    pad = np.concatenate([x, np.zeros((*x.shape[:-1], len(net.layers)), x.dtype)], -1)
    return [o.numpy() for o in run_steps_torch(step, torch.as_tensor(pad, dtype=torch.float32))]


def ours_lava(net, x: np.ndarray, mode: str) -> list[np.ndarray]:
    """Every sample in one Lava build (copies side by side); ``(N, n, T + layers)`` per layer."""
    from snndeploy.export.lava_batch import split_copies
    from snndeploy.export.lava_net import build_lava, run_lava

    pad = np.concatenate([x, np.zeros((*x.shape[:-1], len(net.layers)), x.dtype)], -1)
    run = run_lava(build_lava(net, pad, mode=mode, copies=len(x)))
    return [split_copies(s, len(x)) for s in run.spikes]


def compare(name: str, samples: int, steps: int) -> dict:
    """Every comparison for one graph, per input set."""
    import nir

    from snndeploy.export.nir_io import read_nir
    from snndeploy.export.quantize import quantize_net

    path = DATA / f"{name}.nir"
    net = read_nir(path, dt=DT, reset="zero")
    quantized, report = quantize_net(net)
    chain = snntorch_chain(nir.read(path))
    trained_reset = "subtract" if name.endswith("subtract") else None
    result: dict = {"graph": name, "samples": samples, "steps": steps,
                    "quantize_scale": [r["scale"] for r in report], "inputs": {}}
    for kind in ("rate0.05", "rate0.2", "sweep"):
        x = inputs(kind, samples, steps, seed=len(kind))
        ref = run_snntorch(chain, x)
        row = {"torch": _agreement(ref, ours_torch(net, x)),
               "lava_floating_pt": _agreement(ref, ours_lava(net, x, "floating_pt")),
               "lava_fixed_pt": _agreement(ref, ours_lava(quantized, x, "fixed_pt"))}
        if trained_reset:
            subtract = run_snntorch(snntorch_chain(nir.read(path), reset=trained_reset), x)
            row["snntorch_subtract_vs_zero"] = _agreement(  # both unshifted: pad to _agreement's layer lag
                subtract, [np.pad(r, [(0, 0), (0, 0), (i + 1, 0)]) for i, r in enumerate(ref)])
        result["inputs"][kind] = row
    return result


def summary(result: dict, what: str) -> str:
    """One table cell: per input set, output-layer mismatches / reference spikes and exact samples."""
    parts = []
    for kind, row in result["inputs"].items():
        layers = row[what]["layers"]
        out = layers[-1]
        samples = result["samples"]
        parts.append(f"{kind}: {out['mismatches']}/{out['ref_spikes']} output spikes differ, "
                     f"{out['samples_exact']}/{samples} samples exact, {row[what]['same_class']}/{samples} same "
                     f"class, hidden {layers[0]['mismatches']}/{layers[0]['ref_spikes']}")
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "braille_snntorch.json")
    args = parser.parse_args()
    start = time.perf_counter()
    results = [compare(name, args.samples, args.steps) for name in GRAPHS]
    for result in results:
        for what in ("torch", "lava_floating_pt", "lava_fixed_pt", "snntorch_subtract_vs_zero"):
            if what in next(iter(result["inputs"].values())):
                print(f"{result['graph']} {what}: {summary(result, what)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"samples": args.samples, "steps": args.steps, "results": results,
                                    "seconds": round(time.perf_counter() - start, 1)}, indent=1))


if __name__ == "__main__":
    main()
