"""Issue 20's cost goal from the suite's points: accuracy against training epochs at one sparsity, per budget.

Reads finished grid points of ``benchmarks/prune_suite.py`` from every suite results folder (one per fine-tuning
budget: ``prune_suite`` holds 2 epochs in 2 steps, ``prune_suite_4ep`` 4, ``prune_suite_8ep_4steps`` 8 in 4 steps,
...; the steps are read from each point's config, IMP's budgets are told apart by their point names), groups them
by method, steps and epochs, and answers the goal "criticality reaches IMP's accuracy with >= 10x fewer epochs" with
measured budgets only (criticality's forward-only calibration batches, which no epoch counts, are listed beside
them): for every criticality budget, the cheapest IMP budget whose mean accuracy is at least
criticality's mean, and back; the ratio of IMP's epochs to criticality's is bounded by the measured budgets on
either side of the match (nothing is interpolated). Trains nothing; prints a table, writes JSON and a plot.

    .venv/bin/python benchmarks/prune_cost.py --net mnist-mlp-128 --sparsity 0.95
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path

import matplotlib

from snndeploy.atomic import write_json

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the headless backend is chosen)
from matplotlib.ticker import NullFormatter, ScalarFormatter  # noqa: E402

ROOT = Path(__file__).resolve().parent / "results"
# every suite results folder (one per budget: prune_suite_4ep, prune_suite_8ep_4steps, ...)
FOLDERS = tuple(sorted(p.parent.name for p in ROOT.glob("prune_suite*/points")))
CRITICALITY = "criticality_ratemag_rel0.016_reassign"  # the suite's name of criticality with its defaults
GOAL_RATIO = 10.0  # issue 20: criticality reaches IMP's accuracy with >= 10x fewer epochs


def budgets(folders: list[Path], net: str, sparsity: float, reference: str) -> list[dict]:
    """Mean and std of the test accuracy over seeds per (method, steps, epochs) of IMP's points and ``reference``'s;
    IMP's budget in words from the points' config."""
    groups: dict[tuple[str, int, float], list[dict]] = defaultdict(list)
    for folder in folders:
        for path in sorted((folder / "points").glob(f"{net}__*__{sparsity:g}__s*.json")):
            rec = json.loads(path.read_text())
            if rec["method"] == reference or is_imp(rec["method"]):
                # the steps are not in the point names: each folder holds one count
                groups[(rec["method"], rec["config"]["steps"], rec["cost"]["epochs"])].append(rec)
    rows = []
    for (m, k, e), recs in sorted(groups.items()):
        accuracies = [100 * r["accuracy_after"] for r in recs]
        rows.append({"method": m, "steps": k, "epochs": e, "name": m if is_imp(m) else f"{m}, {k} steps",
                     "budget": imp_budget(recs[-1]["config"]) if is_imp(m) else f"{k} steps",
                     "seeds": len(recs), "mean": statistics.mean(accuracies),
                     "std": statistics.stdev(accuracies) if len(recs) > 1 else 0.0,
                     "calibration_batches": max(r["cost"]["calibration_batches"] for r in recs)})
    return rows


def is_imp(method: str) -> bool:
    return method.split("_")[0] == "imp"


def imp_budget(config: dict) -> str:
    return f"{config['rate']:.0%} per round, {config['epochs_per_step']} ep./round"


def frontier(rows: list[dict]) -> list[dict]:
    """The most accurate row per epoch count, cheapest first (a budget is its epochs, whatever the steps)."""
    best: dict[float, dict] = {}
    for r in rows:
        if r["epochs"] not in best or r["mean"] > best[r["epochs"]]["mean"]:
            best[r["epochs"]] = r
    return [best[e] for e in sorted(best)]


def matches(rows: list[dict], reference: str) -> list[dict]:
    """Both ways: for every budget of one side (criticality, IMP), the cheapest budget of the other side whose mean
    accuracy is at least as high, and the bounds that puts on IMP's epochs over criticality's (the goal: >= 10)."""
    sides = {"criticality": [r for r in rows if r["method"] == reference],
             "imp": [r for r in rows if is_imp(r["method"])]}
    out = []
    for side, other in (("criticality", "imp"), ("imp", "criticality")):
        budgets_other = frontier(sides[other])
        for row in sorted(sides[side], key=lambda r: (r["epochs"], r["steps"])):
            at = next((i for i, r in enumerate(budgets_other) if r["mean"] >= row["mean"]), None)
            match = None if at is None else budgets_other[at]
            low, high = bounds(row["epochs"], [r["epochs"] for r in budgets_other], at, side == "imp")
            out.append({"side": side, "method": row["name"], "epochs": row["epochs"], "accuracy": row["mean"],
                        "match": match and match["name"], "match_epochs": match and match["epochs"],
                        "match_accuracy": match and match["mean"], "ratio_low": low, "ratio_high": high,
                        "goal_met": low >= GOAL_RATIO})
    return out


def bounds(epochs: float, other: list[float], at: int | None, imp_side: bool) -> tuple[float, float]:
    """IMP's epochs over criticality's, bounded by measured budgets only: the other side needs more epochs than its
    last budget short of the accuracy (none: more than 0) and at most those of the first that reaches it (none: more
    than its largest)."""
    above = math.inf if at is None else other[at]
    below = (other[-1] if other else 0.0) if at is None else (other[at - 1] if at > 0 else 0.0)
    if imp_side:  # the other side is criticality: IMP's epochs over an unknown count in (below, above]
        return epochs / above, (epochs / below if below else math.inf)
    return below / epochs, above / epochs


def ratio_text(low: float, high: float) -> str:
    if high == math.inf:
        return f">= {low:.1f}x" if low else "unknown"
    return f"<= {high:.1f}x" if low == 0 else f"{low:.1f}-{high:.1f}x"


def table(rows: list[dict], found: list[dict]) -> str:
    lines = ["| method | epochs | forward-only calibration batches | seeds | accuracy (mean +- std) |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['epochs']:g} | {r['calibration_batches']} | {r['seeds']} | "
              f"{r['mean']:.2f} +- {r['std']:.2f} |" for r in rows]
    lines += ["", "| budget | accuracy | cheapest budget of the other side at least as accurate | its epochs | "
              "IMP / criticality epochs |", "|---|---|---|---|---|"]
    for f in found:
        match = "none measured" if f["match"] is None else f"{f['match']} ({f['match_accuracy']:.2f})"
        lines.append(f"| {f['method']}, {f['epochs']:g} ep. | {f['accuracy']:.2f} | {match} | "
                     f"{f['match_epochs'] or ''} | {ratio_text(f['ratio_low'], f['ratio_high'])} |")
    return "\n".join(lines)


def plot(rows: list[dict], net: str, sparsity: float, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7.5, 5))
    curves = {"IMP (budgets)": [r for r in rows if is_imp(r["method"])]}
    for steps in sorted({r["steps"] for r in rows if not is_imp(r["method"])}):
        curves[f"criticality (default), {steps} steps"] = [r for r in rows
                                                           if not is_imp(r["method"]) and r["steps"] == steps]
    styles = iter([{"color": "tab:red", "marker": "s"}, {"color": "tab:blue", "marker": "o"},
                   {"color": "tab:green", "marker": "^"}, {"color": "tab:purple", "marker": "D"}])
    for name, mine in curves.items():
        mine = sorted(mine, key=lambda r: r["epochs"])
        ax.errorbar([r["epochs"] for r in mine], [r["mean"] for r in mine], yerr=[r["std"] for r in mine],
                    capsize=3, ls="-", label=name, **next(styles, {}))
    for r in curves["IMP (budgets)"]:
        ax.annotate(r["budget"], (r["epochs"], r["mean"]), fontsize=7, textcoords="offset points",
                    xytext=(5, -12))
    ax.set_xscale("log")
    ax.set_xticks(sorted({r["epochs"] for r in rows}))  # the budgets measured
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.margins(x=0.2)
    ax.set_xlabel("training epochs (all rounds, dense training included)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{net} at {sparsity:.0%} sparsity: accuracy per budget (mean +- std over seeds)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--net", default="mnist-mlp-128")
    p.add_argument("--sparsity", type=float, default=0.95)
    p.add_argument("--folders", nargs="+", default=list(FOLDERS), help="results folders under benchmarks/results")
    p.add_argument("--reference", default=CRITICALITY, help="the suite point name compared with IMP")
    p.add_argument("--out", type=Path, default=ROOT / "prune_cost")
    args = p.parse_args()
    folders = [ROOT / f for f in args.folders if (ROOT / f / "points").is_dir()]
    rows = budgets(folders, args.net, args.sparsity, args.reference)
    if not rows:
        raise SystemExit(f"{args.net} at {args.sparsity:g}: no points in {', '.join(args.folders)}")
    found = matches(rows, args.reference)
    stem = f"{args.net}_{args.sparsity:g}"
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"{stem}.json", {"net": args.net, "sparsity": args.sparsity, "goal_ratio": GOAL_RATIO,
                                           "budgets": rows, "matches": found})
    plot(rows, args.net, args.sparsity, args.out / f"{stem}.png")
    print(table(rows, found))


if __name__ == "__main__":
    main()
