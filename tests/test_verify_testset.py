"""``verify`` over many samples (``--dataset``, ``--samples all``): Lava runs them many per build and in worker
processes, every layer of every sample is compared, and the first divergence is named by sample, layer, step,
neuron and variable."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

import snndeploy  # noqa: F401
from snndeploy.cli import main
from snndeploy.export.slayer_io import from_slayer
from snndeploy.export.verify import describe, verify

pytestmark = pytest.mark.lava


def mlp128(fixtures_dir):
    from snndeploy.models.netx_import import import_netx

    return import_netx(fixtures_dir / "mnist-mlp-128" / "network.net").eval()


def test_verify_cli_on_mnist_test_digits_with_workers(fixtures_dir, capsys, no_lava_leftovers):
    path = str(fixtures_dir / "mnist-mlp-512" / "network.net")
    code = main(["verify", path, path, "--dataset", "mnist", "--samples", "12", "--steps", "10", "--probe",
                 "--workers", "2", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["agree"] and out["samples"] == 12 and out["first"] is None
    assert all(layer["mismatches"] == 0 for layer in out["layers"])
    assert out["layers"][-1]["variable"] == "v" and out["layers"][-1]["compared"] == 12 * 10 * 10
    assert sum(layer["torch_spikes"] for layer in out["layers"]) > 0


def test_samples_all_compares_every_sample_and_names_the_first_divergent_one(fixtures_dir, tmp_path, capsys,
                                                                              no_lava_leftovers):
    model = mlp128(fixtures_dir)
    net = from_slayer(model)
    x = (np.random.default_rng(0).random((7, 784, 15)) < 0.3).astype(np.float32)
    x[:3] = 0  # silent samples cannot diverge: the first divergence is in sample 3
    report = verify(model, net, x, part=3)  # three Lava parts of up to 3 samples
    assert report.agree and report.samples == 7, describe(report)
    assert report.layers[0].compared == 7 * 128 * 15
    broken = replace(net.layers[2], neuron=replace(net.layers[2].neuron, threshold=net.layers[2].neuron.threshold
                                                   * 0.25))
    report = verify(model, net.with_layers([*net.layers[:2], broken]), x, part=3)
    first = report.first
    assert not report.agree and first.sample == 3 and first.layer == 2 and first.variable == "spikes"
    assert report.layers[1].mismatches == 0 and report.layers[2].mismatches > 0
    assert f"first divergence: sample 3, layer 2 ({net.layers[2].name}), step {first.step}, neuron " \
           f"{first.neuron}" in describe(report)
    np.save(tmp_path / "x.npy", x)
    nir = tmp_path / "m.nir"
    assert main(["export", str(fixtures_dir / "mnist-mlp-128" / "network.net"), "--to", "nir", "--out",
                 str(nir)]) == 0
    capsys.readouterr()
    assert main(["verify", str(fixtures_dir / "mnist-mlp-128" / "network.net"), str(nir), "--inputs",
                 str(tmp_path / "x.npy"), "--samples", "all", "--workers", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"] == 7


def test_samples_all_needs_a_finite_input(fixtures_dir, capsys):
    path = str(fixtures_dir / "mnist-mlp-128" / "network.net")
    assert main(["verify", path, path, "--samples", "all"]) == 2
    assert "--samples all needs --dataset" in capsys.readouterr().err
