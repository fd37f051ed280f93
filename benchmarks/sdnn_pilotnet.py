"""PilotNet SDNN (lava-dl's netx files): imported, magnitude-pruned without data, estimated and run on Lava.

    python benchmarks/sdnn_pilotnet.py [--sparsity 0.5] [--raise 0 8 32] [--quick]

Each file is imported (netx -> IR -> lava-dl sigma-delta blocks), pruned by global weight magnitude to
``--sparsity`` on snndeploy's mask engine (one shot: no data, no fine-tuning), exported to netx and read back (the
file a user would deploy), and estimated on Loihi 2. The gts file (the one with lava-dl's golden input) is also run
on Lava (fixed_pt, the input frame replayed for 9 steps, as lava-dl's test does), before and after pruning, and
every layer's graded outputs at every step are compared with the bit-exact torch reference
(:mod:`snndeploy.export.sdnn_ref`); the estimate then uses that run's measured graded activity.
``--raise`` adds that many units of vThMant to every delta threshold of the gts network
(encoder and hidden layers) to show what the delta threshold does to messages, cost and the read-out.
``--quick`` skips the tutorial's full PilotNet. Prints a table and writes ``benchmarks/results/sdnn_pilotnet.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

import snndeploy  # noqa: F401  (Lava compatibility hook first)
from snndeploy.export.ir import W_SCALE
from snndeploy.export.netx_io import read_netx, write_netx
from snndeploy.export.nir_io import to_nir
from snndeploy.export.sdnn_ref import sd_reference
from snndeploy.export.slayer_io import from_slayer, to_slayer
from snndeploy.hardware.activity import activity_from_spikes
from snndeploy.hardware.estimate import estimate_target
from snndeploy.hardware.layers import layers_from_nir
from snndeploy.hardware.profile import load_profile
from snndeploy.prune import scores
from snndeploy.prune.engine import PruningEngine
from snndeploy.simulate_sd import load_sd_input, replay_steps, simulate_sd

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "pilotnet_sdnn"
RESULTS = ROOT / "benchmarks" / "results"
FILES = {"gts": DATA / "network.net", "tutorial": DATA / "tutorial_network.net"}


def prune_magnitude(net, sparsity: float):
    """The IR of ``net`` after one-shot global magnitude pruning of its lava-dl model to ``sparsity``, written to
    netx and read back (what a user deploys)."""
    model = to_slayer(net)
    engine = PruningEngine(model)
    engine.prune_weights(sparsity, scores.weight_magnitude(engine))
    achieved = engine.weight_sparsity()
    engine.finalize()
    with tempfile.TemporaryDirectory() as tmp:
        path = write_netx(from_slayer(model), Path(tmp) / "pruned.net")
        return read_netx(path), achieved


def raise_thresholds(net, units: int):
    """Every delta threshold (not the sigma read-out's) raised by ``units`` / 64."""
    return net.with_layers([replace(layer, neuron=replace(layer.neuron, threshold=layer.neuron.threshold
                                                          + units / W_SCALE))
                            if not layer.neuron.sigma_output else layer for layer in net.layers])


def run_and_estimate(name: str, net, steps: int | None) -> dict:
    """Lava run (gts: the golden input, when ``steps``) and Loihi 2 estimate of one network."""
    row: dict = {"network": name}
    activity = None
    if steps:
        inputs = replay_steps(load_sd_input(DATA / "input.npy", net.input_shape), steps)
        t = time.perf_counter()
        result = simulate_sd(net, inputs.spikes)
        row["lava_s"] = round(time.perf_counter() - t, 1)
        golden = np.load(DATA / "output.npy")
        row["output"] = result.output[0].reshape(-1).tolist()
        row["output_abs_diff_to_golden"] = float(np.abs(result.output[0] - golden).sum())
        reference, _ = sd_reference(net, inputs.spikes[0])
        row["lava_vs_torch_abs_diff"] = float(sum(np.abs(result.layer_spikes[i][0] - ref).sum()
                                                  for i, ref in enumerate(reference)))
        activity = activity_from_spikes(inputs.spikes, [result.layer_spikes[i] for i in range(len(net.layers))])
        row["messages"] = sum(layer.spikes for layer in activity.layers)
    layers = layers_from_nir(to_nir(net))
    est = estimate_target(layers, load_profile("loihi2"), activity=activity)
    row["cores"] = est.cores
    row["cores_per_layer"] = [p.cores for p in est.placements]
    row["synapses_nonzero"] = int(sum(layer.synapses_nonzero for layer in layers))
    if activity is not None:
        row["energy_uj"] = est.energy.get("energy_uj")
        row["latency_ms"] = est.energy.get("latency_ms")
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--raise", dest="raises", type=int, nargs="*", default=[8, 32],
                        help="extra vThMant units on every delta threshold of the gts network")
    parser.add_argument("--quick", action="store_true", help="the gts file only")
    args = parser.parse_args(argv)
    rows = []
    for name, path in FILES.items():
        if args.quick and name != "gts":
            continue
        net = read_netx(path)
        steps = len(net.layers) if name == "gts" else None
        rows.append({**run_and_estimate(name, net, steps), "pruned": 0.0, "raise": 0})
        pruned, achieved = prune_magnitude(net, args.sparsity)
        rows.append({**run_and_estimate(name, pruned, steps), "pruned": round(achieved, 4), "raise": 0})
        for units in args.raises if name == "gts" else ():
            rows.append({**run_and_estimate(name, raise_thresholds(net, units), steps), "pruned": 0.0,
                         "raise": units})
    print(f"{'network':<10} {'sparsity':>8} {'+vth':>5} {'nonzero syn':>12} {'cores':>6}  per layer"
          f"{'':<30} {'messages':>9} {'|out-golden|':>13} {'|Lava-torch|':>13}")
    for r in rows:
        print(f"{r['network']:<10} {r['pruned']:>8.3f} {r['raise']:>5} {r['synapses_nonzero']:>12} {r['cores']:>6}  "
              f"{str(r['cores_per_layer']):<39} {r.get('messages', float('nan')):>9.0f} "
              f"{r.get('output_abs_diff_to_golden', float('nan')):>13.0f} "
              f"{r.get('lava_vs_torch_abs_diff', float('nan')):>13.0f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "sdnn_pilotnet.json"
    out.write_text(json.dumps({"command": " ".join(["python", "benchmarks/sdnn_pilotnet.py", *(argv or sys.argv[1:])]),
                               "sparsity": args.sparsity, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
