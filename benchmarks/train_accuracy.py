"""Accuracy and seconds per epoch of the example specs, trained with `snndeploy train` (run_training).

Usage: .venv/bin/python benchmarks/train_accuracy.py CASE [--epochs N] [--subset N] [--test-subset N]
       [--true-rate R] [--false-rate R] [--lr-schedule cosine] [--weight-decay W] [--encoding rate|current]
       [--name NAME] [--out DIR]
CASE: mnist_mlp | nmnist_cnn | fashion_cnn.
Writes benchmarks/results/train_<name>.json (+ .png) and the run folder benchmarks/results/runs/<name>/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = {
    # spec, dataset, training options (everything else: the CLI defaults)
    "mnist_mlp": ("examples/mnist_mlp.yaml", "mnist", {"encoding": "rate", "epochs": 3}),
    "nmnist_cnn": ("examples/nmnist_cnn.yaml", "nmnist-small", {"epochs": 20, "val_fraction": 0.0}),
    "fashion_cnn": ("examples/fashion_cnn.yaml", "fashion-mnist", {"encoding": "current", "epochs": 1}),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=list(CASES))
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--subset", type=int, default=None, help="train on N samples only")
    parser.add_argument("--test-subset", type=int, default=None, help="test on the first N test samples only")
    parser.add_argument("--true-rate", type=float, default=None, help="SpikeRate target of the correct class")
    parser.add_argument("--false-rate", type=float, default=None, help="SpikeRate target of the other classes")
    parser.add_argument("--lr-schedule", choices=["constant", "cosine"], default=None)
    parser.add_argument("--weight-decay", type=float, default=None)
    parser.add_argument("--encoding", choices=["rate", "current"], default=None, help="image datasets only")
    parser.add_argument("--name", default=None, help="results name (default CASE): results/train_NAME.json")
    parser.add_argument("--out", default=None, help="run folder (default benchmarks/results/runs/NAME)")
    args = parser.parse_args()
    from snndeploy.loader import load_model
    from snndeploy.train.run import TrainJob, run_training

    spec, data, options = CASES[args.case]
    options = dict(options)
    epochs = args.epochs or options.pop("epochs")
    options.pop("epochs", None)
    name = args.name or args.case
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / "runs" / name
    start = time.perf_counter()
    given = {"subset": args.subset, "test_subset": args.test_subset, "true_rate": args.true_rate,
             "false_rate": args.false_rate, "lr_schedule": args.lr_schedule, "encoding": args.encoding,
             "weight_decay": args.weight_decay}
    options.update({k: v for k, v in given.items() if v is not None})
    result = run_training(ROOT / spec, TrainJob(epochs=epochs, out=out, data_name=data, threads=args.threads,
                                                force=True, progress=False, **options), load=load_model)
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    result["options"] = {"spec": spec, "data": data, "epochs": epochs, **options, "threads": args.threads}
    path = ROOT / "benchmarks" / "results" / f"train_{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    curves = out / "training.png"
    if curves.is_file():
        shutil.copyfile(curves, path.with_suffix(".png"))
    print(f"| {args.case} | {data} | {epochs} | {100 * result['test']['accuracy']:.2f} % "
          f"| {result['seconds_per_epoch']:.1f} | {result['test']['spike_rate']:.4f} |")


if __name__ == "__main__":
    main()
