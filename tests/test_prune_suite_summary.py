"""benchmarks/prune_suite.py --summary-only on committed grid points: the defaults table says what ran and what not."""
import shutil
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
