"""Training loop, checkpoints, resume, determinism, callbacks, CLI and DDP (gloo, 2 CPU processes)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from snndeploy.cli import main as cli_main
from snndeploy.data.datasets import make_splits
from snndeploy.errors import UserError
from snndeploy.models.build import build_model
from snndeploy.models.load import load_model
from snndeploy.models.spec import IOSpec, load_spec, save_spec, spec_from_dict
from snndeploy.train.checkpoint import load_checkpoint
from snndeploy.train.cli import run_evaluation, run_training
from snndeploy.train.loop import Callback, TrainConfig, Trainer, evaluate

REPO = Path(__file__).resolve().parent.parent
MLP = REPO / "examples" / "mnist_mlp.yaml"

DIGITS_SPEC = {"name": "digits_mlp", "input_shape": [64], "time_steps": 12,
               "neuron": {"threshold": 1.0, "current_decay": 0.25, "voltage_decay": 0.03},
               "blocks": [{"kind": "dense", "out": 32}, {"kind": "dense", "out": 10}]}


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


@pytest.fixture
def digits_spec(tmp_path: Path) -> Path:
    path = tmp_path / "digits.yaml"
    save_spec(spec_from_dict(DIGITS_SPEC), path)
    return path


def _run(spec: Path, out: Path, epochs: int, **kw):
    kw.setdefault("data_name", "mnist")
    kw.setdefault("subset", 256)
    kw.setdefault("test_subset", 100)
    return run_training(spec, epochs=epochs, out=out, threads=1, progress=False, log=None, **kw)


def test_two_epochs_on_a_subset_decrease_the_loss(tmp_path: Path):
    result = _run(MLP, tmp_path / "run", 2, lr=1e-3, subset=500)
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"]
    assert [m["epoch"] for m in history] == [1, 2]
    assert history[1]["train_loss"] < history[0]["train_loss"]
    assert history[1]["val_loss"] < history[0]["val_loss"]
    assert result["test"]["samples"] == 100 and 0 <= result["test"]["accuracy"] <= 1
    for m in history:
        assert 0 < m["train_spike_rate"] < 1 and set(m["train_block_spike_rates"]) == {"0", "1", "2"}
    saved = load_checkpoint(tmp_path / "run" / "checkpoint.pt")  # torch.load(weights_only=True) inside
    assert saved["epoch"] == 2 and saved["spec"]["name"] == "mnist_mlp" and saved["optimizer"] is not None
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["format"] == "snndeploy-checkpoint"
    trained = load_spec(tmp_path / "run" / "spec.yaml")
    assert trained.io.encoding == "rate" and trained.io.readout == "spike_count"  # how it was fed, recorded
    assert replace(trained, io=IOSpec()) == load_spec(MLP)
    assert (tmp_path / "run" / "training.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_continues_where_it_stopped_and_seed_determines_everything(digits_spec: Path, tmp_path: Path):
    kw = {"data_name": "uci-digits", "subset": 300, "test_subset": 50, "seed": 7, "lr": 5e-3, "lr_schedule": "cosine"}
    straight = _run(digits_spec, tmp_path / "straight", 3, **kw)
    _run(digits_spec, tmp_path / "resumed", 1, **kw)
    first = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    assert first["epoch"] == 1
    resumed = _run(digits_spec, tmp_path / "resumed", 3, resume=True, **kw)
    a = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    assert b["epoch"] == 3 and len(b["metrics"]) == 3
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert [m["lr"] for m in b["metrics"]] == pytest.approx([5e-3 * 0.5 * (1 + math.cos(math.pi * e / 3))
                                                             for e in range(3)])
    strip = [{k: v for k, v in m.items() if k != "seconds"} for m in a["metrics"]]
    assert strip == [{k: v for k, v in m.items() if k != "seconds"} for m in b["metrics"]]
    assert straight["test"] == resumed["test"]
    other = _run(digits_spec, tmp_path / "other", 1, **{**kw, "seed": 8})
    assert other["last_epoch"]["train_loss"] != straight["test"]["loss"]
    c = load_checkpoint(tmp_path / "other" / "checkpoint.pt")
    assert not torch.equal(c["state_dict"]["blocks.0.synapse.weight"], first["state_dict"]["blocks.0.synapse.weight"])


class _MagnitudeMask(Callback):
    """A real (tiny) pruning method through the hooks: keep the largest half of block 0's weights."""

    def __init__(self):
        self.calls: list[str] = []
        self.mask = None

    def on_train_start(self, trainer):
        self.calls.append("start")
        w = trainer.net.blocks[0].synapse.weight
        self.mask = (w.abs() >= w.abs().flatten().median()).float()
        with torch.no_grad():
            w.mul_(self.mask)

    def after_backward(self, trainer, step):
        self.calls.append("backward")
        assert trainer.last_outputs and trainer.net.blocks[0].synapse.weight.grad is not None
        trainer.net.blocks[0].synapse.weight.grad.mul_(self.mask)

    def after_step(self, trainer, step):
        self.calls.append("step")
        with torch.no_grad():
            trainer.net.blocks[0].synapse.weight.mul_(self.mask)

    def on_epoch_end(self, trainer, epoch, metrics):
        self.calls.append(f"epoch{epoch}")
        metrics["density"] = float(self.mask.mean())

    def on_train_end(self, trainer):
        self.calls.append("end")


