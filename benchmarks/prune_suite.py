"""Pruning methods side by side from trained networks anyone can get: resumable, one JSON per run, table and plots.

Every grid point (network, method, sparsity, seed) is one real pruning job (``snndeploy.prune.job.run_prune``) in
``--work/<net>__<method>__<sparsity>__s<seed>/``; its result goes to ``--results/points/`` under the same name
(.json, committed: ``runs/`` folders are git-ignored) when it finishes. A rerun skips finished points and resumes
an interrupted one from its last finished round, so the suite can be killed at any time and started again.
``--summary-only`` rebuilds ``summary.json``, ``summary.md`` (first, per network, every method with its defaults at
every sparsity; then every point) and the plots from the JSONs present (nothing is trained).

Equal fine-tuning budget: every method but IMP trains ``--epochs`` epochs in all (gradual methods spread them over
``--steps`` pruning steps); IMP trains densely from a fresh init and ``--imp-epochs`` per round, pruning
``--imp-rate`` of the remaining weights per round, all counted.

    .venv/bin/python benchmarks/prune_suite.py --nets mnist-mlp-128 --sparsities 0.9 --seeds 0 1 2 \\
        --methods criticality_ratemag criticality_rand gmp magnitude --epochs 4 --subset 20000
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections import defaultdict
from pathlib import Path

import matplotlib
import torch

import snndeploy  # noqa: F401  (Lava compatibility hook first)
from snndeploy import settings
from snndeploy.atomic import write_json, write_text
from snndeploy.loader import load_model
from snndeploy.prune import config as cfglib
from snndeploy.prune.config import with_lr_rule
from snndeploy.prune.deepr import DeepRConfig
from snndeploy.prune.distill import recorded_training
from snndeploy.prune.gradr import GradRConfig
from snndeploy.prune.job import PruneJob, run_prune
from snndeploy.prune.pq import PQConfig
from snndeploy.prune.registry import find_method
from snndeploy.prune.runner import STATE_FILE
from snndeploy.prune.set_rigl import RigLConfig, SETConfig

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the headless backend is chosen)

ROOT = Path(__file__).resolve().parent
NETS = {  # name -> (model file, dataset); only networks anyone can get
    "mnist-mlp-128": ("lava-dl/mnist-mlp-128/network.net", "mnist"),  # lava-dl netx MNIST 784-128-64-10
    "mnist-mlp-512": ("lava-dl/mnist-mlp-512/network.net", "mnist"),  # lava-dl bootstrap MNIST 784-512-512-10
}
# the suite's names of the methods run with the product's defaults; the three criticality rows are its per-weight
# scores (criticality_ratemag: the default; its "criticality" is the spec's `post` score)
DEFAULT_METHODS = ("criticality_ratemag", "criticality_rate", "criticality", "criticality_rand", "gmp", "magnitude",
                   "imp", "gradr", "deepr", "pq", "set", "rigl")
WEIGHT_SCORES = {"criticality_cw": "post_magnitude", "criticality_share": "post_share", "criticality_rate": "post_rate",
                 "criticality_ratemag": "post_rate_magnitude"}
IMP_EPOCHS = 2  # the suite's IMP: 2 epochs per round (its committed points); points name other counts
IMP_RATE = cfglib.IMPConfig.rate
LABELS = {"criticality": "criticality (C_i, ties by magnitude)", "criticality_cw": "criticality (C_i x magnitude)",
          "criticality_share": "criticality (shares by C_i)", "criticality_rate": "criticality (C_i x pre rate)",
          "criticality_ratemag": "criticality (C_i x pre rate x magnitude)",
          "criticality_rand": "random regeneration (ablation)", "gmp": "GMP", "magnitude": "global magnitude",
          "imp": "IMP (rewind to epoch k)", "gradr": "Grad R", "deepr": "Deep R", "pq": "PQ", "set": "SET",
          "rigl": "RigL", "random": "random"}


def label(method: str) -> str:
    """A method's table label; a point's --imp-rate / --imp-epochs / --rescale / --drive-limit / --lr / --alpha /
    relative rate (lr_rule relative) / --distill-weight / --label-ce / reassign_ineffective / --anneal / reconstruct /
    cut_substeps follow a comma."""
    found = re.fullmatch(r"(.+?)(?:_rate(\d[^_]*))?(?:_e(\d+))?(?:_rescale([^_]+))?(?:_drive([^_]+))?"
                         r"(?:_lr([^_]+))?(?:_alpha([^_]+))?(?:_rel([^_]+))?(?:_dw([^_]+))?"
                         r"(_ce)?(_reassign)?(_anneal)?(_recon)?(_inef[^_]+)?(?:_sub(\d+))?", method)
    base, *values, ce, reassign, anneal, recon, limit, substeps = found.groups()
    keys = ("pruned per round", "epochs per round", "rescale", "drive_limit", "lr", "alpha", "relative_lr",
            "distill_weight")
    extra = [f"{key} {v}" for key, v in zip(keys, values, strict=True) if v] + (["+ count CE"] if ce else []) + (
        ["ineffective weights reassigned"] if reassign else []) + (["last round annealed"] if anneal else []) + (
        ["kept weights refitted"] if recon else []) + (
        [f"steps stranding > {float(limit[5:]):.0%} repaired (commit 5f4a570)"] if limit else []) + (
        [f"cuts in {substeps} refitted sub-steps"] if substeps else [])
    return ", ".join([LABELS.get(base, base), *extra])


def model_path(net: str) -> Path:
    if net in NETS:
        return settings.fixtures_dir() / NETS[net][0]
    return Path(net)  # a committed checkpoint of ours, given by path


def dataset(net: str, args: argparse.Namespace) -> str:
    return NETS[net][1] if net in NETS else args.data


def make_config(name: str, seed: int, args: argparse.Namespace):
    """The method config of one grid point (equal fine-tuning epochs, IMP apart)."""
    # the gradual methods' epochs shared by their steps, a fraction of an epoch each where they outnumber them
    per_step = args.epochs // args.steps if args.epochs % args.steps == 0 else args.epochs / args.steps
    common = {"lr": args.lr, "seed": seed, "eval_each_step": True, "rescale": args.rescale,
              "relative_lr": args.relative_lr, **({"lr_rule": args.lr_rule} if args.lr_rule else {}),
              **({"distill_weight": args.distill_weight} if args.distill_weight is not None else {}),
              **({"label_loss": "cross_entropy"} if args.label_ce else {}),
              **({"reassign_ineffective": args.reassign} if args.reassign is not None else {}),
              **({"lr_decay": "final"} if args.anneal else {}),
              **({"reconstruct": args.reconstruct} if args.reconstruct is not None else {}),
              **({"drive_limit": args.drive_limit} if args.drive_limit is not None else {}),
              **({"cut_substeps": args.cut_substeps} if args.cut_substeps is not None else {})}
    if name.startswith("criticality"):
        extra = {"weight_score": WEIGHT_SCORES.get(name, "post"),
                 "regen": "random" if name == "criticality_rand" else "criticality"}
        return cfglib.CriticalityConfig(steps=args.steps, epochs_per_step=per_step, calib_batches=args.calib,
                                        **common, **extra)
    if name == "gmp":
        return cfglib.GMPConfig(steps=args.steps, epochs_per_step=per_step, **common)
    if name == "magnitude":
        return cfglib.MagnitudeConfig(epochs_per_step=args.epochs, **common)
    if name == "random":
        return cfglib.RandomConfig(epochs_per_step=args.epochs, **common)
    if name == "imp":
        # rewinding to epoch 1 needs a second dense epoch when the rounds are 1 epoch long
        dense = {"dense_epochs": 2} if args.imp_epochs < 2 else {}
        return cfglib.IMPConfig(epochs_per_step=args.imp_epochs, rate=args.imp_rate, rewind="epoch", rewind_epoch=1,
                                **dense, **common)
    if name in ("gradr", "deepr"):
        cls = GradRConfig if name == "gradr" else DeepRConfig
        return cls(epochs=args.epochs, **({"alpha": args.alpha} if args.alpha is not None else {}), **common)
    if name in ("set", "rigl"):
        cls = SETConfig if name == "set" else RigLConfig
        return cls(iterations=args.epochs, epochs_per_step=1, init_select="magnitude", **common)
    if name == "pq":
        return PQConfig(iterations=args.epochs, epochs_per_step=1, **common)
    raise SystemExit(f"unknown method {name}")


def point_name(net: str, method: str, sparsity: float, seed: int) -> str:
    return f"{Path(net).stem if net not in NETS else net}__{method}__{sparsity:g}__s{seed}"


def point_config(net: str, method: str, seed: int, args: argparse.Namespace) -> tuple[object, str]:
    """The config of one grid point and the name its points are stored under (the method and what is not default)."""
    config = with_lr_rule(make_config(method, seed, args), imported=recorded_training(model_path(net)) is None)
    method_label = method + (f"_rate{args.imp_rate:g}" if method == "imp" and args.imp_rate != IMP_RATE else "") + (
        f"_e{args.imp_epochs}" if method == "imp" and args.imp_epochs != IMP_EPOCHS else "") + (
        f"_rescale{args.rescale:g}" if args.rescale != 1 else "") + (
        f"_drive{args.drive_limit:g}" if args.drive_limit is not None else "") + (
        f"_lr{args.lr:g}" if args.lr != 1e-3 else "") + (
        f"_alpha{config.alpha:g}" if args.alpha is not None and hasattr(config, "alpha") else "") + (
        f"_rel{config.relative_lr:g}" if config.lr_rule == "relative" else "") + (
        f"_dw{args.distill_weight:g}" if args.distill_weight is not None else "") + ("_ce" if args.label_ce else "") + (
        "_reassign" if config.reassign_ineffective else "") + ("_anneal" if args.anneal else "") + (
        "_recon" if config.reconstruct else "") + (
        f"_sub{config.cut_substeps}" if config.cut_substeps > 1 and getattr(config, "init_select", "magnitude")
        == "magnitude" else "")
    return config, method_label


def default_points(net: str) -> dict[str, str]:
    """The stored names of the points a run with no options makes of every method with the product's defaults
    (name -> suite method)."""
    args = parser().parse_args([])
    return {point_config(net, method, 0, args)[1]: method for method in DEFAULT_METHODS}


def one_run(net: str, method: str, sparsity: float, seed: int, args: argparse.Namespace) -> dict | None:
    """Run (or resume, or skip) one grid point; returns its result record."""
    config, method_label = point_config(net, method, seed, args)
    name = point_name(net, method_label, sparsity, seed)
    result_path = args.results / "points" / f"{name}.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    work = args.work / name
    base = "criticality" if method.startswith("criticality") else method
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    job = PruneJob(find_method(base), config, sparsity, False, dataset(net, args), work,
                   source=str(model_path(net)), resume=(work / STATE_FILE).is_file(), batch_size=args.batch_size,
                   subset=args.subset, test_subset=args.test_subset, progress=False, log=None)
    result = run_prune(load_model(model_path(net)), job)
    r = result["report"]
    record = {"net": net, "method": method_label, "sparsity": sparsity, "seed": seed, "data": dataset(net, args),
              "subset": args.subset, "test_subset": args.test_subset, "accuracy_before": r["accuracy_before"],
              "accuracy_after": r["accuracy_after"], "weight_sparsity": r["sparsity"]["weights"],
              "cost": r["cost"], "config": r["config"], "history": r["history"],
              "synops_per_sample": r["synops_per_sample"]["total"], "elapsed_s": time.perf_counter() - t0}
    write_json(result_path, record)
    print(f"  {name}: {r['accuracy_before']:.4f} -> {r['accuracy_after']:.4f} "
          f"({r['cost']['epochs']} epochs, {record['elapsed_s']:.0f} s)", flush=True)
    return record


def summarise(results: Path) -> list[dict]:
    """Mean and standard deviation over seeds of every (net, method, sparsity) present."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for path in sorted((results / "points").glob("*.json")):
        rec = json.loads(path.read_text())
        groups[(rec["net"], rec["method"], rec["sparsity"])].append(rec)
    rows = []
    for (net, method, sparsity), recs in sorted(groups.items()):
        acc = [r["accuracy_after"] for r in recs]
        dense = [r["accuracy_before"] for r in recs]
        rows.append({"net": net, "method": method, "sparsity": sparsity, "seeds": sorted(r["seed"] for r in recs),
                     "dense": statistics.mean(dense), "mean": statistics.mean(acc),
                     "std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
                     "delta_pp": 100 * (statistics.mean(acc) - statistics.mean(dense)),
                     "epochs": statistics.mean(r["cost"]["epochs"] for r in recs),
                     "reached": statistics.mean(r["weight_sparsity"] for r in recs),
                     "test_samples": recs[0]["test_subset"] or 10000, "train_samples": recs[0]["subset"]})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| net | method | sparsity | reached | seeds | dense | after (mean +- std) | delta (pp) | epochs |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:  # reached: the weight sparsity the runs ended at (Grad R learns it and may stop short)
        lines.append(f"| {r['net']} | {label(r['method'])} | {r['sparsity']:g} | {r['reached']:.3f} | "
                     f"{len(r['seeds'])} | {100 * r['dense']:.2f} | {100 * r['mean']:.2f} +- {100 * r['std']:.2f} | "
                     f"{r['delta_pp']:+.2f} | {r['epochs']:g} |")
    return "\n".join(lines)


