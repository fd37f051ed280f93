"""The model carries how it is fed and read (``ModelSpec.io``): set by the netx import from the file and the
published-network table, kept by the spec YAML, checkpoints, the IR and NIR metadata, and used by evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

import snndeploy  # noqa: F401
from snndeploy.cli import main
from snndeploy.errors import UserError
from snndeploy.models.spec import IOSpec, dump_spec, spec_from_dict

MLP = {"name": "mlp", "input_shape": [784], "blocks": [{"kind": "dense", "out": 10}]}


def test_netx_import_records_the_input_layer_affine_output_and_the_tutorials_normalisation(fixtures_dir):
    from snndeploy.models.netx_import import import_netx

    boot = import_netx(fixtures_dir / "mnist-mlp-512" / "network.net").spec
    assert (boot.io.encoding, boot.io.normalize, boot.io.readout) == ("current", (0.5, 0.5), "voltage_sum")
    assert "bootstrap" in boot.io.source and boot.time_steps == 16
    plain = import_netx(fixtures_dir / "mnist-mlp-128" / "network.net").spec
    assert (plain.io.encoding, plain.io.normalize, plain.io.readout) == (None, None, "spike_count")


def test_io_round_trips_through_yaml_checkpoint_ir_and_nir(fixtures_dir, tmp_path):
    from snndeploy.export.nir_io import read_nir, write_nir
    from snndeploy.export.slayer_io import from_slayer, spec_of
    from snndeploy.models.netx_import import import_netx
    from snndeploy.train.checkpoint import load_checkpoint, make_checkpoint, model_from_checkpoint, save_checkpoint

    model = import_netx(fixtures_dir / "mnist-mlp-512" / "network.net")
    io = model.spec.io
    assert spec_from_dict(yaml.safe_load(dump_spec(model.spec))).io == io
    path = save_checkpoint(tmp_path / "m.pt", make_checkpoint(model))
    assert model_from_checkpoint(load_checkpoint(path), path).spec.io == io
    net = read_nir(write_nir(from_slayer(model), tmp_path / "m.nir"))
    assert net.meta["io"] == io and spec_of(net).io == io


@pytest.mark.parametrize("io", [{"encoding": "morse"}, {"readout": "max"}, {"normalize": [0.5, 0]},
                                {"normalize": 0.5}, {"colour": "red"}])
def test_bad_io_is_a_one_line_error(io):
    with pytest.raises(UserError, match="io"):
        spec_from_dict({**MLP, "io": io})


def test_feed_follows_the_model_and_an_option_overrides_it_and_says_so():
    from snndeploy.data.datasets import feed_for

    recorded = IOSpec(encoding="current", normalize=(0.5, 0.5), source="netx file")
    feed = feed_for(recorded)
    assert (feed.encoding, feed.normalize) == ("current", (0.5, 0.5)) and "recorded in the model" in feed.note
    feed = feed_for(recorded, "rate")
    assert feed.encoding == "rate" and "--encoding overrides the model's current" in feed.note
    feed = feed_for(IOSpec())
    assert feed.encoding == "rate" and "default" in feed.note


def test_plain_evaluate_feeds_bootstrap_mnist_as_its_tutorial(fixtures_dir, capsys):
    """No encoding flags: the model's current input, (x - 0.5) / 0.5 and T = 16 (whole test set: benchmarks)."""
    path = fixtures_dir / "mnist-mlp-512" / "network.net"
    assert main(["evaluate", str(path), "--data", "mnist", "--test-subset", "200", "--threads", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["accuracy"] >= 0.97  # the published 99.15 % is for all 10,000 digits
    assert "encoding current (recorded in the model" in result["feed"] and result["readout"] == "voltage_sum"
    assert main(["evaluate", str(path), "--data", "mnist", "--test-subset", "200", "--threads", "1",
                 "--encoding", "rate", "--json"]) == 0
    assert "--encoding overrides" in json.loads(capsys.readouterr().out)["feed"]


def test_a_trained_checkpoint_records_how_it_was_fed(tmp_path):
    from snndeploy.models.spec import save_spec
    from snndeploy.train.checkpoint import load_checkpoint, model_from_checkpoint
    from snndeploy.train.cli import run_training

    spec = save_spec(spec_from_dict({**MLP, "input_shape": [64], "time_steps": 5}), tmp_path / "s.yaml")
    summary = run_training(spec, epochs=1, out=tmp_path / "run", data_name="uci-digits", encoding="current",
                           subset=64, threads=1, progress=False, log=None, test=False)
    model = model_from_checkpoint(load_checkpoint(summary["checkpoint"]), summary["checkpoint"])
    assert (model.spec.io.encoding, model.spec.io.readout) == ("current", "spike_count")
    assert np.isfinite(summary["seconds"])
