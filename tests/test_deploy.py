"""``snndeploy deploy --target loihi2`` without lava-loihi: exit code 3 and a complete, atomic job bundle whose
run script is valid Python, names files that exist, targets Loihi2HwCfg, and reproduces the expected output
when run on Lava's CPU backend."""

from __future__ import annotations

import ast
import hashlib
import json
import py_compile

import numpy as np
import pytest

import snndeploy  # noqa: F401
from snndeploy.cli import main
from snndeploy.errors import UserError
from snndeploy.export.ir import Layer, LoihiNet, Neuron
from snndeploy.loihi import lava_loihi_available
from snndeploy.target import EXIT_NO_LOIHI, SCRIPT, check_deployable, run_bundle

pytestmark = pytest.mark.lava


@pytest.fixture(scope="module")
def bundle(fixtures_dir, tmp_path_factory):
    """The mnist-mlp-128 bundle for 3 real MNIST digits (written once for the module)."""
    out = tmp_path_factory.mktemp("deploy") / "bundle"
    args = ["deploy", str(fixtures_dir / "mnist-mlp-128" / "network.net"), "--target", "loihi2", "--dataset", "mnist",
            "--samples", "3", "--steps", "20", "--out", str(out), "--json"]
    code = main(args)
    return out, code, args


def _string_constants(tree: ast.AST) -> set[str]:
    return {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_without_lava_loihi_the_bundle_is_written_and_the_exit_code_says_so(bundle, capsys):
    out, code, _ = bundle
    assert not lava_loihi_available()[0]
    assert code == EXIT_NO_LOIHI != 2
    manifest = json.loads((out / "bundle.json").read_text())
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest, name
    inputs, expected = np.load(out / "inputs.npy"), np.load(out / "expected_output.npy")
    assert inputs.shape == (3, 784, 20) and expected.shape == (3, 10, 20) and expected.sum() > 0
    assert np.load(out / "labels.npy").shape == (3,)
    assert json.loads((out / "expected_activity.json").read_text())["schema"] == "snndeploy-activity/1"
    assert "lava-loihi" in (out / "README.md").read_text()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary left over


def test_the_run_script_is_valid_python_that_refers_to_the_bundle_files(bundle, tmp_path):
    out, _, _ = bundle
    script = out / SCRIPT
    py_compile.compile(str(script), cfile=str(tmp_path / "run.pyc"), doraise=True)
    tree = ast.parse(script.read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | \
            {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert {"Loihi2HwCfg", "PyToNxAdapter", "NxToPyAdapter"} <= names
    referenced = {s for s in _string_constants(tree) if s.endswith((".net", ".npy", ".json"))
                  and "/" not in s and not s.startswith(".")}
    assert {"network.net", "inputs.npy", "expected_output.npy", "bundle.json"} <= referenced
    for name in referenced:
        assert (out / name).is_file(), name
    # no custom Lava process lives next to it (Lava would import the script while compiling one)
    assert "AbstractProcess" not in script.read_text()


def test_the_bundle_reproduces_its_expected_output_on_the_cpu_backend(bundle, no_lava_leftovers):
    """The same code path the hardware run takes (script in its own process group), with --backend cpu: netx
    with staggered resets reproduces snndeploy's per-sample output exactly."""
    out, _, _ = bundle
    report = run_bundle(out, backend="cpu", timeout_s=300)
    assert report["equal"] and report["mismatches"] == 0
    assert report["output_spikes"] == int(np.load(out / "expected_output.npy").sum())
    assert np.array_equal(np.load(out / "output_cpu.npy"), np.load(out / "expected_output.npy"))


def test_an_existing_bundle_is_not_overwritten(bundle, capsys):
    out, _, args = bundle
    before = (out / "bundle.json").read_bytes()
    assert main(args) == 2
    assert "exists" in capsys.readouterr().err
    assert (out / "bundle.json").read_bytes() == before


def test_default_inputs_are_seeded_random_spikes(fixtures_dir, tmp_path, capsys, no_lava_leftovers):
    out = tmp_path / "oxford-bundle"
    code = main(["deploy", str(fixtures_dir / "oxford" / "network.net"), "--samples", "2", "--steps", "30",
                 "--out", str(out), "--json"])
    assert code == EXIT_NO_LOIHI
    report = json.loads(capsys.readouterr().out)
    assert report["available"] is False and report["hardware"] is None and report["bundle"] == str(out)
    manifest = json.loads((out / "bundle.json").read_text())
    assert "random spikes" in manifest["input"] and manifest["samples"] == 2
    assert ("warning" in report) == (report["expected_spikes"] == 0)
    assert not (out / "labels.npy").exists()
    assert (out / "network.nir").is_file()


def test_networks_netx_cannot_take_are_refused_before_anything_is_written(fixtures_dir, tmp_path, capsys):
    neuron = Neuron(i_decay=np.array(4096), v_decay=np.array(0), threshold=np.array(1.0))
    net = LoihiNet("pooled", (1, 4, 4), (Layer("pool", "pool", (1, 4, 4), (1, 2, 2), neuron, np.array(1.0),
                                                stride=(2, 2), kernel=(2, 2)),))
    with pytest.raises(UserError, match="pooling"):
        check_deployable(net)
    out = tmp_path / "b"
    assert main(["deploy", str(fixtures_dir / "mnist-mlp-512" / "network.net"), "--out", str(out)]) == 2
    assert "input layer" in capsys.readouterr().err and not out.exists()


@pytest.mark.slow
def test_a_biased_network_bundle_runs_samples_apart_and_reproduces(fixtures_dir, tmp_path, capsys,
                                                                    no_lava_leftovers):
    """oxford with a bias on its hidden layer: simulate runs each sample alone, so does the bundle's script."""
    from dataclasses import replace

    from snndeploy.export.netx_io import write_netx
    from snndeploy.loader import load_net

    net = load_net(fixtures_dir / "oxford" / "network.net")
    hidden = net.layers[0]
    bias = np.where(np.arange(hidden.size) % 3 == 0, 2 / 64, 0.0)  # on the Loihi grid (mantissa 2)
    net = net.with_layers([replace(hidden, neuron=replace(hidden.neuron, bias=bias)), net.layers[1]])
    model = write_netx(net, tmp_path / "biased.net")
    out = tmp_path / "bundle"
    assert main(["deploy", str(model), "--samples", "2", "--steps", "40", "--out", str(out), "--json"]) == 3
    capsys.readouterr()
    assert json.loads((out / "bundle.json").read_text())["separate_runs"] is True
    report = run_bundle(out, backend="cpu", timeout_s=300)
    assert report["equal"] and report["expected_spikes"] > 0, report


@pytest.mark.slow
def test_a_conv_bundle_on_real_nmnist_events_reproduces_on_netx(tmp_path, capsys, no_lava_leftovers):
    """The N-MNIST CNN (strided convs, C,H,W vs netx's W,H,C layout) as a checkpoint: netx on the CPU backend
    reproduces the expected output of the bundle."""
    import torch

    from snndeploy.loader import load_model
    from snndeploy.models.checkpoint import make_checkpoint, save_checkpoint
    from snndeploy.settings import REPO_ROOT

    torch.manual_seed(0)
    model = load_model(REPO_ROOT / "examples" / "nmnist_cnn.yaml")
    ckpt = save_checkpoint(tmp_path / "nmnist.pt", make_checkpoint(model))
    out = tmp_path / "bundle"
    assert main(["deploy", str(ckpt), "--dataset", "nmnist-small", "--samples", "2", "--steps", "30",
                 "--out", str(out), "--json"]) == EXIT_NO_LOIHI
    capsys.readouterr()
    activity = json.loads((out / "expected_activity.json").read_text())
    assert all(row["spikes"] > 0 for row in activity["layers"][:-1])
    report = run_bundle(out, backend="cpu", timeout_s=300)
    assert report["equal"], report
