"""Every method on the one engine, through the real training loop, on UCI digits (small subsets)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from snndeploy.models.build import build_model
from snndeploy.models.spec import spec_from_dict
from snndeploy.prune.finetune import DatasetTrainer
from snndeploy.prune.methods import Round
from snndeploy.prune.registry import find_method
from snndeploy.prune.runner import Runner, RunSpec


def digits_cnn(seed: int = 0):
    torch.manual_seed(seed)
    spec = spec_from_dict({
        "name": "digits_cnn", "input_shape": [1, 8, 8], "time_steps": 8, "quantize": False,
        "neuron": {"threshold": 0.5, "current_decay": 0.25, "voltage_decay": 0.03},
        "blocks": [{"kind": "conv", "out": 8, "kernel": 3, "padding": 1, "weight_scale": 2},
                   {"kind": "flatten"},
                   {"kind": "dense", "out": 16, "weight_scale": 2},
                   {"kind": "dense", "out": 10, "weight_scale": 2}]})
    return build_model(spec)


def run(tmp_path, method: str, target: float, structured: bool = False, rounds=None, **cfg):
    m = find_method(method)
    config = dataclasses.replace(m.config_class(), epochs_per_step=1, **cfg)
    net = digits_cnn()
    trainer = DatasetTrainer("digits", net, batch_size=30, subset=120, test_subset=60, progress=False)
    runner = Runner(RunSpec(m, config, target, structured, "test"), net, trainer, tmp_path / method)
    if rounds is not None:
        runner.rounds = rounds
    start = {k: v.clone() for k, v in runner.start_state.items()}
    return runner, runner.run(), start


@pytest.mark.parametrize("method,cfg", [
    ("magnitude", {}), ("imp", {"rate": 0.6, "rewind": "start"}), ("criticality", {"steps": 2, "calib_batches": 1}),
    pytest.param("gmp", {"steps": 2}, marks=pytest.mark.slow),
    pytest.param("random", {}, marks=pytest.mark.slow),
    pytest.param("criticality", {"calib_batches": 1, "schedule": "one_shot", "regen": "gradient"},
                 marks=pytest.mark.slow),
    pytest.param("criticality", {"calib_batches": 1, "schedule": "one_shot", "regen": "random"},
                 marks=pytest.mark.slow),
    pytest.param("criticality", {"calib_batches": 1, "schedule": "one_shot", "weight_score": "post"},
                 marks=pytest.mark.slow),
    pytest.param("criticality", {"calib_batches": 1, "schedule": "one_shot", "weight_score": "post_share"},
                 marks=pytest.mark.slow),
    pytest.param("criticality", {"calib_batches": 1, "schedule": "one_shot", "weight_score": "post_rate_magnitude"},
                 marks=pytest.mark.slow),
    pytest.param("criticality", {"calib_batches": 1, "schedule": "one_shot", "regen": "none"},
                 marks=pytest.mark.slow),
    pytest.param("criticality", {"calib_batches": 1, "schedule": "one_shot", "weight_score": "post_magnitude",
                                 "allocation": "layer"}, marks=pytest.mark.slow),
])
def test_unstructured_methods_reach_the_target(tmp_path, method, cfg):
    runner, result, _ = run(tmp_path, method, 0.8, **cfg)
    report = result.report
    assert report["sparsity"]["weights"] == pytest.approx(0.8, abs=1e-3)
    assert report["model"]["sparsity"] == pytest.approx(0.8, abs=1e-3)  # zeros are in the exported weights
    assert len(report["history"]) == len(runner.rounds) and report["cost"]["epochs"] == len(runner.rounds)
    if method == "criticality":
        regrown = sum(h["regrown"] for h in report["history"])
        assert (regrown == 0) == (cfg.get("regen") == "none")
    if cfg.get("allocation") == "layer":
        assert all(layer["sparsity"] == pytest.approx(0.8, abs=0.01) for layer in report["sparsity"]["per_layer"])


def test_imp_rewinds_surviving_weights(tmp_path):
    rounds = [Round(0, 0.5, 1, rewind=True), Round(1, 0.75, 0, rewind=True)]
    runner, result, start = run(tmp_path, "imp", 0.75, rounds=rounds, rewind="start")
    for layer in runner.engine.layers:
        key = f"blocks.{layer.info.index}.synapse.parametrizations.weight.original"
        live = result.net.blocks[layer.info.index].synapse.weight.detach() != 0
        assert torch.equal(result.net.blocks[layer.info.index].synapse.weight.detach()[live], start[key][live])
    rounds = [Round(0, 0.5, 1), Round(1, 0.75, 0)]  # the same without rewinding keeps the trained weights
    runner, result, start = run(tmp_path / "gmp", "gmp", 0.75, rounds=rounds)
    layer = runner.engine.layers[0]
    key = f"blocks.{layer.info.index}.synapse.parametrizations.weight.original"
    live = result.net.blocks[layer.info.index].synapse.weight.detach() != 0
    assert not torch.equal(result.net.blocks[layer.info.index].synapse.weight.detach()[live], start[key][live])


def test_slimming_shrinks_gates_then_prunes_channels(tmp_path):
    runner, result, _ = run(tmp_path, "slimming", 0.5, structured=True, l1=5.0, sparsity_epochs=1)
    report = result.report
    first, second = report["history"][:2]
    assert first["sparsity"] == 0 and "pruned" not in first and second["pruned"] > 0
    # the proximal L1 steps (lr * l1 each) pulled the gates down from 1; Adam moves them by at most ~lr per step
    steps, lr = first["optimizer_steps"], 1e-3
    assert steps > 0 and first["mean_abs_gate"] <= 1 - steps * lr * 5.0 + steps * lr * 1.01
    assert report["sparsity"]["channels"] == pytest.approx(0.5, abs=0.05)
    widths = [b.out for b in result.net.spec.blocks if b.out is not None]
    assert widths[-1] == 10 and sum(widths[:-1]) == round(0.5 * 24)
    assert result.net.blocks[2].synapse.weight.shape[1] == widths[0] * 64


def test_structured_criticality_regenerates_channels(tmp_path):
    runner, result, _ = run(tmp_path, "criticality", 0.5, structured=True, steps=2, calib_batches=1, l1=1e-3)
    report = result.report
    assert report["sparsity"]["channels"] == pytest.approx(0.5, abs=0.05)
    assert sum(h["regrown"] for h in report["history"]) > 0
    kinds = [r["kind"] for r in report["records"]]
    assert kinds == ["prune_channels", "regrow_channels"] * 2
    assert result.net.spec.blocks[0].out + result.net.spec.blocks[2].out == 24 - round(0.5 * 24)