def test_callbacks_let_a_pruning_method_keep_weights_at_zero(digits_spec: Path):
    torch.manual_seed(0)
    spec = load_spec(digits_spec)
    splits = make_splits("uci-digits", time_steps=spec.time_steps, input_shape=spec.input_shape, subset=64)
    mask = _MagnitudeMask()
    trainer = Trainer(build_model(spec), TrainConfig(epochs=2, batch_size=32, threads=1), callbacks=[mask],
                      log=None, progress=False)
    history = trainer.fit(splits.train, splits.val)
    steps = ["backward", "step"] * 2
    assert mask.calls == ["start", *steps, "epoch1", *steps, "epoch2", "end"]
    w = trainer.net.blocks[0].synapse.weight
    assert torch.all(w[mask.mask == 0] == 0) and torch.any(w[mask.mask == 1] != 0)
    assert history[-1]["density"] == pytest.approx(0.5, abs=0.01)
    metrics = evaluate(trainer.net, splits.val)
    assert set(metrics) >= {"accuracy", "loss", "spike_rate", "block_spike_rates"}
    assert list(metrics["block_spike_rates"]) == ["0", "1"]


def test_cli_train_evaluate_and_errors(digits_spec: Path, tmp_path: Path, capsys):
    out = tmp_path / "cli"
    args = ["train", str(digits_spec), "--data", "uci-digits", "--epochs", "1", "--out", str(out), "--subset", "64",
            "--threads", "1", "--json"]
    assert cli_main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs"] == 1 and summary["test"]["samples"] == 359
    assert cli_main(args) == 2  # refuses to overwrite
    assert "pass --resume" in capsys.readouterr().err
    assert cli_main(["evaluate", str(out / "checkpoint.pt"), "--data", "uci-digits", "--json", "--threads", "1"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["accuracy"] == pytest.approx(summary["test"]["accuracy"])
    assert cli_main(["train", str(digits_spec), "--data", "uci-digits", "--epochs", "1", "--out",
                     str(tmp_path / "new"), "--resume"]) == 2
    assert cli_main(["train", str(digits_spec), "--data", "mnist", "--epochs", "1", "--out",
                     str(tmp_path / "wrong")]) == 2
    assert "takes input" in capsys.readouterr().err
    assert cli_main(["train", str(digits_spec), "--data", "uci-digits", "--epochs", "1", "--out",
                     str(tmp_path / "wd"), "--weight-decay", "-1"]) == 2
    assert "weight decay >= 0" in capsys.readouterr().err and not (tmp_path / "wd").exists()
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(UserError, match="is not a checkpoint file: its content is text"):
        load_model(tmp_path / "junk.pt")
    model = load_model(out / "checkpoint.pt")
    assert replace(model.spec, io=IOSpec()) == load_spec(digits_spec) and model.spec.io.encoding == "rate"


def test_fine_tune_an_imported_netx_network(tmp_path: Path):
    from snndeploy import settings

    net_file = settings.fixtures_dir() / "lava-dl" / "mnist-mlp-128" / "network.net"
    before = run_evaluation(net_file, data_name="mnist", test_subset=200, threads=1)
    assert before["accuracy"] > 0.8  # the trained lava-dl network really classifies MNIST
    result = _run(net_file, tmp_path / "ft", 1, subset=128, lr=1e-4, test_subset=200)
    assert result["test"]["accuracy"] > 0.7


@pytest.mark.timeout(300)
def test_ddp_gloo_two_processes(digits_spec: Path, tmp_path: Path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SNNDEPLOY_DDP_BACKEND": "gloo"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "snndeploy.cli", "train", str(digits_spec), "--data", "uci-digits", "--epochs", "2",
           "--out", str(out), "--subset", "128", "--test-subset", "64", "--threads", "1", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=280, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert summary["world_size"] == 2 and summary["epochs"] == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    # both ranks' shards are counted: 128 training samples per epoch in total
    assert [m["train_samples"] for m in metrics["epochs"]] == [128, 128]
    assert summary["test"]["samples"] == 64
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 2
