"""`snndeploy prune --method gradr|deepr` end to end on the trained lava-dl MNIST network and real MNIST (subsets):
report with the connectivity trajectory, plot, model, hardware estimate of the result, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from snndeploy.cli import main
from snndeploy.loader import load_model

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = ["--data", "mnist", "--subset", "160", "--test-subset", "80", "--batch-size", "40", "--no-progress"]


@pytest.fixture(scope="module")
def mlp_net(fixtures_dir) -> Path:
    return fixtures_dir / "mnist-mlp-128" / "network.net"


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "method.yaml"
    path.write_text(text)
    return path


def test_gradr_cli_reports_connectivity_and_the_estimator_counts_the_quantised_synapses(tmp_path, mlp_net, capsys):
    cfg = _config(tmp_path, "epochs: 2\nlr: 0.003\nlog_every: 2\n")
    out = tmp_path / "run"
    assert main(["prune", str(mlp_net), "--method", "gradr", "--alpha", "0.5", "--target-sparsity", "0.9",
                 "--out", str(out), "--config", str(cfg), "--json", *SMALL]) == 0
    report = json.loads(capsys.readouterr().out)["report"]
    assert report["config"]["alpha"] == 0.5 and report["target_sparsity"] == 0.9
    history = report["history"]
    assert len(history) == 2 and report["cost"]["epochs"] == 2 and report["cost"]["optimizer_steps"] == 8
    assert history[-1]["connectivity"] < history[0]["connectivity"] < 1.0
    # 8 optimizer steps do not take the prior to 90 %: the report says so instead of passing it over
    assert history[-1]["connectivity"] > 0.11 and report["target_reached"] is False
    points = [p for h in history for p in h["trajectory"]]
    assert points[0][0] == 0 and [p[0] for p in points] == sorted(p[0] for p in points)
    assert (out / "prune_report.png").stat().st_size > 1000 and (out / "spec.yaml").is_file()
    net = load_model(out / "model.pt")
    weights = [b.synapse.weight.detach() for b in net.blocks if hasattr(b, "synapse")]
    live = sum(int((w != 0).sum()) for w in weights)
    total = sum(w.numel() for w in weights)
    assert live == round(history[-1]["connectivity"] * total) == report["model"]["live_weights"]
    # the resource estimate of the pruned model counts the synapses that survive 8-bit quantisation
    assert main(["estimate", str(out / "model.pt"), "--json"]) in (0, 1)
    estimate = json.loads(capsys.readouterr().out)
    assert estimate["network"]["synapses_nonzero"] == round(history[-1]["connectivity_quantized"] * total)


def test_deepr_cli_runs_on_the_same_machinery(tmp_path, mlp_net, capsys):
    cfg = _config(tmp_path, "epochs: 1\nlr: 0.003\nallocation: layer\n")  # the authors' same p in every layer
    out = tmp_path / "run"
    assert main(["prune", str(mlp_net), "--method", "deepr", "--alpha", "0.5", "--sparsity", "0.3",
                 "--out", str(out), "--config", str(cfg), *SMALL]) == 0
    text = capsys.readouterr().out
    assert "connectivity" in text and "after 8-bit quantisation" in text
    report = json.loads((out / "prune_report.json").read_text())
    # the start's cut to the fixed counts in refitted sub-steps (snndeploy.prune.descent), then Deep R's training
    assert [r["kind"] for r in report["records"]] == ["prune_weights", "reassign_ineffective", "reconstruct"] * 5 + [
        "descent", "deepr"]
    assert report["sparsity"]["weights"] <= 0.3 + 1e-3  # each layer keeps at least 70 % of its connections
    assert report["target_reached"] and "not reached" not in text


@pytest.mark.parametrize("args,needle", [
    (["--method", "gradr", "--target-sparsity", "0.3"], "[0.5, 1)"),
    (["--method", "magnitude", "--sparsity", "0.5", "--alpha", "0.1"], "--alpha applies to gradr"),
    (["--method", "gradr", "--sparsity", "0.9", "--alpha", "-1"], "--alpha must be >= 0"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, mlp_net, capsys, args, needle):
    out = tmp_path / "run"
    assert main(["prune", str(mlp_net), *args, "--out", str(out), *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not out.exists()
