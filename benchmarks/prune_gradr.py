"""Grad R accuracy-connectivity curve (alpha sweep) against Deep R, magnitude and criticality at the same connectivity.

Usage: .venv/bin/python benchmarks/prune_gradr.py [--case mnist_mlp|nmnist_cnn] [--subset N] [--test-subset N]
       [--dense-epochs N] [--epochs N] [--alphas A,B,...] [--baselines N] [--batch N] [--threads N]

The paper's MNIST network, 784-800-10 (CUBA neurons as in examples/mnist_mlp.yaml, T = 8, 8-bit Loihi weights,
rate-encoded MNIST), is trained dense for --dense-epochs; every method then starts from that model and gets the same
--epochs of training: Grad R (p = 0.95, one run per alpha), Deep R (hard, same penalty alpha, connection cap = the
sparsity Grad R reached), one-shot magnitude + fine-tuning and criticality (2 cubic steps) at that sparsity.
Writes benchmarks/results/prune_gradr.json, prune_gradr.png and (git-ignored) benchmarks/results/runs/gradr/ with the
last Grad R run's report and plot; the dense model is cached in benchmarks/results/runs/. ``--case nmnist_cnn``: the
same comparison on examples/nmnist_cnn.yaml and nmnist-small (files prune_gradr_nmnist_cnn.*).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SPEC = {"name": "mnist_800", "input_shape": [784], "time_steps": 8, "quantize": True,
        "neuron": {"kind": "cuba", "threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03,
                   "tau_grad": 0.03, "scale_grad": 3.0},
        "blocks": [{"kind": "dense", "out": 800, "weight_scale": 2}, {"kind": "dense", "out": 10, "weight_scale": 2}]}
CASES = {"mnist_mlp": ("mnist", 64), "nmnist_cnn": ("nmnist-small", 16)}  # dataset, batch size


def dense_model(args) -> torch.nn.Module:
    """The 784-800-10 network trained dense on the subset (cached, git-ignored, in benchmarks/results/runs/)."""
    from snndeploy.data.datasets import make_splits
    from snndeploy.loader import load_model
    from snndeploy.models.build import build_model
    from snndeploy.models.checkpoint import make_checkpoint, save_checkpoint
    from snndeploy.train.loop import TrainConfig, Trainer

    tag = "" if args.case == "mnist_mlp" else f"{args.case}_"
    path = RESULTS / "runs" / f"gradr_dense_{tag}{args.subset}_{args.dense_epochs}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        return load_model(path)
    torch.manual_seed(0)
    net = build_model(spec_of(args.case))
    splits = make_splits(CASES[args.case][0], time_steps=net.spec.time_steps, seed=0, subset=args.subset,
                         test_subset=args.test_subset, input_shape=tuple(net.spec.input_shape))
    start = time.perf_counter()
    Trainer(net, TrainConfig(epochs=args.dense_epochs, batch_size=args.batch, lr=1e-3, device="cpu"), log=print,
            progress=False).fit(splits.train)
    print(f"dense training: {time.perf_counter() - start:.0f} s")
    save_checkpoint(path, make_checkpoint(net, epoch=args.dense_epochs))
    return load_model(path)


def spec_of(case: str):
    from snndeploy.models.spec import load_spec, spec_from_dict

    return spec_from_dict(SPEC) if case == "mnist_mlp" else load_spec(ROOT / "examples" / f"{case}.yaml")


def prune_run(dense, method_name: str, config: dict, target: float, args, out: Path | None = None) -> dict:
    import snndeploy.prune.deepr  # noqa: F401  (registers deepr)
    from snndeploy.prune.config import config_from_dict
    from snndeploy.prune.finetune import DatasetTrainer
    from snndeploy.prune.registry import find_method
    from snndeploy.prune.report import write_report
    from snndeploy.prune.runner import Runner, RunSpec

    net = copy.deepcopy(dense)
    method = find_method(method_name)
    cfg = config_from_dict(method.config_class, config)
    trainer = DatasetTrainer(CASES[args.case][0], net, batch_size=args.batch, subset=args.subset,
                             test_subset=args.test_subset, seed=0, progress=False, threads=args.threads)
    scratch = out or RESULTS / "runs" / "gradr_scratch"
    for name in ("prune_state.pt",):
        (scratch / name).unlink(missing_ok=True)
    result = Runner(RunSpec(method, cfg, target, False, "benchmark"), net, trainer, scratch).run()
    report = result.report
    if out is not None:
        write_report(report, out)
    (scratch / "prune_state.pt").unlink(missing_ok=True)
    last = report["history"][-1]
    row = {"method": method_name, "config": config, "target": target, "accuracy_before": report["accuracy_before"],
           "accuracy": report["accuracy_after"], "connectivity": 1.0 - report["sparsity"]["weights"],
           "connectivity_quantized": quantized_connectivity(result.net),
           "epochs": report["cost"]["epochs"], "wall_s": report["cost"]["wall_s"],
           "synops_per_sample": report["synops_per_sample"]["total"]}
    if "connectivity" in last:
        row["trajectory"] = [[h["round"] + 1, h["connectivity"], h["connectivity_quantized"], h.get("accuracy")]
                             for h in report["history"]]
    print(f"| {method_name} | {json.dumps(config)} | {100 * row['accuracy']:6.2f} % "
          f"| {100 * row['connectivity']:6.2f} % | {100 * row['connectivity_quantized']:6.2f} % "
          f"| {row['epochs']} | {row['wall_s']:6.0f} |", flush=True)
    return row


def quantized_connectivity(net) -> float:
    """Fraction of synapse weights that stay non-zero through the block's 8-bit weight quantiser."""
    live = total = 0
    with torch.no_grad():
        for block in net.blocks:
            synapse = getattr(block, "synapse", None)
            if synapse is None:
                continue
            w = synapse.weight
            hook = getattr(synapse, "_pre_hook_fx", None)
            wq = hook(w) if hook is not None else w
            live, total = live + int((wq != 0).sum()), total + wq.numel()
    return live / total


