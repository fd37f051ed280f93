"""Fine-tuning speed of a pruning run against plain lava-dl SLAYER training of the same network.

Same network (lava-dl's netx MNIST network, or ``--model``), same data (MNIST, rate-encoded), batch size, Adam and
label loss (cross-entropy on spike counts). Three loops, interleaved and repeated, best time of each:

* ``slayer``: the bare lava-dl loop (forward, loss, backward, Adam step), no snndeploy code;
* ``prune``: snndeploy's fine-tuning path (``DatasetTrainer.train_epochs`` through ``snndeploy.train``) with the mask
  engine attached at 90 % sparsity and the engine's after-step hook: the mask and hook overhead (goal <= 10 %);
* ``prune+distill``: the same with the default distillation objective (one more forward of the dense teacher per
  batch: a cost of the objective, reported apart from the overhead).

    .venv/bin/python benchmarks/prune_overhead.py --samples 1000 --repeats 3
Writes benchmarks/results/prune_overhead.json.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import time
from pathlib import Path

import snndeploy  # noqa: F401  (Lava compatibility hook first)
from snndeploy import settings
from snndeploy.prune.distill import count_cross_entropy

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from train_overhead import bare_epoch  # noqa: E402  (the same bare lava-dl loop, with this benchmark's loss)


def prune_epoch(net, trainer, lr: float, seed: int) -> float:
    import torch

    from snndeploy.prune import scores
    from snndeploy.prune.engine import PruningEngine

    engine = PruningEngine(net)
    engine.prune_weights(0.9, scores.weight_magnitude(engine))
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    engine.bind_optimizer(optimizer)
    start = time.perf_counter()
    trainer.train_epochs(net, optimizer, 1, engine.after_step, seed_offset=seed)
    return time.perf_counter() - start


def main() -> None:
    import torch

    from snndeploy.loader import load_model
    from snndeploy.prune import config as cfglib
    from snndeploy.prune.distill import make_objective
    from snndeploy.prune.finetune import DatasetTrainer

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=None, help="default: lava-dl mnist-mlp-128 (fixtures)")
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "prune_overhead.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    path = args.model or settings.fixtures_dir() / "lava-dl" / "mnist-mlp-128" / "network.net"
    base = load_model(path)
    label = cfglib.MagnitudeConfig(objective="label", label_loss="cross_entropy")
    distill = dataclasses.replace(label, objective="distill")
    # subset: training samples after the validation share (a tenth) is taken out
    plain = DatasetTrainer("mnist", base, batch_size=args.batch_size, subset=args.samples, test_subset=10,
                           progress=False, threads=args.threads, objective=make_objective(label, base))
    teach = DatasetTrainer("mnist", base, batch_size=args.batch_size, subset=args.samples, test_subset=10,
                           progress=False, threads=args.threads, objective=make_objective(distill, base))
    samples = len(plain.splits.train)
    times: dict[str, list[float]] = {"slayer": [], "prune": [], "prune+distill": []}
    for r in range(args.repeats):
        times["slayer"].append(bare_epoch(copy.deepcopy(base), plain.splits.train, args.batch_size, 1e-3, r,
                                              loss_fn=count_cross_entropy))
        times["prune"].append(prune_epoch(copy.deepcopy(base), plain, 1e-3, r))
        times["prune+distill"].append(prune_epoch(copy.deepcopy(base), teach, 1e-3, r))
        print(f"repeat {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()), flush=True)
    best = {k: min(v) for k, v in times.items()}
    rows = {k: {"best_s": best[k], "samples_per_s": samples / best[k], "all_s": times[k]} for k in times}
    overhead = best["prune"] / best["slayer"] - 1.0
    result = {"model": str(path), "samples": samples, "batch_size": args.batch_size, "threads": args.threads,
              "repeats": args.repeats, "loops": rows, "mask_hook_overhead": overhead,
              "distill_cost": best["prune+distill"] / best["prune"] - 1.0}
    from snndeploy.atomic import write_json

    write_json(args.out, result)
    print("| loop | samples/s | best (s) |\n|---|---|---|")
    for k, v in rows.items():
        print(f"| {k} | {v['samples_per_s']:.1f} | {v['best_s']:.2f} |")
    print(f"mask + hook overhead {100 * overhead:+.1f} % (goal <= 10 %); distillation adds "
          f"{100 * result['distill_cost']:+.1f} %")


if __name__ == "__main__":
    main()
