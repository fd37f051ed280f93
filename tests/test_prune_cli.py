"""`snndeploy prune` end to end on a real trained lava-dl MNIST network and real MNIST data (small subsets)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from prune_kill import kill_after_round

from snndeploy.cli import main
from snndeploy.loader import load_model
from snndeploy.models.checkpoint import load_checkpoint
from snndeploy.prune.runner import DRIVE_BATCHES

SMALL = ["--data", "mnist", "--subset", "160", "--test-subset", "80", "--batch-size", "40", "--no-progress"]


@pytest.fixture(scope="module")
def mlp_net(fixtures_dir) -> Path:
    return fixtures_dir / "mnist-mlp-128" / "network.net"


def _config(tmp_path: Path, text: str, name: str = "method.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _masks(path: Path) -> list[torch.Tensor]:
    net = load_model(path)
    return [block.synapse.weight.detach() == 0 for block in net.blocks if hasattr(block, "synapse")]


def test_criticality_run_writes_report_model_and_plot(tmp_path, mlp_net, capsys):
    cfg = _config(tmp_path, "steps: 2\nepochs_per_step: 1\ncalib_batches: 1\ndelta: 0.2\n")
    out = tmp_path / "run"
    code = main(["prune", str(mlp_net), "--method", "criticality", "--sparsity", "0.8", "--out", str(out),
                 "--config", str(cfg), "--json", *SMALL])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    report = json.loads((out / "prune_report.json").read_text())
    assert result["report"]["accuracy_after"] == report["accuracy_after"]
    assert report["sparsity"]["weights"] == pytest.approx(0.8, abs=1e-4)
    assert report["cost"]["epochs"] == 2 and report["cost"]["optimizer_steps"] == 2 * 4
    # criticality's calibration (1 batch per step) and drive_limit's (4 batches, once: this network is driven far
    # beyond threshold, docs/prune.md)
    assert "factor" in report["history"][0]["drive"] and "drive" not in report["history"][1]
    assert report["cost"]["calibration_batches"] == 2 + DRIVE_BATCHES and report["cost"]["wall_s"] > 0
    assert report["config"]["lr_rule"] == "relative"  # auto: a netx file is an imported network
    assert 0.0 <= report["accuracy_before"] <= 1.0 and len(report["history"]) == 2
    assert all(h["regrown"] > 0 for h in report["history"])
    kinds = [r["kind"] for r in report["records"]]
    assert kinds == ["prune_weights", "regrow_weights", "reassign_ineffective"] * 2  # criticality's defaults
    assert report["synops_per_sample"]["total"] > 0
    assert (out / "prune_report.png").stat().st_size > 1000
    model = report["model"]
    assert model["live_weights"] == sum(int((~m).sum()) for m in _masks(out / "model.pt"))
    # every pruned weight is a zero in the model; a layer kept whole (ERK keeps the 10-way output) may hold zeros
    # of its own (8-bit weights that were 0 in the netx file)
    assert model["sparsity"] >= report["sparsity"]["weights"] - 1e-9
    # the same folder again: refused without --resume/--force, nothing overwritten
    before = (out / "prune_report.json").read_text()
    assert main(["prune", str(mlp_net), "--method", "criticality", "--sparsity", "0.8", "--out", str(out),
                 *SMALL]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert (out / "prune_report.json").read_text() == before


def test_a_fractional_budget_reaches_the_checkpoint_unrounded(tmp_path, mlp_net):
    cfg = _config(tmp_path, "epochs_per_step: 0.5\ncut_substeps: 1\nreconstruct: false\n")
    out = tmp_path / "run"
    assert main(["prune", str(mlp_net), "--method", "magnitude", "--sparsity", "0.5", "--out", str(out),
                 "--config", str(cfg), *SMALL]) == 0
    assert json.loads((out / "prune_report.json").read_text())["cost"]["epochs"] == 0.5
    checkpoint = load_checkpoint(out / "model.pt")
    assert checkpoint["extra"]["pruning"]["epochs"] == 0.5 and checkpoint["epoch"] == 0


def test_structured_l1filter_shrinks_the_model(tmp_path, mlp_net, capsys):
    cfg = _config(tmp_path, "epochs_per_step: 1\nscope: global\n")
    out = tmp_path / "run"
    assert main(["prune", str(mlp_net), "--method", "l1filter", "--sparsity", "0.5", "--out", str(out),
                 "--config", str(cfg), "--json", *SMALL]) == 0
    report = json.loads(capsys.readouterr().out)["report"]
    net = load_model(out / "model.pt")
    widths = [b.out for b in net.spec.blocks]
    assert widths[-1] == 10 and sum(widths[:-1]) == round(0.5 * (128 + 64))
    assert net.blocks[1].synapse.weight.shape[1] == widths[0]
    assert report["model"]["neurons"] == sum(widths) and report["sparsity"]["channels"] == pytest.approx(0.5)
    x = torch.zeros(2, 784, net.spec.time_steps)
    assert net(x).shape == (2, 10, net.spec.time_steps)


@pytest.mark.parametrize("args,needle", [
    (["--method", "magnitude", "--sparsity", "1.5"], "1.5 is not in the range 0<=x<1"),
    (["--method", "magnitude", "--sparsity", "0.5", "--config", "MISSING"], "method config not found"),
    (["--method", "gmp", "--sparsity", "0.5", "--config", "BAD"], "unknown method config key(s) stepz"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, mlp_net, capsys, args, needle):
    bad = _config(tmp_path, "stepz: 1\n")
    args = [a.replace("MISSING", str(tmp_path / "none.yaml")).replace("BAD", str(bad)) for a in args]
    out = tmp_path / "run"
    assert main(["prune", str(mlp_net), *args, "--out", str(out), *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not out.exists()


def _prune_cmd(model: Path, out: Path, cfg: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "snndeploy.cli", "prune", str(model), "--method", "criticality", "--sparsity", "0.9",
            "--out", str(out), "--config", str(cfg), *SMALL, *extra]


def test_kill_during_pruning_then_resume_gives_identical_masks(tmp_path, mlp_net):
    cfg = _config(tmp_path, "steps: 3\nepochs_per_step: 1\ncalib_batches: 1\neval_each_step: false\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_prune_cmd(mlp_net, full, cfg), check=True, env=env, capture_output=True)
    saved = kill_after_round(_prune_cmd(mlp_net, killed, cfg), killed, 1, env, poll_s=0.2)
    assert not (killed / "prune_report.json").exists()
    done_rounds = saved["next_round"]
    assert 1 <= done_rounds < 3
    subprocess.run(_prune_cmd(mlp_net, killed, cfg, "--resume"), check=True, env=env, capture_output=True)
    for a, b in zip(_masks(full / "model.pt"), _masks(killed / "model.pt"), strict=True):
        assert torch.equal(a, b)
    report_full = json.loads((full / "prune_report.json").read_text())
    report_killed = json.loads((killed / "prune_report.json").read_text())
    assert report_killed["records"] == report_full["records"]
    assert report_killed["accuracy_after"] == report_full["accuracy_after"]
