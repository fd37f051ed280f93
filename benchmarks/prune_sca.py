"""SCA against structured baselines: accuracy vs fraction of channels kept, with params, SynOps and Loihi 2 cores.

Usage: .venv/bin/python benchmarks/prune_sca.py [--cases nmnist fashion] [--keep 0.5 0.3 0.2]
       [--methods sca sca_pos criticality slimming l1filter] [--epochs 4] [--dense-epochs N] [--time-steps T]
       [--subset N] [--test-subset N] [--seeds 0 1] [--dense CHECKPOINT] [--runs DIR] [--results DIR]

Every case starts from one dense network (the example spec, trained here for ``--dense-epochs`` on the same training
subset) and gives every method the same budget of ``--epochs`` training epochs through ``snndeploy prune``'s library
call ``snndeploy.prune.job.run_prune`` (structured: the final model is physically shrunk). Each final model is
exported to NIR and estimated on the Loihi 2 profile by :mod:`snndeploy.hardware`. Runs are kept under
``benchmarks/results/runs/prune_sca/`` and reused, so an interrupted benchmark continues (one process per seed can
run side by side once the dense row exists; a last run over all seeds only collects). Writes
``benchmarks/results/prune_sca.{json,png}``: every run, and mean +- std over ``--seeds`` per method and width.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import time
from pathlib import Path

import matplotlib
import torch

import snndeploy  # noqa: F401  (Lava compatibility hook first)
from snndeploy.atomic import atomic_path, write_json
from snndeploy.data.datasets import feed_for, make_splits
from snndeploy.hardware.estimate import estimate_target
from snndeploy.hardware.load import load_layers
from snndeploy.hardware.profile import load_profile
from snndeploy.loader import load_model
from snndeploy.models.build import build_model
from snndeploy.models.checkpoint import make_checkpoint, save_checkpoint
from snndeploy.models.spec import load_spec
from snndeploy.prune import config as cfglib
from snndeploy.prune.cost import model_stats, synops_per_sample
from snndeploy.prune.job import PruneJob, run_prune
from snndeploy.prune.registry import find_method
from snndeploy.prune.sca import SCAConfig
from snndeploy.train.loop import TrainConfig, Trainer, evaluate

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the headless backend is chosen)

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "benchmarks" / "results" / "runs" / "prune_sca"
CASES = {  # spec, dataset, training / test samples, dense epochs, time steps (None: the spec's); bounded for the
    # shared 2-core machine: N-MNIST runs at T = 10 instead of the spec's 30 (300 ms binned into 10 frames)
    "nmnist": ("examples/nmnist_cnn.yaml", "nmnist-small", 600, 100, 12, 10),
    "fashion": ("examples/fashion_cnn.yaml", "fashion-mnist", 600, 200, 6, None),
}


RECON = "_recon"  # a method name ending in it: the same method with config reconstruct (kept weights refitted)


def base_method(name: str) -> str:
    """The registered method a benchmark method name runs."""
    name = name.removesuffix(RECON)
    return "sca" if name.startswith("sca") else name


def method_config(name: str, epochs: int, seed: int = 0):
    """Each method's own defaults, with the training budget set to ``epochs`` epochs in total."""
    if name.endswith(RECON):
        return dataclasses.replace(method_config(name.removesuffix(RECON), epochs, seed), reconstruct=True)
    common = {"eval_each_step": False, "seed": seed}
    if name == "sca":  # the default: depolarisation-only activity
        return SCAConfig(epochs=epochs, warmup_epochs=0, **common)
    if name == "sca_abs":  # the spec's mean |U| (favours silent, inhibited channels)
        return SCAConfig(epochs=epochs, warmup_epochs=0, activity="abs", **common)
    if name == "sca_pos":  # kept for the earlier result files: the same as the default now
        return SCAConfig(epochs=epochs, warmup_epochs=0, activity="positive", **common)
    if name == "criticality":
        return cfglib.CriticalityConfig(steps=epochs, epochs_per_step=1, calib_batches=2, **common)
    if name == "slimming":
        return cfglib.SlimmingConfig(sparsity_epochs=1, epochs_per_step=epochs - 1, **common)
    if name == "l1filter":
        return cfglib.L1FilterConfig(epochs_per_step=epochs, **common)
    raise ValueError(name)


def case_dir(case: str, args) -> Path:
    """Run folder of a case, named by every option that changes its runs (so no run is reused across options)."""
    _, _, subset, test_subset, dense_epochs, steps = CASES[case]
    start = f"from-{args.dense.parent.name}-{args.dense.stem}" if args.dense else \
        f"d{args.dense_epochs or dense_epochs}-T{args.time_steps or steps or 'spec'}"
    tag = f"n{args.subset or subset}-t{args.test_subset or test_subset}-{start}-e{args.epochs}-b{args.batch_size}"
    return args.runs / f"{case}-{tag}"


