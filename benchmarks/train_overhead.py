"""Training speed of snndeploy's loop (Trainer.train_epoch) against a bare SLAYER forward/backward loop.

Same model (examples/mnist_mlp.yaml), same data (MNIST, rate-encoded), same batch size, optimizer and loss.
Runs are interleaved and repeated; the best time of each is compared (the 2 cores are shared).
Usage: .venv/bin/python benchmarks/train_overhead.py [--samples 2000] [--repeats 3]
Writes benchmarks/results/train_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bare_epoch(net, dataset, batch_size: int, lr: float, seed: int, loss_fn=None) -> float:
    """Seconds for one epoch of the bare lava-dl loop (forward, loss, backward, Adam step), no snndeploy code;
    ``loss_fn(output, label)`` defaults to lava-dl's SpikeRate loss."""
    import torch
    from lava.lib.dl import slayer

    if loss_fn is None:
        loss_fn = slayer.loss.SpikeRate(true_rate=0.2, false_rate=0.03, reduction="sum")
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    net.train()
    start = time.perf_counter()
    for x, label in loader:
        output = net(x)
        loss = loss_fn(output, label)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def ours_epoch(net, dataset, batch_size: int, lr: float, seed: int) -> float:
    from snndeploy.train.loop import TrainConfig, Trainer

    trainer = Trainer(net, TrainConfig(epochs=1, batch_size=batch_size, lr=lr, seed=seed), log=None, progress=True)
    start = time.perf_counter()
    trainer.train_epoch(dataset)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    from snndeploy.data.datasets import make_splits
    from snndeploy.models.build import build_model
    from snndeploy.models.spec import load_spec

    torch.set_num_threads(args.threads)
    spec = load_spec(ROOT / "examples" / "mnist_mlp.yaml")
    splits = make_splits("mnist", time_steps=spec.time_steps, input_shape=spec.input_shape, subset=args.samples)
    times: dict[str, list[float]] = {"bare": [], "ours": []}
    for r in range(args.repeats):
        for name, fn in (("bare", bare_epoch), ("ours", ours_epoch)) if r % 2 == 0 else (
                ("ours", ours_epoch), ("bare", bare_epoch)):
            torch.manual_seed(r)
            times[name].append(fn(build_model(spec), splits.train, 32, 1e-3, r))
    best = {k: min(v) for k, v in times.items()}
    overhead = best["ours"] / best["bare"] - 1
    result = {"samples": len(splits.train), "threads": args.threads, "times_s": times, "best_s": best,
              "overhead": overhead, "median_overhead": sorted(o / b - 1 for o, b in zip(times["ours"], times["bare"],
                                                                                      strict=True))[args.repeats // 2]}
    (ROOT / "benchmarks" / "results" / "train_overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    print("| loop | best s/epoch | all runs (s) |\n|---|---|---|")
    for name in ("bare", "ours"):
        print(f"| {name} | {best[name]:.2f} | {', '.join(f'{t:.2f}' for t in times[name])} |")
    print(f"overhead (best vs best): {100 * overhead:+.1f} %")


if __name__ == "__main__":
    main()
