"""`snndeploy pipeline` end to end on real MNIST and the real Lava runtime, on a tiny setting."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import yaml

from snndeploy.cli import main
from snndeploy.hardware.budget import default_budget
from snndeploy.hardware.profile import load_profile

CONFIG = Path(__file__).parent / "configs" / "pipeline_tiny.yaml"
SPEC = Path(__file__).parents[1] / "examples" / "mnist_mlp.yaml"
SDNN_CONFIG = Path(__file__).parents[1] / "examples" / "pipelines" / "sdnn_fashion.yaml"
pytestmark = pytest.mark.lava


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pipeline") / "run"
    assert main(["pipeline", str(CONFIG), "--out", str(out), "--no-progress"]) == 0
    return out


def stage(run: Path, name: str) -> dict:
    return json.loads((run / name / "stage.json").read_text())["result"]


def test_every_stage_runs_and_the_lava_network_verifies(tiny_run):
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert summary["stages"] == ["model", "prune", "export", "verify", "simulate", "estimate", "report"]
    assert summary["verified"] is True
    assert abs(summary["sparsity"]["weights"] - 0.8) < 0.01
    nir = stage(tiny_run, "export")["files"]["nir"]
    assert Path(nir).is_file() and stage(tiny_run, "estimate")["model"] == nir  # NIR is the hand-off
    sim = stage(tiny_run, "simulate")
    assert sim["samples"] == 5 and 0.0 <= sim["accuracy"] <= 1.0
    assert json.loads(Path(sim["activity"]).read_text())["layers"]
    assert stage(tiny_run, "estimate")["targets"][0]["cores"] >= 1


def test_report_is_self_contained_html_with_plots(tiny_run):
    report = stage(tiny_run, "report")
    page = Path(report["html"]).read_text()
    assert page.count("data:image/png;base64,") >= 5
    assert "spike for spike" in page and "Pruning cost" in page
    for png in report["plots"].values():
        assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_skips_finished_stages_and_a_changed_stage_reruns_downstream(tiny_run, tmp_path, capsys):
    assert main(["pipeline", str(CONFIG), "--out", str(tiny_run), "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["skipped"] == summary["stages"]
    config = yaml.safe_load(CONFIG.read_text())
    config["simulate"]["samples"] = 3
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    assert main(["pipeline", str(changed), "--out", str(copy), "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["skipped"] == ["model", "prune", "export", "verify"]
    assert stage(copy, "simulate")["samples"] == 3


def test_fit_to_a_core_budget_gives_a_model_that_fits_and_verifies(tiny_run, tmp_path, capsys):
    config = yaml.safe_load(CONFIG.read_text())
    config["prune"]["structured"] = True
    fit_config = tmp_path / "fit.yaml"
    fit_config.write_text(yaml.safe_dump(config))
    dense_cores = stage(tiny_run, "estimate")["targets"][0]["cores"]
    budget = dense_cores - 1
    out = tmp_path / "fit"
    shutil.copytree(tiny_run / "model", out / "model")  # same model settings: its stage is reused
    code = main(["pipeline", str(fit_config), "--out", str(out), "--no-progress", "--json",
                 "--fit", f"loihi2:cores={budget}"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert "model" in summary["skipped"]
    assert summary["fit"]["sparsity"] > 0 and summary["fit"]["structured"]
    loihi2 = summary["targets"][0]
    assert loihi2["verdict"] == "fits" and loihi2["cores"] <= budget
    budgets = {t["target"]: t["budget"]["cores"] for t in stage(out, "estimate")["targets"]}
    assert budgets == {"loihi2": budget, "loihi1": default_budget(load_profile("loihi1")).cores}  # fit budget: loihi2
    assert summary["verified"] is True


def test_compare_puts_runs_side_by_side(tiny_run, tmp_path):
    out = tmp_path / "cmp"
    assert main(["compare", str(tiny_run), str(tiny_run), "--out", str(out)]) == 0
    result = json.loads((out / "compare.json").read_text())
    assert len(result["rows"]) == 2 and (out / "compare.html").is_file() and (out / "compare.png").is_file()


def test_bad_config_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndata: mnist\nmodel: {epochs: 1}\n")
    assert main(["pipeline", str(bad), "--out", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"snndeploy: error: {bad}:") and "\n" not in err
    assert not (tmp_path / "never").exists()
    bad.write_text("name: x\ndata: mnist\nmodel: {load: a.net}\nprune: {sparsity: 1.5}\n")
    assert main(["pipeline", str(bad)]) == 2
    assert "prune.sparsity" in capsys.readouterr().err
    bad.write_text("name: x\ndata: mnist\nmodel: {load: a.net}\nprune: null\nfit: loihi2:cores=2\n")
    assert main(["pipeline", str(bad)]) == 2
    assert "needs a 'prune' section" in capsys.readouterr().err


def test_embedded_default_config_is_valid():
    from snndeploy.pipeline_config import load_pipeline_config, resolve_load

    config, where = load_pipeline_config(None)
    assert "embedded default" in where
    assert config.data == "mnist" and config.prune.method == "criticality"
    # starts from a trained network anyone has (lava-dl's bootstrap MNIST in the fixtures folder), not a spec
    assert config.model.spec is None and resolve_load(config.model.load).is_file()


@pytest.mark.parametrize("text, key", [
    ("prune: {method: criticalty}", "'prune.method': unknown pruning method 'criticalty'"),
    ("prune: {method: slimming, structured: true, config: {no_such_key: 1}}", "'prune.config': unknown method config"),
    ("prune: {method: imp, config: {rounds: zero}}", "'prune.config'"),
    ("estimate: {targets: [loihi2, loihi9]}", "'estimate.targets': "),
    ("estimate: {budget: cores=x}", "'estimate.budget': "),
    ("model: {spec: SPEC, lr_schedule: cosinus}", "'model': lr_schedule must be one of constant, cosine"),
    ("model: {spec: SPEC, weight_decay: -1}", "'model': "),
    ("model: {spec: no_such_spec.yaml}", "'model.spec': "),
    ("model: {load: model.pth5}", "'model.load': "),
    ("data: mnistt", "'data': unknown dataset 'mnistt'"),
    ("model: {spec: SPEC, lr: nan}", "'model.lr' must be int or float, got 'nan'"),
    ("model: {spec: SPEC, lr: .nan}", "'model.lr' must be a finite number"),
    ("model: {spec: SPEC, epochs: true}", "'model.epochs' must be int, got True"),
    ("estimate: {budget: {cores: 4}}", "'estimate.budget' must be str or null"),
    ("seed: abc", "'seed' must be int"),
])
def test_the_whole_config_is_checked_before_anything_runs(tmp_path, capsys, text, key):
    """A typo in any named thing is one line, exit 2, and no run folder (it used to train first, then fail)."""
    base = {"name": "name: x", "data": "data: mnist", "model": "model: {spec: SPEC, epochs: 1}"}
    line = dict(base, **{text.split(":")[0]: text})
    bad = tmp_path / "bad.yaml"
    bad.write_text("\n".join(line.values()).replace("SPEC", str(SPEC)) + "\n")
    assert main(["pipeline", str(bad), "--out", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"snndeploy: error: {bad}: {key}") and "\n" not in err, err
    assert not (tmp_path / "never").exists()


def test_the_config_takes_every_training_option():
    from snndeploy.pipeline_config import ModelStage
    from snndeploy.train.run import TrainJob

    train_fields = {f.name for f in dataclasses.fields(TrainJob)}
    run_fields = {"out", "data_name", "seed", "test_subset", "resume", "force", "test", "progress"}
    assert set(ModelStage().train_options()) == train_fields - run_fields


def test_the_sigma_delta_example_runs_end_to_end_on_graded_frames(tmp_path):
    """examples/pipelines/sdnn_fashion.yaml on a tiny setting: train, prune, export, verify (graded outputs of every
    layer and step, Lava = the bit-exact reference), simulate on Fashion-MNIST frames, estimate with their activity."""
    config = yaml.safe_load(SDNN_CONFIG.read_text())
    config["model"].update(spec=str(SDNN_CONFIG.parent / config["model"]["spec"]), subset=32)
    config["prune"].update(subset=32, test_subset=16)
    config.update(test_subset=16, verify={"samples": 1}, simulate={"samples": 1})
    path = tmp_path / "sdnn.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["pipeline", str(path), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    run = tmp_path / "run"
    assert stage(run, "prune")["sparsity"]["weights"] == pytest.approx(0.5, abs=0.01)
    verify = stage(run, "verify")
    assert verify["agree"] and {row["variable"] for row in verify["layers"]} == {"graded"}
    assert all(row["mismatches"] == 0 and row["torch_spikes"] == row["lava_spikes"] for row in verify["layers"])
    assert verify["layers"][0]["torch_spikes"] > 0  # the frame reached the encoder as non-zero integers
    sim = stage(run, "simulate")
    assert sim["samples"] == 1 and "x 64 to netx's input integers" in sim["input"] and "torch_accuracy" in sim
    activity = json.loads(Path(sim["activity"]).read_text())
    assert all(layer["graded"] and layer["payload_bits"] == 16 for layer in activity["layers"])
    target = stage(run, "estimate")["targets"][0]
    assert target["target"] == "loihi2" and target["cores"] >= 1
    assert "graded outputs at every layer and step" in Path(stage(run, "report")["html"]).read_text()
