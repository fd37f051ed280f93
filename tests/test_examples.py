"""Every example script runs on its tiny setting (real data, real Lava)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[1] / "examples"
pytestmark = pytest.mark.lava


def run_example(name: str, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True,
                            timeout=timeout, env={**os.environ, "MPLBACKEND": "Agg"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def summary_of(result: subprocess.CompletedProcess) -> dict:
    text = result.stdout
    return json.loads(text[text.index("{\n"):])


def test_prune_lava_dl_mnist(tmp_path):
    summary = summary_of(run_example("prune_lava_dl_mnist.py", "--tiny", "--out", str(tmp_path / "run")))
    assert summary["verified"] is True
    assert abs(summary["sparsity"]["weights"] - 0.9) < 0.01
    assert summary["dense_accuracy"] > 0.5  # the trained lava-dl network on real MNIST digits


def test_nmnist_fit_cores(tmp_path):
    result = run_example("nmnist_fit_cores.py", "--tiny", "--out", str(tmp_path / "run"))
    summary = summary_of(result)
    budget = int(result.stdout.split("budget: ")[1].split()[0])
    assert summary["verified"] is True
    assert summary["targets"][0]["verdict"] == "fits" and summary["targets"][0]["cores"] <= budget


def test_import_nir_deploy(tmp_path):
    result = run_example("import_nir_deploy.py", "--out", str(tmp_path))
    assert "AGREE" in result.stdout
    bundle = tmp_path / "bundle"
    assert (bundle / "run_loihi2.py").is_file()
    compile((bundle / "run_loihi2.py").read_text(), "run_loihi2.py", "exec")
