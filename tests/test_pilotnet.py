"""lava-dl's PilotNet LIF (tests/data/pilotnet_lif, rectangular stride and padding) through the CLI: estimate gives
the 74 cores of its published compile, export writes a NIR file that ``nir.read`` (type-checked) and snndeploy
both read back, and the netx, NIR and Lava exports all succeed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from snndeploy.cli import main

DATA = Path(__file__).parent / "data" / "pilotnet_lif"
NET = DATA / "network.net"


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([*map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_estimate_gives_74_loihi2_cores(capsys):
    code, out, err = run(capsys, "estimate", NET, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["targets"][0]["cores"] == 74
    per_layer = [row["cores"] for row in result["targets"][0]["layers"]]
    assert sum(per_layer) == 74 and len(per_layer) == 10  # input layer, 5 conv, 4 dense (flatten is no layer)
    assert result["layers"][4]["in_shape"] == [48, 7, 24] and result["layers"][4]["out_shape"] == [64, 4, 22]


@pytest.fixture(scope="module")
def pilot_nir(tmp_path_factory) -> Path:
    from snndeploy.export.nir_io import write_nir
    from snndeploy.export.slayer_io import from_slayer
    from snndeploy.models.netx_import import import_netx

    return write_nir(from_slayer(import_netx(NET)), tmp_path_factory.mktemp("pilot") / "pilot.nir")


def test_export_nir_reads_back_in_nir_and_snndeploy(capsys, tmp_path, pilot_nir):
    import nir

    from snndeploy.export.netx_io import read_netx
    from snndeploy.export.nir_io import read_nir

    out = tmp_path / "pilot.nir"
    code, _, err = run(capsys, "export", NET, "--to", "nir", "--out", out)
    assert code == 0, err
    assert "RuntimeWarning" not in err
    graph = nir.read(out)  # with nir's own type check
    assert graph.nodes["b7_dense_lif"].output_type["output"].tolist() == [100]
    ours, direct = read_nir(out), read_netx(NET)
    assert [la.out_shape for la in ours.layers] == [la.out_shape for la in direct.layers]
    assert ours.layers[4].stride == (2, 1) and ours.layers[4].padding == (1, 0)
    for a, b in zip(ours.layers, direct.layers, strict=True):
        assert np.array_equal(np.asarray(a.weight), np.asarray(b.weight).reshape(np.shape(a.weight)))
    code, out_text, err = run(capsys, "estimate", out, "--json")
    assert code == 0, err
    assert json.loads(out_text)["targets"][0]["cores"] == 74


@pytest.mark.parametrize("to", ["netx", "onnx"])
def test_export_to_netx_and_onnx(capsys, tmp_path, to):
    out = tmp_path / f"pilot.{to}"
    code, _, err = run(capsys, "export", NET, "--to", to, "--out", out)
    assert code == 0, err
    assert out.is_file()


def test_a_git_lfs_pointer_is_named_as_such(capsys, tmp_path):
    pointer = tmp_path / "network.net"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:9b0b\nsize 2701856\n")
    for command in ("estimate", "simulate", "export"):
        extra = {"export": ["--to", "nir", "--out", tmp_path / "x.nir"], "estimate": [],
                 "simulate": ["--dataset", "mnist"]}[command]
        code, _, err = run(capsys, command, pointer, *extra)
        assert code == 2
        assert "Git LFS pointer" in err and "Traceback" not in err
