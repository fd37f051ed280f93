"""`snndeploy prune --method pq|fixed|set|rigl --scope ...` end to end on UCI digits (real data, real SLAYER net)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from snndeploy.cli import main
from snndeploy.loader import load_model

SPEC = """name: digits_mlp
input_shape: [64]
time_steps: 8
quantize: false
neuron: {kind: cuba, threshold: 1.25, current_decay: 0.25, voltage_decay: 0.03, tau_grad: 0.03, scale_grad: 3.0}
blocks:
  - {kind: dense, out: 48}
  - {kind: dense, out: 10}
"""
SMALL = ["--data", "uci-digits", "--subset", "160", "--test-subset", "60", "--batch-size", "40", "--no-progress"]


@pytest.fixture()
def files(tmp_path) -> tuple[Path, Path]:
    spec, cfg = tmp_path / "net.yaml", tmp_path / "cfg.yaml"
    spec.write_text(SPEC)
    cfg.write_text("iterations: 3\nepochs_per_step: 1\nmomentum_batches: 2\ninit: uniform\n")
    return spec, cfg


def live_density(model: Path) -> float:
    net = load_model(model)
    weights = [block.synapse.weight.detach() for block in net.blocks]
    return sum(int((w != 0).sum()) for w in weights) / sum(w.numel() for w in weights)


def test_pq_layer_scope_writes_report_with_per_layer_density_and_pq_index(tmp_path, files, capsys):
    spec, cfg = files
    out = tmp_path / "pq"
    assert main(["prune", str(spec), "--method", "pq", "--scope", "layer", "--sparsity", "0", "--config", str(cfg),
                 "--out", str(out), *SMALL]) == 0
    report = json.loads((out / "prune_report.json").read_text())
    assert report["method"] == "pq" and report["config"]["scope"] == "layer"
    history = report["history"]
    assert [h["step"] for h in history] == ["init", "rewire", "rewire", "select"]
    for h in history:
        assert [row["layer"] for row in h["layers"]] == ["blocks.0", "blocks.1"]
        assert all(0 <= row["pq_index"] < 1 and 0 < row["density"] <= 1 for row in h["layers"])
    assert [u["unit"] for u in history[1]["units"]] == ["blocks.0", "blocks.1"]
    densities = [h["density"] for h in history[:3]]
    assert densities[0] == pytest.approx(0.5, abs=1e-3) and densities[2] < densities[1] < densities[0]
    chosen = history[-1]["selected_iteration"]
    assert live_density(out / "model.pt") == pytest.approx(history[chosen]["density"], abs=1e-6)
    assert (out / "prune_report.png").stat().st_size > 10_000
    text = capsys.readouterr().out
    assert "pq (unstructured)" in text and "not reached" not in text and report["target_reached"]


def test_pq_short_of_its_target_says_so(tmp_path, files, capsys):
    spec, cfg = files
    out = tmp_path / "pq"
    assert main(["prune", str(spec), "--method", "pq", "--sparsity", "0.95", "--config", str(cfg),
                 "--out", str(out), *SMALL]) == 0
    report = json.loads((out / "prune_report.json").read_text())
    assert report["sparsity"]["weights"] < 0.9 and report["target_reached"] is False
    line = next(line for line in capsys.readouterr().out.splitlines() if "not reached" in line)
    assert "0.9500" in line and "more iterations" in line


def test_set_with_neuron_scope_and_a_scope_that_does_not_fit(tmp_path, files, capsys):
    spec, _ = files
    cfg = tmp_path / "set.yaml"
    cfg.write_text("iterations: 2\nepochs_per_step: 1\n")
    out = tmp_path / "set"
    assert main(["prune", str(spec), "--method", "set", "--scope", "neuron", "--sparsity", "0.7", "--config",
                 str(cfg), "--out", str(out), "--json", *SMALL]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["report"]["config"]["scope"] == "neuron"
    assert result["report"]["sparsity"]["weights"] == pytest.approx(0.7, abs=2e-3)
    bad = tmp_path / "bad"
    assert main(["prune", str(spec), "--method", "magnitude", "--scope", "neuron", "--sparsity", "0.5",
                 "--out", str(bad), *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert "--scope neuron does not fit --method magnitude" in err and "\n" not in err and not bad.exists()


def test_set_without_a_sparsity_is_refused_before_anything_is_written(tmp_path, files, capsys):
    spec, _ = files
    out = tmp_path / "rigl"
    assert main(["prune", str(spec), "--method", "rigl", "--sparsity", "0", "--out", str(out), *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert "rigl keeps a constant sparsity" in err and "\n" not in err and not out.exists()