def case_splits(case: str, net, args):
    """The case's data for ``net``, encoded as the network records it was fed (as ``run_prune`` feeds it)."""
    feed = feed_for(net.spec.io)
    return make_splits(CASES[case][1], time_steps=net.spec.time_steps, seed=0, subset=args.subset or CASES[case][2],
                       test_subset=args.test_subset or CASES[case][3], input_shape=tuple(net.spec.input_shape),
                       encoding=feed.encoding, normalize=feed.normalize)


def dense_model(case: str, args) -> tuple[Path, dict]:
    """Train (or reuse) the dense starting point of a case; returns its checkpoint and test accuracy."""
    spec_path, _, _, _, dense_epochs, steps = CASES[case]
    out = case_dir(case, args)
    path = out / "dense.pt"
    info_path = out / "dense.json"
    if path.is_file() and info_path.is_file():
        return path, json.loads(info_path.read_text())
    if args.dense:  # a network trained elsewhere (e.g. by benchmarks/train_accuracy.py): evaluate it only
        net = load_model(args.dense)
        splits = case_splits(case, net, args)
        config = TrainConfig(batch_size=args.batch_size, threads=1, device="cpu")
        info = {"epochs": None, "train_seconds": 0.0, "source": str(args.dense), "time_steps": net.spec.time_steps,
                "accuracy": evaluate(net, splits.test, config=config, device="cpu")["accuracy"]}
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:  # as it is: its recorded training sets the fine-tuning defaults
            shutil.copyfile(args.dense, tmp)
        write_json(info_path, info)
        return path, info
    spec = load_spec(ROOT / spec_path)
    spec = dataclasses.replace(spec, time_steps=args.time_steps or steps or spec.time_steps)
    torch.manual_seed(0)
    net = build_model(spec)
    splits = case_splits(case, net, args)
    epochs = args.dense_epochs or dense_epochs
    config = TrainConfig(epochs=epochs, batch_size=args.batch_size, threads=1, device="cpu", seed=0)
    start = time.perf_counter()
    Trainer(net, config, log=print, progress=False).fit(splits.train)
    info = {"epochs": epochs, "train_seconds": round(time.perf_counter() - start, 1),
            "accuracy": evaluate(net, splits.test, config=config, device="cpu")["accuracy"],
            "time_steps": spec.time_steps}
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, make_checkpoint(net, epoch=epochs))
    write_json(info_path, info)
    return path, info


def loihi2_cores(model_path: Path) -> int | None:
    return estimate_target(load_layers(model_path), load_profile("loihi2")).cores


def run_one(case: str, method_name: str, keep: float, seed: int, dense: Path, args) -> dict:
    out = case_dir(case, args) / (f"{method_name}_keep{int(round(100 * keep))}" + (f"_s{seed}" if seed else ""))
    report_path = out / "prune_report.json"
    if not report_path.is_file():
        method = find_method(base_method(method_name))
        config = method_config(method_name, args.epochs, seed)
        run_prune(load_model(dense), PruneJob(
            method, config, 1.0 - keep, True, CASES[case][1], out, source=str(dense),
            resume=(out / "prune_state.pt").is_file(), batch_size=args.batch_size,
            subset=args.subset or CASES[case][2], test_subset=args.test_subset or CASES[case][3], progress=False,
            log=None))
    report = json.loads(report_path.read_text())
    return {"case": case, "method": method_name, "keep": keep, "seed": seed,
            "accuracy_before": report["accuracy_before"], "accuracy": report["accuracy_after"],
            "channels": report["sparsity"]["channels"], "params": report["model"]["weights"],
            "synops": report["synops_per_sample"]["total"],
            "loihi2_cores": loihi2_cores(out / "model.pt"), "wall_s": report["cost"]["wall_s"],
            "widths": [b["out"] for b in report["spec"]["blocks"] if b["kind"] in ("conv", "dense")]}


def dense_row(case: str, dense: Path, info: dict, args) -> dict:
    """The dense network's row, counted once per case folder (its test split's SynOps take a pass over the data)."""
    path = case_dir(case, args) / "dense_row.json"
    if path.is_file():
        return json.loads(path.read_text())
    net = load_model(dense)
    splits = case_splits(case, net, args)
    loader = torch.utils.data.DataLoader(splits.test, batch_size=args.batch_size)
    row = {"case": case, "method": "dense", "keep": 1.0, "seed": 0, "accuracy_before": info["accuracy"],
           "accuracy": info["accuracy"], "channels": 0.0, "params": model_stats(net)["weights"],
           "synops": synops_per_sample(net, [x for x, _ in loader])["total"], "loihi2_cores": loihi2_cores(dense),
           "wall_s": info["train_seconds"], "widths": [b.out for b in net.spec.blocks if b.kind in ("conv", "dense")]}
    write_json(path, row)
    return row


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and standard deviation over seeds of every (case, method, channels kept); the dense row as it is."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["case"], r["method"], r["keep"]), []).append(r)
    dense = {r["case"]: r["accuracy"] for r in rows if r["method"] == "dense"}
    out = []
    for (case, method, keep), runs in groups.items():
        accs = [r["accuracy"] for r in runs]
        mean = statistics.fmean(accs)
        out.append({"case": case, "method": method, "keep": keep, "seeds": sorted(r["seed"] for r in runs),
                    "accuracy_mean": mean, "accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                    "delta_pp": 100 * (mean - dense[case]) if case in dense else None,
                    "params": [r["params"] for r in runs], "loihi2_cores": [r["loihi2_cores"] for r in runs],
                    "widths": ["-".join(map(str, r["widths"])) for r in runs]})
    return out


