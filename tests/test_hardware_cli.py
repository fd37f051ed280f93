"""``snndeploy estimate``: table, JSON, plot, exit codes, activity files from a real torch run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from snndeploy.cli import main
from snndeploy.hardware.activity import SCHEMA, activity_from_torch, read_activity, write_activity


@pytest.fixture(scope="module")
def mnist_net(fixtures_dir):
    return fixtures_dir / "mnist-mlp-128" / "network.net"


def run(capsys, *args) -> tuple[int, str, str]:
    code = main(["estimate", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_table_for_the_published_mnist_network(capsys, mnist_net):
    code, out, _ = run(capsys, mnist_net)
    assert code == 0
    assert "loihi2" in out and "FITS" in out and "total cores 5" in out


def test_json_compares_targets_side_by_side_and_exit_code_says_no_fit(capsys, mnist_net):
    code, out, _ = run(capsys, mnist_net, "--target", "loihi2", "--target", "speck", "--json")
    result = json.loads(out)
    assert [t["target"] for t in result["targets"]] == ["loihi2", "speck"]
    assert result["targets"][0]["cores"] == 5 and result["targets"][1]["verdict"] == "does not fit"
    assert code == 1 and result["fits_all"] is False
    assert result["network"]["synapses_nonzero"] == sum(r["synapses_nonzero"] for r in result["layers"])


def test_budget_and_system_options(capsys, mnist_net, tmp_path):
    assert run(capsys, mnist_net, "--budget", "cores=4")[0] == 1
    assert run(capsys, mnist_net, "--budget", "cores=8")[0] == 0
    code, out, _ = run(capsys, mnist_net, "--system", "kapoho_point", "--json")
    assert code == 0 and json.loads(out)["targets"][0]["budget"]["cores"] == 8 * 120
    bad = tmp_path / "budget.yaml"
    bad.write_text("cores: -3\n")
    code, _, err = run(capsys, mnist_net, "--budget", bad)
    assert code == 2 and "budget cores must be a positive integer" in err and err.count("\n") == 1
    binary = tmp_path / "budget.bin"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    for option in ("--budget", "--target"):
        code, _, err = run(capsys, mnist_net, option, binary)
        assert code == 2 and f"{binary}: " in err and "not a text file" in err and err.count("\n") == 1


def test_bad_profile_file_is_exit_2_with_one_line(capsys, mnist_net, tmp_path):
    path = tmp_path / "edge.yaml"
    path.write_text("schema: 1\nname: edge\nmodel: loihi2\nsources: {}\ncore: {neurons: 10}\n")
    code, _, err = run(capsys, mnist_net, "--target", path)
    assert code == 2 and "hardware profile" in err and err.count("\n") == 1


def test_plot_written_and_not_overwritten_without_force(capsys, mnist_net, tmp_path):
    png = tmp_path / "cores.png"
    assert run(capsys, mnist_net, "-t", "loihi2", "-t", "loihi1", "--plot", png)[0] == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, err = run(capsys, mnist_net, "--plot", png)
    assert code == 2 and "--force" in err
    assert run(capsys, mnist_net, "--plot", png, "--force")[0] == 0


def test_activity_from_a_torch_run_drives_synops_and_energy(capsys, mnist_net, tmp_path):
    from snndeploy.data.datasets import make_splits
    from snndeploy.loader import load_model

    torch.set_num_threads(1)
    net = load_model(mnist_net)
    splits = make_splits("mnist", time_steps=16, encoding="rate", subset=1, test_subset=6, input_shape=(784,))
    x = torch.stack([splits.test[i][0] for i in range(6)]).float()
    activity = activity_from_torch(net, x, model="mnist-mlp-128")
    path = write_activity(activity, tmp_path / "activity.json")
    assert read_activity(path) == activity and json.loads(path.read_text())["schema"] == SCHEMA

    code, out, _ = run(capsys, mnist_net, "-t", "loihi2", "-t", "loihi1", "-t", "xylo", "--activity", path, "--json")
    result = json.loads(out)
    work = result["neurobench_workload"]
    # independent count: every input spike reaches the non-zero weights in its column of layer 0
    w0 = net.blocks[0].synapse.weight.detach().reshape(128, 784) != 0
    expected = float((x.double().sum(dim=(0, 2)) @ w0.sum(dim=0).double()) / 6)
    assert work["layers"][0]["synops_effective"] == pytest.approx(expected, rel=1e-9)
    assert work["eff_macs"] == 0 and work["eff_acs"] == work["synops_effective"]
    assert work["synops_dense"] == 16 * result["network"]["synapses"]
    assert 0 < work["activation_sparsity"] < 1
    loihi2, loihi1, xylo = result["targets"]
    for target in (loihi2, loihi1):
        lo, hi = target["energy_latency"]["energy_uj"]
        assert 0 < lo <= hi and target["energy_latency"]["latency_ms"][0] > 0
    assert any("PROXY" in line for line in loihi2["energy_latency"]["basis"])
    assert not any("PROXY" in line for line in loihi1["energy_latency"]["basis"])
    assert xylo["energy_latency"]["energy_uj"] is None  # no per-op energy published: unknown, not guessed
    assert np.isclose(sum(r["spikes_out"] for r in work["layers"]), work["spikes"])


def test_activity_file_errors(capsys, mnist_net, tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"schema": SCHEMA, "samples": 1, "time_steps": 4,
                                "input": {"neurons": 784, "spikes": 3},
                                "layers": [{"neurons": 128, "spikes": 1}]}))
    code, _, err = run(capsys, mnist_net, "--activity", path)
    assert code == 2 and "activity file has 1 layers" in err
    path.write_text("{not json")
    assert run(capsys, mnist_net, "--activity", path)[0] == 2


@pytest.mark.lava
def test_activity_written_by_simulate_feeds_estimate(capsys, mnist_net, tmp_path, no_lava_leftovers):
    out = tmp_path / "sim"
    assert main(["simulate", str(mnist_net), "--dataset", "mnist", "--samples", "2", "--steps", "16",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    code, text, _ = run(capsys, mnist_net, "--activity", out / "activity.json", "--json")
    result = json.loads(text)
    recorded = json.loads((out / "activity.json").read_text())
    work = result["neurobench_workload"]
    assert code == 0 and work["source"] == "lava" and work["samples"] == 2
    # simulate's measured synops are used as recorded, layer by layer
    assert [r["synops_effective"] for r in work["layers"]] == [lay["synops"] for lay in recorded["layers"]]
    assert all(r["synops_basis"] == "measured" for r in work["layers"])
    assert result["targets"][0]["energy_latency"]["energy_uj"] is not None


def test_checkpoint_estimates_like_its_netx_source(capsys, mnist_net, tmp_path):
    from snndeploy.loader import load_model
    from snndeploy.models.checkpoint import make_checkpoint, save_checkpoint

    ckpt = save_checkpoint(tmp_path / "mnist.pt", make_checkpoint(load_model(mnist_net)))
    from_ckpt = json.loads(run(capsys, ckpt, "--json")[1])
    from_netx = json.loads(run(capsys, mnist_net, "--json")[1])
    assert from_ckpt["layers"] == from_netx["layers"]
    assert from_ckpt["targets"][0]["cores"] == from_netx["targets"][0]["cores"] == 5
