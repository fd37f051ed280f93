"""Nothing lost: output paths are checked before work, --force keeps the old output until the new one is done,
and ``export --verify`` writes only a network that agrees."""

from __future__ import annotations

import pytest

from snndeploy.atomic import check_output, set_aside
from snndeploy.cli import main
from snndeploy.errors import UserError


def test_an_output_under_a_file_or_of_the_wrong_kind_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file, not a folder"):
        check_output(tmp_path / "file" / "deeper" / "out.nir", force=True)
    (tmp_path / "folder").mkdir()
    with pytest.raises(UserError, match="is a folder; this command writes a file"):
        check_output(tmp_path / "folder", force=True)
    with pytest.raises(UserError, match="is a file; this command writes a folder"):
        check_output(tmp_path / "file", force=True, folder=True)
    with pytest.raises(UserError, match="pass --force"):
        check_output(tmp_path / "file", force=False)
    assert check_output(tmp_path / "new" / "out.nir", force=False) == tmp_path / "new" / "out.nir"


def test_set_aside_puts_the_old_run_back_when_the_new_one_fails(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_text("old")
    (run / "keep.txt").write_text("not ours")
    with pytest.raises(KeyboardInterrupt), set_aside(run, ["checkpoint.pt"]):
        assert not (run / "checkpoint.pt").exists()
        (run / "checkpoint.pt").write_text("half")
        raise KeyboardInterrupt
    assert (run / "checkpoint.pt").read_text() == "old" and (run / "keep.txt").read_text() == "not ours"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_set_aside_deletes_the_old_run_only_after_success(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text("old")
    with set_aside(run):
        (run / "metrics.json").write_text("new")
    assert (run / "metrics.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


class _Disagreeing:
    agree = False

    def to_dict(self) -> dict:
        return {"agree": False}


def test_export_verify_writes_nothing_when_verification_fails(tmp_path, fixtures_dir, monkeypatch, capsys):
    from snndeploy.export import cli as export_cli
    from snndeploy.export import verify as verify_module

    monkeypatch.setattr(export_cli, "_run_verify", lambda *a, **k: _Disagreeing())
    monkeypatch.setattr(verify_module, "describe", lambda report: "layers disagree")
    out = tmp_path / "net.nir"
    out.write_text("previous export")
    code = main(["export", str(fixtures_dir / "mnist-mlp-128" / "network.net"), "--to", "nir", "--out", str(out),
                 "--verify", "--force"])
    assert code == 1
    assert out.read_text() == "previous export"
    assert "NOT exported" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.nir"]
