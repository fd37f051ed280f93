"""The CLI framework and `snndeploy doctor` on the real stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from snndeploy.cli import COMMANDS, main

SNNDEPLOY = [sys.executable, "-m", "snndeploy.cli"]


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*SNNDEPLOY, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_doctor_json_reports_a_working_stack(no_lava_leftovers):
    result = run_cli("doctor", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and not report["problems"]
    assert report["versions"]["lava-nc"] == "0.10.0" and report["versions"]["lava-dl"] == "0.6.0"
    assert report["versions"]["numpy"].startswith("1.")
    assert all(state == "ok" for state in report["imports"].values())
    assert report["compat"]["var_model_patched"] == 8
    assert report["lava_run"]["ok"] and report["lava_run"]["workers_left"] == 0
    assert report["folders"]["data_found"] and report["folders"]["fixtures_found"]
    assert report["loihi2"]["available"] is False  # lava-loihi is INRC-only
    assert "available" in report["gpu"]


def test_doctor_reports_a_missing_data_folder(tmp_path):
    result = run_cli("--data-dir", str(tmp_path / "nowhere"), "doctor", "--json")
    report = json.loads(result.stdout)
    assert report["folders"]["data_found"] is False
    assert report["folders"]["data_dir"] == str(tmp_path / "nowhere")


def test_help_lists_only_commands_whose_module_exists(capsys):
    assert main(["--help"]) == 0
    listed = capsys.readouterr().out
    assert "doctor" in listed
    for name in COMMANDS:
        module = COMMANDS[name][0].split(":")[0]
        exists = any((Path(__file__).parents[1] / folder / (module.split(".", 2)[-1].replace(".", "/") + suffix))
                     .exists() for folder in ("deploy", "prune", "export", "hardware") for suffix in (".py", ""))
        if not exists:
            assert f"  {name} " not in listed


def test_unknown_command_and_bad_option_exit_2():
    assert main(["no-such-command"]) == 2
    assert main(["doctor", "--no-such-option"]) == 2


def test_user_error_is_one_line_with_exit_2(tmp_path, capsys):
    from snndeploy.atomic import write_text

    target = tmp_path / "out.txt"
    target.write_text("keep me")
    import click

    from snndeploy import cli

    @click.command("write-demo")
    def write_demo() -> None:
        write_text(target, "new", force=False)

    cli.cli.add_command(write_demo)
    try:
        assert main(["write-demo"]) == 2
    finally:
        cli.cli.commands.pop("write-demo")
    err = capsys.readouterr().err.strip()
    assert err == f"snndeploy: error: {target}: exists; pass --force to overwrite it"
    assert target.read_text() == "keep me"


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    import pytest

    from snndeploy.atomic import atomic_path

    target = tmp_path / "result.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_atomic_outputs_get_normal_permissions(tmp_path):
    from snndeploy.atomic import atomic_dir, write_text

    umask = os.umask(0o022)
    try:
        path = write_text(tmp_path / "a.txt", "x")
        with atomic_dir(tmp_path / "folder") as tmp:
            (tmp / "inner.txt").write_text("y")
    finally:
        os.umask(umask)
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    assert oct((tmp_path / "folder").stat().st_mode & 0o777) == oct(0o755)
