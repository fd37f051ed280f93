"""Criticality pruning-regeneration against global magnitude, GMP, random (equal fine-tuning budgets) and IMP (cost).

Each run is a real ``snndeploy prune`` job (``snndeploy.prune.job.run_prune``) in its own folder under ``--out``;
finished runs are reused, interrupted ones resumed, so the benchmark can be stopped and continued. IMP is run once
to the highest sparsity with an evaluation after every round; its accuracy and cumulative cost are read at the first
round that reaches each target.

    .venv/bin/python benchmarks/prune_criticality.py --model mlp            # MNIST MLP (lava-dl mnist-mlp-128)
    .venv/bin/python benchmarks/prune_criticality.py --model cnn --checkpoint CKPT --data nmnist
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import snndeploy  # noqa: F401  (Lava compatibility hook first)
from snndeploy import settings

ROOT = Path(__file__).resolve().parent
LABELS = {"criticality": "criticality (C_i, ties |w|)", "criticality_cw": "criticality (C_i*|w|)",
          "criticality_rand": "regeneration random (ablation)", "criticality_grad": "regeneration |grad| (ablation)",
          "magnitude": "global magnitude", "gmp": "GMP", "random": "random", "imp": "IMP (rewind)"}


def make_config(name: str, args: argparse.Namespace):
    from snndeploy.prune import config as cfglib

    per_step = max(1, args.budget // args.steps)
    common = {"lr": args.lr, "seed": args.seed, "eval_each_step": False}
    if name.startswith("criticality"):
        extra = {"weight_score": "post_magnitude" if name == "criticality_cw" else "post",
                 "regen": {"criticality_rand": "random", "criticality_grad": "gradient"}.get(name, "criticality")}
        return cfglib.CriticalityConfig(steps=args.steps, epochs_per_step=per_step, calib_batches=args.calib,
                                        **common, **extra)
    if name == "gmp":
        return cfglib.GMPConfig(steps=args.steps, epochs_per_step=per_step, **common)
    if name == "magnitude":
        return cfglib.MagnitudeConfig(epochs_per_step=args.budget, **common)
    if name == "random":
        return cfglib.RandomConfig(epochs_per_step=args.budget, **common)
    if name == "imp":
        return cfglib.IMPConfig(epochs_per_step=args.imp_epochs, **{**common, "eval_each_step": True})
    raise SystemExit(f"unknown method {name}")


def one_run(name: str, sparsity: float, args: argparse.Namespace, out: Path) -> dict:
    from snndeploy.loader import load_model
    from snndeploy.prune.job import PruneJob, run_prune
    from snndeploy.prune.registry import find_method
    from snndeploy.prune.runner import STATE_FILE

    report_path = out / "prune_report.json"
    if report_path.is_file():
        return json.loads(report_path.read_text())
    method = find_method("criticality" if name.startswith("criticality") else name)
    t0 = time.perf_counter()
    job = PruneJob(method, make_config(name, args), sparsity, False, args.data, out, source=str(args.model_path),
                   resume=(out / STATE_FILE).is_file(), batch_size=args.batch_size, subset=args.subset,
                   test_subset=args.test_subset, progress=False, log=None)
    result = run_prune(load_model(args.model_path), job)
    print(f"  {name} @ {sparsity}: accuracy {result['report']['accuracy_after']:.4f} "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return result["report"]


def imp_rows(report: dict, sparsities: list[float]) -> list[dict]:
    rows, epochs, steps, wall = [], 0, 0, 0.0
    history = report["history"]
    for h in history:
        epochs += h["epochs"]
        steps += h["optimizer_steps"]
        wall += h["wall_s"]
        h["_cum"] = (epochs, steps, wall)
    for s in sparsities:
        hit = next((h for h in history if h["sparsity"] >= s - 1e-4), None)
        if hit is None:
            continue
        e, st, w = hit["_cum"]
        rows.append({"method": "imp", "target": s, "sparsity": hit["sparsity"], "accuracy": hit["accuracy"],
                     "epochs": e, "optimizer_steps": st, "wall_s": w, "rounds": hit["round"] + 1,
                     "synops": None, "accuracy_before": report["accuracy_before"]})
    return rows


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    for name in dict.fromkeys(r["method"] for r in rows):
        pts = sorted((r["target"], r["accuracy"]) for r in rows if r["method"] == name)
        ax1.plot([p[0] for p in pts], [p[1] for p in pts], "o-" if name != "imp" else "s--", label=LABELS[name])
    dense = rows[0]["accuracy_before"]
    ax1.axhline(dense, color="gray", lw=0.8, ls=":", label=f"dense {dense:.3f}")
    ax1.set_xlabel("weight sparsity")
    ax1.set_ylabel("test accuracy")
    ax1.set_title(title)
    ax1.legend(fontsize=7)
    ax1.grid(alpha=0.3)
    names = list(dict.fromkeys(r["method"] for r in rows))
    targets = sorted({r["target"] for r in rows})
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        vals = [next((r["epochs"] for r in rows if r["method"] == name and r["target"] == t), 0) for t in targets]
        ax2.bar([i + k * width for i in range(len(targets))], vals, width, label=LABELS[name])
    ax2.set_xticks([i + 0.4 - width / 2 for i in range(len(targets))], [f"{t:.2f}" for t in targets])
    ax2.set_xlabel("target sparsity")
    ax2.set_ylabel("pruning cost (fine-tuning epochs)")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=("mlp", "cnn"), default="mlp")
    p.add_argument("--checkpoint", help="trained dense model (default for mlp: the lava-dl mnist-mlp-128 fixture)")
    p.add_argument("--data", default=None, help="dataset (mlp: mnist, cnn: nmnist)")
    p.add_argument("--sparsities", type=float, nargs="+", default=[0.9, 0.95, 0.98])
    p.add_argument("--methods", nargs="+", default=["criticality", "criticality_cw", "criticality_rand",
                                                    "criticality_grad", "magnitude", "gmp", "random"])
    p.add_argument("--budget", type=int, default=5, help="fine-tuning epochs of every method (equal budgets)")
    p.add_argument("--steps", type=int, default=5, help="pruning steps of criticality and GMP")
    p.add_argument("--imp-epochs", type=int, default=1, help="fine-tuning epochs per IMP round")
    p.add_argument("--no-imp", action="store_true")
    p.add_argument("--only-imp", action="store_true", help="run only IMP (e.g. in a second process)")
    p.add_argument("--calib", type=int, default=10, help="criticality calibration batches")
    p.add_argument("--subset", type=int, default=3000)
    p.add_argument("--test-subset", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    if args.checkpoint:
        args.model_path = Path(args.checkpoint)
    elif args.model == "mlp":
        args.model_path = settings.fixtures_dir() / "lava-dl" / "mnist-mlp-128" / "network.net"
    else:
        raise SystemExit("--model cnn needs --checkpoint (a trained N-MNIST CNN)")
    args.data = args.data or ("mnist" if args.model == "mlp" else "nmnist")
    out = args.out or ROOT / "results" / f"prune_criticality_{args.model}"
    runs = out / "runs"
    rows = []
    t_all = time.perf_counter()
    for s in args.sparsities:
        for name in [] if args.only_imp else args.methods:
            r = one_run(name, s, args, runs / f"{name}_{s:g}")
            rows.append({"method": name, "target": s, "sparsity": r["sparsity"]["weights"],
                         "accuracy": r["accuracy_after"], "epochs": r["cost"]["epochs"],
                         "optimizer_steps": r["cost"]["optimizer_steps"], "wall_s": r["cost"]["wall_s"],
                         "calibration_batches": r["cost"]["calibration_batches"],
                         "synops": r["synops_per_sample"]["total"], "accuracy_before": r["accuracy_before"]})
    if not args.no_imp:
        rows += imp_rows(one_run("imp", max(args.sparsities), args, runs / f"imp_{max(args.sparsities):g}"),
                         args.sparsities)
    settings_used = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    result = {"settings": settings_used, "rows": rows, "seconds": time.perf_counter() - t_all,
              "dense_accuracy": rows[0]["accuracy_before"]}
    out.mkdir(parents=True, exist_ok=True)
    from snndeploy.atomic import write_json

    write_json(out / "results.json", result)
    plot(rows, out / "results.png", f"{args.model.upper()} on {args.data} ({args.subset} train / "
                                    f"{args.test_subset} test samples)")
    print(f"\n{'method':<28} {'target':>6} {'sparsity':>8} {'acc':>7} {'epochs':>6} {'steps':>6} {'wall s':>7} "
          f"{'SynOps':>9}")
    for r in sorted(rows, key=lambda r: (r["target"], r["method"])):
        syn = f"{r['synops']:.0f}" if r["synops"] is not None else "-"
        print(f"{LABELS[r['method']]:<28} {r['target']:>6.2f} {r['sparsity']:>8.4f} {r['accuracy']:>7.4f} "
              f"{r['epochs']:>6} {r['optimizer_steps']:>6} {r['wall_s']:>7.1f} {syn:>9}")
    print(f"dense accuracy {result['dense_accuracy']:.4f}; results in {out}")


if __name__ == "__main__":
    main()
