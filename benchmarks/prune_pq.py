"""Accuracy vs density over the rewiring iterations: PQ (neuron, layer scope) against fixed-ratio rewiring, SET, RigL.

Every run starts from the same untrained network (sparse from scratch) and goes through the real pruning runner
(``snndeploy.prune.runner``), exactly as ``snndeploy prune --method pq|fixed|set|rigl`` does. The fixed ratio is
the one whose density trajectory ends where PQ's layer-scope run ended (same number of rewirings), and SET / RigL
run at that final density all along, so the comparison is at matched density.

    python benchmarks/prune_pq.py                 # both tasks, the bounded settings recorded in docs/benchmarks.md
    python benchmarks/prune_pq.py --task mlp --iterations 4 --epochs 1 --subset 500   # quicker
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import time
from pathlib import Path

import torch

import snndeploy  # noqa: F401  (before anything imports lava)
from snndeploy.models.build import build_model
from snndeploy.models.spec import load_spec
from snndeploy.prune import pq, set_rigl
from snndeploy.prune.finetune import DatasetTrainer
from snndeploy.prune.registry import find_method
from snndeploy.prune.runner import Runner, RunSpec

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TASKS = {
    "mlp": {"spec": "examples/mnist_mlp.yaml", "data": "mnist", "subset": 2000, "test": 1000, "batch": 32},
    "cnn": {"spec": "examples/nmnist_cnn.yaml", "data": "nmnist", "subset": 400, "test": 300, "batch": 32,
            "time_steps": 15},
}


def matched_ratio(d0: float, d_end: float, rewirings: int) -> float:
    """Fixed ratio c whose per-rewiring density factor 1 - c + c^2 takes d0 to d_end in ``rewirings`` steps."""
    if rewirings < 1 or d_end >= d0:
        return 0.0
    factor = (d_end / d0) ** (1.0 / rewirings)
    return (1.0 - math.sqrt(max(1.0 - 4.0 * (1.0 - factor), 0.0))) / 2.0


def iterations_of(report: dict) -> list[dict]:
    """One row per trained iteration: density trained at, test accuracy after it, per-layer density / PQ index."""
    rows = []
    for h in report["history"]:
        if h.get("step") == "select":
            continue
        rows.append({"iteration": h["round"], "density": h["density"], "accuracy": h.get("accuracy"),
                     "layers": {row["layer"]: {"density": row["density"], "pq_index": row["pq_index"]}
                                for row in h["layers"]},
                     "ratio": {u["unit"]: u["ratio_mean"] for u in h.get("units", [])}})
    vals = {h["validated_iteration"]: h["val_accuracy"] for h in report["history"] if "validated_iteration" in h}
    for row in rows:
        row["val_accuracy"] = vals.get(row["iteration"])
    return rows


def run(task: str, name: str, method: str, config, target: float, base, args, out: Path) -> dict:
    t = TASKS[task]
    net = copy.deepcopy(base)
    trainer = DatasetTrainer(t["data"], net, batch_size=args.batch_size or t["batch"],
                             subset=args.subset or t["subset"], test_subset=args.test_subset or t["test"],
                             seed=args.seed, progress=False, threads=1)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    result = Runner(RunSpec(find_method(method), config, target, False, t["spec"]), net, trainer,
                    out / task / name).run()
    report = result.report
    selected = next((h for h in report["history"] if h.get("step") == "select"), None)
    row = {"task": task, "run": name, "method": method, "scope": config.scope,
           "config": {k: v for k, v in dataclasses.asdict(config).items() if not isinstance(v, tuple)},
           "target_sparsity": target, "iterations": iterations_of(report),
           "selected_iteration": selected["selected_iteration"] if selected else None,
           "final_density": 1.0 - report["sparsity"]["weights"], "final_accuracy": report["accuracy_after"],
           "wall_s": time.perf_counter() - start, "epochs": report["cost"]["epochs"]}
    best = max(row["iterations"], key=lambda r: r["accuracy"] or 0.0)
    row["best_test"] = {"iteration": best["iteration"], "accuracy": best["accuracy"], "density": best["density"]}
    print(f"  {task:<4} {name:<11} final density {row['final_density']:.3f} acc {row['final_accuracy']:.4f} "
          f"(selected it. {row['selected_iteration']})  {row['wall_s']:.0f} s", flush=True)
    return row


def task_runs(task: str, args, out: Path, save) -> list[dict]:
    t = TASKS[task]
    spec = load_spec(ROOT / t["spec"])
    if "time_steps" in t and not args.full_time:
        spec = dataclasses.replace(spec, time_steps=t["time_steps"])
    torch.manual_seed(args.seed)
    base = build_model(spec)
    common = {"iterations": args.iterations, "epochs_per_step": args.epochs, "seed": args.seed}
    rows = _Rows(save)
    for scope in ("neuron", "layer"):
        cfg = pq.PQConfig(scope=scope, momentum_batches=args.momentum_batches, **common)
        rows.append(run(task, f"pq-{scope}", "pq", cfg, 0.0, base, args, out))
    d0, d_end = rows[-1]["iterations"][0]["density"], rows[-1]["iterations"][-1]["density"]
    ratio = matched_ratio(d0, d_end, args.iterations - 1)
    for scope in ("layer",):
        cfg = pq.FixedRatioConfig(scope=scope, ratio=round(ratio, 4), momentum_batches=args.momentum_batches, **common)
        rows.append(run(task, f"fixed-{scope}", "fixed", cfg, 0.0, base, args, out))
    if args.high_ratio > 0:
        cfg = pq.FixedRatioConfig(scope="layer", ratio=args.high_ratio, momentum_batches=args.momentum_batches,
                                  **common)
        rows.append(run(task, "fixed-high", "fixed", cfg, 0.0, base, args, out))
    target = round(1.0 - d_end, 4)
    rows.append(run(task, "set", "set", set_rigl.SETConfig(**common), target, base, args, out))
    rows.append(run(task, "rigl", "rigl", set_rigl.RigLConfig(**common), target, base, args, out))
    return rows


class _Rows(list):
    """A list that hands every appended run to ``save``."""

    def __init__(self, save):
        super().__init__()
        self.save = save

    def append(self, row: dict) -> None:
        super().append(row)
        self.save(row)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r["task"] for r in rows}, key=list(TASKS).index)
    fig, axes = plt.subplots(2, len(tasks), figsize=(6.5 * len(tasks), 8), squeeze=False)
    for col, task in enumerate(tasks):
        ax, ax2 = axes[0][col], axes[1][col]
        for r in (r for r in rows if r["task"] == task):
            its = r["iterations"]
            ax.plot([i["density"] for i in its], [i["accuracy"] for i in its], "o-", label=r["run"], ms=4)
            ax2.plot([i["iteration"] + 1 for i in its], [i["density"] for i in its], "o-", label=r["run"], ms=4)
        ax.invert_xaxis()
        ax.set_xlabel("density (trained at, per iteration)")
        ax.set_ylabel("test accuracy after the iteration")
        ax.set_title(f"{task}: accuracy vs density")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax2.set_xlabel("iteration")
        ax2.set_ylabel("density")
        ax2.set_title(f"{task}: density per iteration")
        ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(rows: list[dict]) -> str:
    lines = [f"{'task':<5}{'run':<12}{'ratio':>7}{'final dens':>11}{'final acc':>10}{'sel':>5}"
             f"{'best test acc @ dens':>22}{'wall s':>8}", "-" * 80]
    for r in rows:
        ratio = r["config"].get("ratio", "")
        ratio = f"{ratio:.3f}" if isinstance(ratio, float) else "adapt" if r["method"] == "pq" else "-"
        b = r["best_test"]
        lines.append(f"{r['task']:<5}{r['run']:<12}{ratio:>7}{r['final_density']:>11.3f}{r['final_accuracy']:>10.4f}"
                     f"{r['selected_iteration']!s:>5}{b['accuracy']:>13.4f} @ {b['density']:.3f}{r['wall_s']:>8.0f}")
    lines.append("")
    lines.append("accuracy per iteration (density in brackets):")
    for r in rows:
        its = " ".join(f"{i['accuracy']:.3f}({i['density']:.2f})" for i in r["iterations"])
        lines.append(f"  {r['task']:<4} {r['run']:<11} {its}")
    return "\n".join(lines)


def summarize(paths: list[Path]) -> str:
    """Markdown table over result files (several seeds): test accuracy and density per iteration, selected one."""
    runs = [(json.loads(p.read_text())["args"]["seed"], r) for p in paths for r in json.loads(p.read_text())["runs"]]
    lines = ["| task | run | seed | ratio | accuracy (density) per iteration | selected: accuracy @ density |",
             "|---|---|---|---|---|---|"]
    for seed, r in sorted(runs, key=lambda x: (list(TASKS).index(x[1]["task"]), x[1]["run"], x[0])):
        ratio = r["config"].get("ratio")
        ratio = f"{ratio:.3f}" if isinstance(ratio, float) else "adaptive" if r["method"] == "pq" else "-"
        its = ", ".join(f"{i['accuracy']:.3f} ({i['density']:.3f})" for i in r["iterations"])
        lines.append(f"| {r['task']} | {r['run']} | {seed} | {ratio} | {its} | "
                     f"{r['final_accuracy']:.3f} @ {r['final_density']:.3f} (it. {r['selected_iteration'] + 1}) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--summarize", type=Path, nargs="+", help="print a markdown table of these result files")
    parser.add_argument("--task", choices=[*TASKS, "all"], default="all")
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per iteration (Epoch_frequency)")
    parser.add_argument("--subset", type=int, help="training samples (default per task)")
    parser.add_argument("--test-subset", type=int, help="test samples (default per task)")
    parser.add_argument("--momentum-batches", type=int, default=10)
    parser.add_argument("--high-ratio", type=float, default=0.3, help="a second, larger fixed ratio (0: none)")
    parser.add_argument("--full-time", action="store_true", help="keep the CNN's 30 time steps")
    parser.add_argument("--batch-size", type=int, help="training batch size (default per task)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "prune_pq")
    parser.add_argument("--name", help="result file name under benchmarks/results (default from task and seed)")
    args = parser.parse_args()
    if args.summarize:
        print(summarize(args.summarize))
        return
    torch.set_num_threads(1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = args.name or (("prune_pq" if args.task == "all" else f"prune_pq_{args.task}")
                         + (f"_seed{args.seed}" if args.seed else ""))
    rows: list[dict] = []

    def save(row: dict) -> None:  # after every run, so a cut-short benchmark keeps what it measured
        rows.append(row)
        (RESULTS / f"{name}.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                           "runs": rows}, indent=1))

    for task in (TASKS if args.task == "all" else [args.task]):
        print(f"{task}:", flush=True)
        task_runs(task, args, args.out, save)
    plot(rows, RESULTS / f"{name}.png")
    print(table(rows))


if __name__ == "__main__":
    main()