def plot(summary: list[dict], path: Path) -> None:
    cases = sorted({r["case"] for r in summary})
    fig, axes = plt.subplots(1, len(cases), figsize=(5.5 * len(cases), 4), squeeze=False)
    for ax, case in zip(axes[0], cases, strict=True):
        dense = next((r for r in summary if r["case"] == case and r["method"] == "dense"), None)
        for method in sorted({r["method"] for r in summary if r["case"] == case and r["method"] != "dense"}):
            pts = sorted((r["keep"], r["accuracy_mean"], r["accuracy_std"]) for r in summary
                         if r["case"] == case and r["method"] == method)
            ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], fmt="o-", capsize=3,
                        label=method)
        if dense:
            ax.axhline(dense["accuracy_mean"], color="k", ls="--", lw=1, label="dense")
        ax.set_xlabel("fraction of channels kept")
        ax.set_ylabel("test accuracy (mean +- std over seeds)")
        ax.set_title(case)
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_tables(rows: list[dict], summary: list[dict]) -> None:
    print("| case | method | channels kept | seed | accuracy | params | SynOps/sample | Loihi 2 cores | widths |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['method']} | {100 * r['keep']:.0f} % | {r['seed']} | {100 * r['accuracy']:.2f} % "
              f"| {r['params']} | {r['synops']:.0f} | {r['loihi2_cores']} | {'-'.join(map(str, r['widths']))} |")
    print("\n| case | method | channels kept | seeds | accuracy (mean +- std) | vs dense (pp) | Loihi 2 cores "
          "| widths |")
    print("|---|---|---|---|---|---|---|---|")
    for r in summary:
        delta = "" if r["delta_pp"] is None else f"{r['delta_pp']:+.2f}"
        cores = "/".join(map(str, sorted(set(r["loihi2_cores"]))))
        print(f"| {r['case']} | {r['method']} | {100 * r['keep']:.0f} % | {len(r['seeds'])} "
              f"| {100 * r['accuracy_mean']:.2f} +- {100 * r['accuracy_std']:.2f} % | {delta} | {cores} "
              f"| {' / '.join(sorted(set(r['widths'])))} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--keep", nargs="+", type=float, default=[0.5, 0.3, 0.2])
    parser.add_argument("--methods", nargs="+", default=["sca", "sca_pos", "criticality", "slimming", "l1filter"])
    parser.add_argument("--epochs", type=int, default=4, help="training epochs per pruning run (every method)")
    parser.add_argument("--dense-epochs", type=int, default=None)
    parser.add_argument("--time-steps", type=int, default=None)
    parser.add_argument("--subset", type=int, default=None, help="training samples (default: per case)")
    parser.add_argument("--test-subset", type=int, default=None, help="test samples (default: per case)")
    parser.add_argument("--batch-size", type=int, default=25)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="one run per seed (fine-tuning data order)")
    parser.add_argument("--runs", type=Path, default=RUNS, help="folder of the (reused) runs")
    parser.add_argument("--dense", type=Path, help="start from this trained network (one case) instead of training")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    if args.dense and len(args.cases) != 1:
        parser.error("--dense needs exactly one --cases")
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (SCA needs an observed epoch before its first update and one after it)")
    torch.set_num_threads(1)
    rows = []
    for case in args.cases:
        dense, info = dense_model(case, args)
        rows.append(dense_row(case, dense, info, args))
        for seed in args.seeds:  # seed by seed, so a stopped benchmark has whole seeds first
            for keep in args.keep:
                for method in args.methods:
                    rows.append(run_one(case, method, keep, seed, dense, args))
                    r = rows[-1]
                    print(f"{case} {method} keep {keep} seed {seed}: acc {r['accuracy']:.4f} params {r['params']} "
                          f"synops {r['synops']:.0f} cores {r['loihi2_cores']} widths {r['widths']}", flush=True)
    summary = summarise(rows)
    results = args.results
    results.mkdir(parents=True, exist_ok=True)
    options = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    write_json(results / "prune_sca.json", {"options": options, "rows": rows, "summary": summary})
    plot(summary, results / "prune_sca.png")
    print_tables(rows, summary)


if __name__ == "__main__":
    main()