def plot(rows: list[dict], dense_acc: float, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for method, style in (("gradr", "o-"), ("deepr", "s--"), ("magnitude", "^:"), ("criticality", "v:")):
        pts = sorted((r["connectivity_quantized"], r["accuracy"]) for r in rows
                     if r["method"] == method and "seed" not in r["config"])
        if pts:
            ax1.plot([100 * c for c, _ in pts], [100 * a for _, a in pts], style, label=method)
    ax1.axhline(100 * dense_acc, color="grey", lw=0.8, label="dense")
    ax1.set_xscale("log")
    ax1.set_xlabel("connectivity after 8-bit quantisation (%)")
    ax1.set_ylabel("test accuracy (%)")
    ax1.set_title(title)
    ax1.legend()
    ax1.grid(alpha=0.3)
    for r in rows:
        if r["method"] != "gradr" or "seed" in r["config"]:
            continue
        t = r["trajectory"]
        ax2.plot([0] + [p[0] for p in t], [100.0] + [100 * p[1] for p in t], "o-",
                 label=f"alpha {r['config']['alpha']:g}")
    ax2.set_yscale("log")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("connectivity (%)")
    ax2.set_title("Grad R connectivity over training")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", choices=list(CASES), default="mnist_mlp")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: 64 MLP, 16 CNN)")
    parser.add_argument("--subset", type=int, default=6000)
    parser.add_argument("--test-subset", type=int, default=2000)
    parser.add_argument("--dense-epochs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--alphas", default="0.05,0.15,0.4,0.8")
    parser.add_argument("--baselines", type=int, default=3, help="compare at the sparsity of the last N alphas")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--extra-seeds", default="", help="also run gradr and deepr at the --baselines alphas with "
                        "these config seeds (rate-coding noise, Deep R draws), e.g. 1,2; adds to the JSON")
    parser.add_argument("--extra-only", action="store_true",
                        help="keep the rows of the existing prune_gradr.json and run only --extra-seeds")
    args = parser.parse_args()
    args.batch = args.batch or CASES[args.case][1]
    torch.set_num_threads(args.threads)
    import snndeploy  # noqa: F401

    RESULTS.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    dense = dense_model(args)
    alphas = [float(a) for a in args.alphas.split(",")]
    print("| method | config | accuracy | connectivity | after 8-bit quantisation | epochs | wall s |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    if args.extra_only:
        previous = RESULTS / ("prune_gradr.json" if args.case == "mnist_mlp" else f"prune_gradr_{args.case}.json")
        rows = [r for r in json.loads(previous.read_text())["rows"] if "seed" not in r["config"]]
        alphas = []
    for n, alpha in enumerate(alphas):
        out = RESULTS / "runs" / f"gradr_{args.case}" if n == len(alphas) - 1 else None
        rows.append(prune_run(dense, "gradr", {"epochs": args.epochs, "alpha": alpha}, 0.95, args, out))
    for row in rows[-args.baselines:] if alphas else []:
        sparsity = min(round(1.0 - row["connectivity"], 4), 0.999)
        alpha = row["config"]["alpha"]
        rows.append(prune_run(dense, "deepr", {"epochs": args.epochs, "alpha": alpha}, sparsity, args))
        rows.append(prune_run(dense, "magnitude", {"epochs_per_step": args.epochs}, sparsity, args))
        steps = 2 if args.epochs >= 2 else 1
        rows.append(prune_run(dense, "criticality", {"steps": steps, "epochs_per_step": max(args.epochs // steps, 1),
                                                     "calib_batches": 5}, sparsity, args))
    for seed in [int(x) for x in args.extra_seeds.split(",") if x]:
        for row in [r for r in rows if r["method"] == "gradr" and "seed" not in r["config"]][-args.baselines:]:
            alpha, sparsity = row["config"]["alpha"], min(round(1.0 - row["connectivity"], 4), 0.999)
            rows.append(prune_run(dense, "gradr", {"epochs": args.epochs, "alpha": alpha, "seed": seed}, 0.95, args))
            rows.append(prune_run(dense, "deepr", {"epochs": args.epochs, "alpha": alpha, "seed": seed}, sparsity,
                                  args))
    dense_acc = rows[0]["accuracy_before"]
    from snndeploy.models.spec import spec_to_dict

    result = {"options": vars(args), "spec": spec_to_dict(spec_of(args.case)), "dense_accuracy": dense_acc,
              "rows": rows, "wall_s": time.perf_counter() - start}
    name = "prune_gradr" if args.case == "mnist_mlp" else f"prune_gradr_{args.case}"
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    title = "784-800-10 SLAYER MLP on MNIST (subset)" if args.case == "mnist_mlp" else "N-MNIST CNN (nmnist-small)"
    plot(rows, dense_acc, RESULTS / f"{name}.png", title)
    print(f"dense accuracy {100 * dense_acc:.2f} %, total {result['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
