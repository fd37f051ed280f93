"""`snndeploy prune --method sca --keep-channels F` end to end on real N-MNIST events: report, plot, shrunk model,
export to NIR and Loihi 2 estimate of the smaller network, and resume after a kill."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from prune_kill import kill_after_round

from snndeploy.cli import main
from snndeploy.hardware.estimate import estimate_target
from snndeploy.hardware.load import load_layers
from snndeploy.hardware.profile import load_profile
from snndeploy.models.load import load_model
from snndeploy.train.checkpoint import make_checkpoint, save_checkpoint

SMALL = ["--data", "nmnist", "--subset", "32", "--test-subset", "16", "--batch-size", "16", "--no-progress"]
CONFIG = {"epochs": 4, "warmup_epochs": 1, "ramp_end": 0.75, "regrow_fraction": 0.5, "seed": 0}


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory) -> Path:
    spec = {"name": "sca_cli_cnn", "input_shape": [2, 34, 34], "time_steps": 8, "quantize": True,
            "neuron": {"threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03},
            "blocks": [{"kind": "conv", "out": 8, "kernel": 5, "stride": 2, "padding": 2, "weight_scale": 4},
                       {"kind": "conv", "out": 8, "kernel": 3, "stride": 2, "padding": 1, "weight_scale": 4},
                       {"kind": "flatten"},
                       {"kind": "dense", "out": 16, "weight_scale": 4, "bias": True},
                       {"kind": "dense", "out": 10, "weight_scale": 4}]}
    path = tmp_path_factory.mktemp("sca_spec") / "cnn.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def model_path(spec_path) -> Path:
    """The untrained network as a checkpoint, so that every run starts from the same weights."""
    torch.manual_seed(0)
    return save_checkpoint(spec_path.with_suffix(".pt"), make_checkpoint(load_model(spec_path)))


def _config(tmp_path: Path, **extra) -> Path:
    path = tmp_path / "sca.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, **extra}))
    return path


def test_keep_channels_run_writes_report_plot_and_a_smaller_model(tmp_path, spec_path, model_path, capsys):
    out = tmp_path / "run"
    code = main(["prune", str(model_path), "--method", "sca", "--keep-channels", "0.5", "--out", str(out),
                 "--config", str(_config(tmp_path)), "--json", *SMALL])
    assert code == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out)
    report = json.loads((out / "prune_report.json").read_text())
    assert result["report"]["accuracy_after"] == report["accuracy_after"]
    assert report["method"] == "sca" and report["structured"] and report["target_sparsity"] == pytest.approx(0.5)
    # 4 one-epoch rounds: warmup, observed warmup, update (regrowth on), final update (no regrowth)
    history = report["history"]
    assert [h["epoch"] for h in history] == [0, 1, 2, 3] and [h["update"] for h in history] == [0, 0, 1, 1]
    assert history[2]["regrown"] > 0 and history[3]["regrown"] == 0
    assert history[2]["target"] < history[3]["target"] == pytest.approx(0.5)
    assert history[0]["live_channels"] == {"blocks.0": 8, "blocks.1": 8, "blocks.3": 16}
    assert history[3]["live_channels"] == {"blocks.0": 4, "blocks.1": 4, "blocks.3": 8}
    assert report["cost"]["epochs"] == 4 and report["cost"]["optimizer_steps"] == 4 * 2
    assert report["sparsity"]["channels"] == pytest.approx(0.5)
    assert (out / "prune_report.png").stat().st_size > 1000
    # physically smaller: the saved model and spec have the kept widths; the readout keeps its 10 outputs
    net = load_model(out / "model.pt")
    widths = [b.out for b in net.spec.blocks if b.kind in ("conv", "dense")]
    assert widths == [4, 4, 8, 10]
    assert [b.synapse.weight.shape[0] for b in net.blocks if hasattr(b, "synapse")] == widths
    assert yaml.safe_load((out / "spec.yaml").read_text())["blocks"][3]["out"] == 8
    assert report["model"]["weights"] == sum(b.synapse.weight.numel() for b in net.blocks if hasattr(b, "synapse"))
    # exported to NIR and estimated as the smaller network
    small = load_layers(out / "model.pt")
    dense = load_layers(spec_path)
    assert sum(layer.neurons for layer in small) < sum(layer.neurons for layer in dense)
    loihi2 = load_profile("loihi2")
    assert estimate_target(small, loihi2).cores <= estimate_target(dense, loihi2).cores


def test_keep_channels_bad_input_is_one_line_exit_2(tmp_path, spec_path, capsys):
    base = ["prune", str(spec_path), "--method", "sca", "--out", str(tmp_path / "x"), *SMALL]
    assert main([*base, "--keep-channels", "1.5"]) == 2
    assert main([*base, "--keep-channels", "0.5", "--sparsity", "0.5"]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 3\nwarmup_epochs: 3\n")
    assert main([*base, "--keep-channels", "0.5", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "'--keep-channels': 1.5 is not in the range 0<x<=1" in err  # click's range check (the CLI's option ranges)
    assert "not both" in err and "no structure update fits" in err
    assert not (tmp_path / "x").exists()


def _cmd(spec: Path, out: Path, cfg: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "snndeploy.cli", "prune", str(spec), "--method", "sca", "--keep-channels", "0.5",
            "--out", str(out), "--config", str(cfg), *SMALL, *extra]


@pytest.mark.slow
def test_kill_after_an_observed_round_then_resume_gives_the_same_run(tmp_path, model_path):
    cfg = _config(tmp_path, epochs=5, warmup_epochs=1, ramp_end=0.8)  # updates at epochs 2, 3, 4
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_cmd(model_path, full, cfg), check=True, env=env, capture_output=True)
    saved = kill_after_round(_cmd(model_path, killed, cfg), killed, 2, env)
    assert 2 <= saved["next_round"] < 5
    assert saved["engine"]["owners"]["sca"]["round"] == saved["next_round"] - 1  # the statistics travel
    subprocess.run(_cmd(model_path, killed, cfg, "--resume"), check=True, env=env, capture_output=True)
    a, b = load_model(full / "model.pt"), load_model(killed / "model.pt")
    assert a.spec == b.spec
    for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y)
    report_full = json.loads((full / "prune_report.json").read_text())
    report_killed = json.loads((killed / "prune_report.json").read_text())
    assert report_killed["records"] == report_full["records"]
    assert report_killed["accuracy_after"] == report_full["accuracy_after"]
