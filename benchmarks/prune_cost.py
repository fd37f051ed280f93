"""Issue 20's cost goal from the suite's points: accuracy against training epochs at one sparsity, per budget.

Reads finished grid points of ``benchmarks/prune_suite.py`` from several results folders (one per fine-tuning
budget: ``prune_suite`` holds 2 epochs, ``prune_suite_4ep`` 4, ...; IMP's budgets are told apart by their point
names), groups them by method and epochs, and answers the goal "criticality reaches IMP's accuracy with >= 10x fewer
epochs" with measured budgets only: for every criticality budget, the cheapest IMP budget whose mean accuracy is at
least criticality's mean, and the ratio of their epochs (nothing is interpolated: when even IMP's cheapest measured
budget is above criticality's accuracy the ratio is an upper bound, when none reaches it a lower bound). Trains
nothing; prints a table, writes JSON and a plot.

    .venv/bin/python benchmarks/prune_cost.py --net mnist-mlp-128 --sparsity 0.95
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

import matplotlib

from snndeploy.atomic import write_json

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the headless backend is chosen)

ROOT = Path(__file__).resolve().parent / "results"
FOLDERS = ("prune_suite", "prune_suite_4ep", "prune_suite_8ep", "prune_suite_10ep")
CRITICALITY = "criticality_ratemag_rel0.016_reassign"  # the suite's name of criticality with its defaults
GOAL_RATIO = 10.0  # issue 20: criticality reaches IMP's accuracy with >= 10x fewer epochs


def budgets(folders: list[Path], net: str, sparsity: float, methods: list[str]) -> list[dict]:
    """Mean and std of the test accuracy over seeds per (method, epochs) among the points of ``methods``."""
    groups: dict[tuple[str, float], list[float]] = defaultdict(list)
    for folder in folders:
        for path in sorted((folder / "points").glob(f"{net}__*__{sparsity:g}__s*.json")):
            rec = json.loads(path.read_text())
            if rec["method"] in methods:
                groups[(rec["method"], rec["cost"]["epochs"])].append(100 * rec["accuracy_after"])
    return [{"method": m, "epochs": e, "seeds": len(a), "mean": statistics.mean(a),
             "std": statistics.stdev(a) if len(a) > 1 else 0.0} for (m, e), a in sorted(groups.items())]


def is_imp(row: dict) -> bool:
    return row["method"].split("_")[0] == "imp"


def matches(rows: list[dict], reference: str) -> list[dict]:
    """Both ways: for every budget of one side (criticality, IMP), the cheapest budget of the other side whose mean
    accuracy is at least as high, and IMP's epochs over criticality's (the goal: >= 10)."""
    sides = {"criticality": [r for r in rows if r["method"] == reference],
             "imp": sorted((r for r in rows if is_imp(r)), key=lambda r: r["epochs"])}
    sides["criticality"].sort(key=lambda r: r["epochs"])
    out = []
    for side, other in (("criticality", "imp"), ("imp", "criticality")):
        for row in sides[side]:
            match = next((r for r in sides[other] if r["mean"] >= row["mean"]), None)
            out.append({"side": side, "method": row["method"], "epochs": row["epochs"], "accuracy": row["mean"],
                        "match": match and match["method"], "match_epochs": match and match["epochs"],
                        "match_accuracy": match and match["mean"], "bound": bound(match, sides[other]),
                        "imp_over_criticality": match and (match["epochs"] / row["epochs"] if side == "criticality"
                                                           else row["epochs"] / match["epochs"])})
    return out


def bound(match: dict | None, candidates: list[dict]) -> str:
    """How far a ratio from measured budgets holds: the cheapest candidate measured may already be more than needed
    (the true epochs are at most its), one further up was needed (between it and the one below), or none reached."""
    if match is None:
        return "none reached"
    return "at most" if match is candidates[0] else "between"


def table(rows: list[dict], found: list[dict]) -> str:
    lines = ["| method | epochs | seeds | accuracy (mean +- std) |", "|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['epochs']:g} | {r['seeds']} | {r['mean']:.2f} +- {r['std']:.2f} |" for r in rows]
    lines += ["", "| budget | accuracy | cheapest budget of the other side at least as accurate | its epochs | "
              "IMP / criticality epochs |", "|---|---|---|---|---|"]
    for f in found:
        if f["match"] is None:
            lines.append(f"| {f['method']}, {f['epochs']:g} ep. | {f['accuracy']:.2f} | none measured | | |")
            continue
        ratio = f["imp_over_criticality"]
        # at most: the other side's cheapest budget measured already reaches it, so it might need fewer epochs
        text = {"at most": f"{'<=' if f['side'] == 'criticality' else '>='} {ratio:.1f}x"}.get(f["bound"],
                                                                                          f"{ratio:.1f}x")
        lines.append(f"| {f['method']}, {f['epochs']:g} ep. | {f['accuracy']:.2f} | {f['match']} "
                     f"({f['match_accuracy']:.2f}) | {f['match_epochs']:g} | {text} |")
    return "\n".join(lines)


def plot(rows: list[dict], net: str, sparsity: float, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for family, style in (("imp", {"color": "tab:red", "marker": "s"}), ("criticality", {"color": "tab:blue",
                                                                                         "marker": "o"})):
        mine = sorted((r for r in rows if (is_imp(r) if family == "imp" else not is_imp(r))), key=lambda r: r["epochs"])
        if mine:
            ax.errorbar([r["epochs"] for r in mine], [r["mean"] for r in mine], yerr=[r["std"] for r in mine],
                        capsize=3, ls="-", label="IMP (budgets)" if family == "imp" else "criticality (default)",
                        **style)
            for r in mine:
                ax.annotate(r["method"].removeprefix("imp").strip("_") or "", (r["epochs"], r["mean"]), fontsize=7,
                            textcoords="offset points", xytext=(4, -10))
    ax.set_xscale("log")
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
    names = {json.loads(path.read_text())["method"] for f in folders for path in (f / "points").glob("*.json")}
    methods = sorted(n for n in names if is_imp({"method": n})) + [args.reference]
    rows = budgets(folders, args.net, args.sparsity, methods)
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