def defaults_table(rows: list[dict]) -> str:
    """Per network, every method with its defaults (rows) at every sparsity run (columns): mean +- std over the
    seeds, how many seeds when not 3, and the sparsity reached when a run ended more than 1 pp short of its target."""
    lines = []
    for net in sorted({r["net"] for r in rows}):
        names = default_points(net)
        mine = {(r["method"], r["sparsity"]): r for r in rows if r["net"] == net and r["method"] in names}
        sparsities = sorted({s for _, s in mine} - {0})
        dense = statistics.mean(r["dense"] for r in rows if r["net"] == net)
        lines += [f"{net} (dense {100 * dense:.2f} %), the methods' defaults:", "",
                  "| method | " + " | ".join(f"{s:g}" for s in sparsities) + " |", "|---" * (len(sparsities) + 1) + "|"]
        for name, method in names.items():
            cells = [defaults_cell(mine.get((name, s))) for s in sparsities]
            lines.append(f"| {LABELS.get(method, method)} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def defaults_cell(row: dict | None) -> str:
    if row is None:
        return "not run"
    cell = f"{100 * row['mean']:.2f} +- {100 * row['std']:.2f}"
    if len(row["seeds"]) != 3:
        cell += f" ({len(row['seeds'])} seed{'s' if len(row['seeds']) > 1 else ''})"
    if row["reached"] < row["sparsity"] - 0.01:
        cell += f" at {row['reached']:.3f}"
    return cell


MARKERS = "osD^vP*Xph<>"


def method_styles(methods: list[str]) -> dict[str, dict]:
    """A colour and marker per method: tab20's colours, then the same colours with the next marker, so no two
    methods look alike (the suite has more point kinds than the palette has colours)."""
    palette = plt.get_cmap("tab20").colors
    return {m: {"color": palette[i % len(palette)], "marker": MARKERS[(i // len(palette)) % len(MARKERS)]}
            for i, m in enumerate(methods)}


def plots(results: Path, rows: list[dict]) -> list[Path]:
    """Per network: accuracy vs sparsity and, at the sparsity IMP ran at (else the lowest), accuracy vs cumulative
    epochs, of the points with the methods' defaults (every variant is in the table; all of them are unreadable)."""
    out = []
    for net in sorted({r["net"] for r in rows}):
        defaults = default_points(net)
        mine = [r for r in rows if r["net"] == net and r["method"] in defaults] or [r for r in rows if r["net"] == net]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(15, 5.5))
        methods = sorted({r["method"] for r in mine})
        style = method_styles(methods)  # one colour and marker per method, both panels
        for method in methods:
            # at the sparsity reached: Grad R and PQ may end short of the target
            pts = sorted((r["reached"], 100 * r["mean"], 100 * r["std"]) for r in mine if r["method"] == method)
            ax1.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], capsize=3,
                         **style[method], label=label(method))
        ax1.axhline(100 * mine[0]["dense"], color="k", ls=":", label="dense")
        ax1.set_xlabel("weight sparsity reached")
        ax1.set_ylabel("test accuracy (%)")
        ax1.set_title(f"{net}: accuracy vs sparsity (mean +- std over seeds)")
        imp = [r["sparsity"] for r in mine if r["method"].split("_")[0] == "imp"]
        cost_sparsity = min(imp) if imp else min(r["sparsity"] for r in mine)
        for method in methods:
            curve = cost_curve(results, net, method, cost_sparsity)
            if curve:
                xs, ys, es = zip(*curve, strict=True)
                ax2.errorbar(xs, ys, yerr=es, capsize=3, **style[method])
        ax2.axhline(100 * mine[0]["dense"], color="k", ls=":")
        ax2.set_xscale("log")
        ax2.set_xlabel("training epochs (cumulative)")
        ax2.set_ylabel("test accuracy (%)")
        ax2.set_title(f"cost at {cost_sparsity:.0%} sparsity: accuracy after each round (mean +- std over seeds)")
        fig.legend(*ax1.get_legend_handles_labels(), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
        fig.tight_layout()
        path = results / f"{net}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        out.append(path)
    return out


def cost_curve(results: Path, net: str, method: str, sparsity: float) -> list[tuple[float, float, float]]:
    """(cumulative epochs, mean and std of the test accuracy over seeds) after every evaluated round of a point."""
    by_epochs: dict[float, list[float]] = defaultdict(list)
    for path in sorted((results / "points").glob(f"{net}__{method}__{sparsity:g}__s*.json")):
        epochs = 0
        for h in json.loads(path.read_text())["history"]:
            epochs += h.get("epochs", 0) + h.get("dense_epochs", 0)
            if "accuracy" in h:
                by_epochs[epochs].append(100 * h["accuracy"])
    return [(e, statistics.mean(a), statistics.stdev(a) if len(a) > 1 else 0.0) for e, a in sorted(by_epochs.items())]


def write_summary(results: Path) -> list[dict]:
    rows = summarise(results)
    write_json(results / "summary.json", {"rows": rows})
    every, defaults = table(rows), defaults_table(rows)
    write_text(results / "summary.md", defaults + "\nEvery point:\n\n" + every + "\n")
    plots(results, rows)
    print(every)
    print(defaults)
    return rows


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", nargs="+", default=["mnist-mlp-128"], help=f"{', '.join(NETS)} or a checkpoint path")
    p.add_argument("--data", default="mnist", help="dataset of a network given by path")
    p.add_argument("--methods", nargs="+", default=["criticality_ratemag", "criticality_rand", "gmp", "magnitude"])
    p.add_argument("--sparsities", nargs="+", type=float, default=[0.9])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=4, help="fine-tuning epochs of every method but IMP")
    p.add_argument("--steps", type=int, default=4, help="pruning steps of the gradual methods")
    p.add_argument("--imp-epochs", type=int, default=IMP_EPOCHS,
                   help="IMP: training epochs per round (and dense training); points named _eN when not 2")
    p.add_argument("--imp-rate", type=float, default=IMP_RATE,
                   help="IMP: share of the remaining weights pruned per round; points named _rateR when not 0.2")
    p.add_argument("--calib", type=int, default=10, help="criticality calibration batches")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-rule", choices=("auto", "absolute", "relative"),
                   help="config lr_rule (docs/prune.md; default: each method's own: auto, absolute for IMP, Grad R and "
                        "Deep R)")
    p.add_argument("--relative-lr", type=float, default=0.016, help="config relative_lr (docs/prune.md)")
    p.add_argument("--distill-weight", type=float,
                   help="config distill_weight (default: the method's own; a lava-dl network has no recorded label "
                        "loss and fine-tunes by distillation alone unless --label-ce, so it changes nothing there)")
    p.add_argument("--label-ce", action="store_true",
                   help="config label_loss cross_entropy: distillation + count cross-entropy (points named _ce)")
    p.add_argument("--reassign", action=argparse.BooleanOptionalAction,
                   help="config reassign_ineffective: weights on no input-output path moved after each step "
                        "(default: the method's own; points with it on are named _reassign)")
    p.add_argument("--anneal", action="store_true",
                   help="config lr_decay final: the last round's rates fall to 0 along a cosine (points named _anneal)")
    p.add_argument("--reconstruct", action=argparse.BooleanOptionalAction,
                   help="config reconstruct: kept weights refitted by least squares after each step (default: the "
                        "method's own; points with it on are named _recon)")
    p.add_argument("--cut-substeps", type=int,
                   help="config cut_substeps: a magnitude cut of the trained network in refitted sub-steps (default: "
                        "the method's own; points where it is used with more than 1 are named _subN)")
    p.add_argument("--drive-limit", type=float, help="config drive_limit (default: the method's own)")
    p.add_argument("--alpha", type=float,
                   help="config alpha of Grad R (prior strength) and Deep R (L1 penalty); names their points _alphaA")
    p.add_argument("--rescale", type=float, default=1.0,
                   help="config rescale (docs/prune.md); it and --lr name the points when not default")
    p.add_argument("--subset", type=int, default=20000, help="training samples (>= 20,000 for the issue's grid)")
    p.add_argument("--test-subset", type=int, default=None, help="test samples (default: the whole test set)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--results", type=Path, default=ROOT / "results" / "prune_suite")
    p.add_argument("--work", type=Path, default=ROOT / "results" / "runs" / "prune_suite")
    p.add_argument("--summary-only", action="store_true")
    return p


def main() -> None:
    args = parser().parse_args()
    torch.set_num_threads(args.threads)
    if not args.summary_only:
        for sparsity in args.sparsities:
            for seed in args.seeds:
                for net in args.nets:
                    for method in args.methods:
                        one_run(net, method, sparsity, seed, args)
                        write_summary(args.results)
    write_summary(args.results)


if __name__ == "__main__":
    main()
