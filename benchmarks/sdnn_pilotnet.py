"""PilotNet SDNN (lava-dl's netx files): imported, magnitude-pruned without data, estimated and run on Lava.

    python benchmarks/sdnn_pilotnet.py [--sparsity 0.5 0.75 0.9] [--structured 0.5] [--raise 8 32] [--quick]
                                       [--out FILE.json]

Each file is imported (netx -> IR -> lava-dl sigma-delta blocks), pruned by global magnitude on snndeploy's mask
engine (one shot: no data, no fine-tuning) to each ``--sparsity`` of its weights (zeros already in the file count)
and to each ``--structured`` sparsity of its channels (the ``magnitude`` method's channel score; the channels are
cut out), exported to netx and read back (the file a user would deploy), and estimated on Loihi 2. The gts file
(the one with lava-dl's golden input) is also run on Lava (fixed_pt, the input frame replayed for 9 steps, as
lava-dl's test does), before and after pruning, and every layer's graded outputs at every step are compared with
the bit-exact torch reference (:mod:`snndeploy.export.sdnn_ref`); the estimate then uses that run's measured graded
activity. ``--raise`` adds that many units of vThMant to every delta threshold of the gts network (encoder and
hidden layers) to show what the delta threshold does to messages, cost and the read-out. ``--quick`` skips the
tutorial's full PilotNet. Prints a table and writes ``--out`` (default ``benchmarks/results/sdnn_pilotnet.json``).
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
import torch

import snndeploy  # noqa: F401  (Lava compatibility hook first)
from snndeploy.export.ir import W_SCALE
from snndeploy.export.netx_io import read_netx, write_netx
from snndeploy.export.sdnn_ref import sd_reference
from snndeploy.export.slayer_io import from_slayer, to_slayer
from snndeploy.hardware.activity import activity_from_spikes
from snndeploy.hardware.estimate import estimate_target
from snndeploy.hardware.layers import layers_from_ir
from snndeploy.hardware.profile import load_profile
from snndeploy.prune import scores
from snndeploy.prune.config import MagnitudeConfig
from snndeploy.prune.engine import PruningEngine
from snndeploy.prune.methods import prune_channels
from snndeploy.prune.shrink import shrink
from snndeploy.simulate_sd import load_sd_input, replay_steps, simulate_sd

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "pilotnet_sdnn"
RESULTS = ROOT / "benchmarks" / "results"
FILES = {"gts": DATA / "network.net", "tutorial": DATA / "tutorial_network.net"}


def prune_magnitude(net, sparsity: float, structured: bool = False):
    """The IR of ``net`` after one-shot global magnitude pruning of its lava-dl model to ``sparsity`` of its weights
    (``structured``: of its channels, scored as the ``magnitude`` method does, then cut out), written to netx and
    read back (what a user deploys)."""
    model = to_slayer(net)
    engine = PruningEngine(model, structured=structured)
    if structured:
        prune_channels(engine, MagnitudeConfig(), sparsity, scores.channel_scale(engine))
        keep = {layer.info.index: torch.nonzero(layer.mask.channel_mask).view(-1) for layer in engine.layers}
        achieved = engine.channel_sparsity()
    else:
        engine.prune_weights(sparsity, scores.weight_magnitude(engine))
        achieved = engine.weight_sparsity()
    engine.finalize()
    if structured:
        shrink(model, engine.graph, keep)
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
    weights = [np.asarray(layer.weight) for layer in net.layers if layer.op != "input"]
    row["weight_sparsity"] = round(sum(int((w == 0).sum()) for w in weights) / sum(w.size for w in weights), 4)
    layers = layers_from_ir(net)
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
    parser.add_argument("--sparsity", type=float, nargs="*", default=[0.5, 0.75, 0.9],
                        help="weight sparsities to prune to (zeros already in the file count)")
    parser.add_argument("--structured", type=float, nargs="*", default=[0.5],
                        help="channel sparsities to prune to (whole channels cut out)")
    parser.add_argument("--out", type=Path, default=RESULTS / "sdnn_pilotnet.json")
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
        for sparsity in args.sparsity:
            pruned, achieved = prune_magnitude(net, sparsity)
            rows.append({**run_and_estimate(name, pruned, steps), "pruned": round(achieved, 4), "raise": 0})
        for sparsity in args.structured:
            pruned, achieved = prune_magnitude(net, sparsity, structured=True)
            rows.append({**run_and_estimate(name, pruned, steps), "pruned": round(achieved, 4), "raise": 0,
                         "structured": True, "channels": [layer.out_shape[0] for layer in pruned.layers]})
        for units in args.raises if name == "gts" else ():
            rows.append({**run_and_estimate(name, raise_thresholds(net, units), steps), "pruned": 0.0,
                         "raise": units})
    print(f"{'network':<10} {'pruned to':>9} {'zeros':>6} {'+vth':>5} {'nonzero syn':>12} {'cores':>6}  per layer"
          f"{'':<30} {'messages':>9} {'|out-golden|':>13} {'|Lava-torch|':>13}")
    for r in rows:
        label = r["network"] + (" (ch)" if r.get("structured") else "")
        print(f"{label:<10} {r['pruned']:>9.3f} {r['weight_sparsity']:>6.3f} {r['raise']:>5} "
              f"{r['synapses_nonzero']:>12} {r['cores']:>6}  "
              f"{str(r['cores_per_layer']):<39} {r.get('messages', float('nan')):>9.0f} "
              f"{r.get('output_abs_diff_to_golden', float('nan')):>13.0f} "
              f"{r.get('lava_vs_torch_abs_diff', float('nan')):>13.0f}")
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python", "benchmarks/sdnn_pilotnet.py", *(argv or sys.argv[1:])])
    out.write_text(json.dumps({"command": command, "sparsity": args.sparsity, "structured": args.structured,
                               "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
