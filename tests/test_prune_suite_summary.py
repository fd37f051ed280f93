"""benchmarks/prune_suite.py --summary-only on committed grid points: the defaults table says what ran and what not."""
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POINTS = ROOT / "benchmarks" / "results" / "prune_suite" / "points"


def test_defaults_table_from_committed_points(tmp_path):
    chosen = sorted(POINTS.glob("mnist-mlp-128__gradr__0.9__s*.json")) + sorted(
        POINTS.glob("mnist-mlp-128__gmp_rel0.016_reassign_recon_sub5__*.json"))
    assert len(chosen) >= 6, "the committed suite points are missing"
    (tmp_path / "points").mkdir()
    for path in chosen:
        shutil.copy(path, tmp_path / "points" / path.name)
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "prune_suite.py"), "--summary-only",
                    "--results", str(tmp_path), "--work", str(tmp_path / "runs")], check=True, capture_output=True)
    summary = (tmp_path / "summary.md").read_text()
    head = summary.split("Every point:")[0]
    rows = {line.split(" | ")[0].strip("| "): line for line in head.splitlines() if line.startswith("| ")}
    assert "| method | 0.9 | 0.95 | 0.98 |" in head
    # GMP's default (5 refitted sub-steps) ran at every sparsity; Grad R learns its sparsity and ends short of 0.9
    assert "not run" not in rows["GMP"]
    assert " at 0.2" in rows["Grad R"].split(" | ")[1]
    assert rows["IMP (rewind to epoch k)"].count("not run") == 3
    assert (tmp_path / "mnist-mlp-128.png").stat().st_size > 10_000


def load_suite():
    spec = importlib.util.spec_from_file_location("prune_suite", ROOT / "benchmarks" / "prune_suite.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_imp_budget_names_its_points():
    suite = load_suite()
    plain = suite.parser().parse_args([])
    assert suite.point_config("mnist-mlp-128", "imp", 0, plain)[1] == "imp"  # the committed IMP points' name
    args = suite.parser().parse_args(["--imp-rate", "0.5", "--imp-epochs", "1"])
    config, name = suite.point_config("mnist-mlp-128", "imp", 0, args)
    assert (config.rate, config.epochs_per_step, name) == (0.5, 1, "imp_rate0.5_e1")
    assert config.dense_epochs > config.rewind_epoch  # 1-epoch rounds still train densely past the rewind point
    assert suite.label(name) == "IMP (rewind to epoch k), pruned per round 0.5, epochs per round 1"
    # the rate suffix needs a number: criticality_ratemag stays one method name
    assert suite.point_config("mnist-mlp-128", "criticality_ratemag", 0, args)[1].startswith("criticality_ratemag_")
    assert suite.label("criticality_ratemag") == suite.LABELS["criticality_ratemag"]


def test_cost_matches_from_committed_points(tmp_path):
    """benchmarks/prune_cost.py: criticality's budget at 95 % against IMP's, from the committed points."""
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "prune_cost.py"), "--net", "mnist-mlp-128",
                    "--sparsity", "0.95", "--folders", "prune_suite", "--out", str(tmp_path)], check=True,
                   capture_output=True)
    result = json.loads((tmp_path / "mnist-mlp-128_0.95.json").read_text())
    criticality = [json.loads(p.read_text())["accuracy_after"] for p in
                   POINTS.glob("mnist-mlp-128__criticality_ratemag_rel0.016_reassign__0.95__s*.json")]
    mine = next(m for m in result["matches"] if m["side"] == "criticality" and m["epochs"] == 2)
    assert abs(mine["accuracy"] - 100 * statistics.mean(criticality)) < 1e-9
    imp = {r["method"]: r for r in result["budgets"] if r["method"].startswith("imp")}
    assert mine["match"] in imp and imp[mine["match"]]["mean"] >= mine["accuracy"]
    cheaper = [r for r in imp.values() if r["epochs"] < mine["match_epochs"]]
    assert all(r["mean"] < mine["accuracy"] for r in cheaper)  # the cheapest IMP budget at least as accurate
    assert mine["ratio_high"] == mine["match_epochs"] / 2  # IMP needs at most that budget, more than any cheaper
    assert mine["ratio_low"] == max((r["epochs"] for r in cheaper), default=0) / 2
    assert mine["goal_met"] == (mine["ratio_low"] >= 10)
    assert (tmp_path / "mnist-mlp-128_0.95.png").stat().st_size > 10_000


def test_cost_budget_is_the_best_at_its_epochs():
    """Two criticality runs of 8 epochs (2 and 4 steps) are one budget for IMP's side: the better of them."""
    spec = importlib.util.spec_from_file_location("prune_cost", ROOT / "benchmarks" / "prune_cost.py")
    cost = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cost)
    ref = "criticality_ratemag_rel0.016_reassign"
    rows = [{"method": ref, "name": f"{ref}, {k} steps", "steps": k, "epochs": e, "mean": m}
            for k, e, m in ((2, 4, 93.0), (2, 8, 93.5), (4, 8, 94.6))]
    rows.append({"method": "imp", "name": "imp", "steps": 1, "epochs": 30, "mean": 94.5})
    imp_row = next(m for m in cost.matches(rows, ref) if m["side"] == "imp")
    assert imp_row["match"] == f"{ref}, 4 steps"
    assert (imp_row["ratio_low"], imp_row["ratio_high"]) == (30 / 8, 30 / 4)  # criticality needs 4 < epochs <= 8
