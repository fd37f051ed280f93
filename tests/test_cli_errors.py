"""Every way a command can fail prints exactly one line on stderr with a meaningful exit code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import click
import pytest

from snndeploy import cli
from snndeploy.cli import main


@pytest.mark.parametrize("args, culprit", [
    (["no-such-command"], "no-such-command"),
    (["export"], "MODEL"),
    (["export", "m.nir", "--to", "nirr", "--out", "x"], "--to"),
    (["export", "m.nir", "--to", "nir", "--out", "x", "--no-such-option"], "--no-such-option"),
    (["verify", "a", "b", "--samples", "abc"], "--samples"),
    (["verify", "a", "b", "--samples", "0"], "--samples"),
    (["export", "/", "--to", "nir", "--out", "x"], "directory"),
    (["estimate"], "MODEL"),
])
def test_usage_errors_are_one_line_with_exit_2(args, culprit, capsys):
    assert main(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and culprit in lines[0] and "Usage:" not in captured.err
    assert captured.out == ""


def _command(name: str, fn) -> None:
    cli.cli.add_command(click.command(name)(fn))


@pytest.fixture
def demo_command():
    added: list[str] = []

    def add(name: str, fn) -> None:
        _command(name, fn)
        added.append(name)

    yield add
    for name in added:
        cli.cli.commands.pop(name)


def test_an_internal_error_is_exit_1_asking_for_a_bug_report(demo_command, capsys):
    def boom() -> None:
        raise ZeroDivisionError("division by zero\nsecond line")

    demo_command("boom", boom)
    assert main(["boom"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ZeroDivisionError" in err[0] and "bug" in err[0] and "--debug" in err[0]
    assert main(["--debug", "boom"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_ctrl_c_in_a_command_is_exit_130_with_one_line(demo_command, capsys):
    def stop() -> None:
        raise KeyboardInterrupt

    demo_command("stop", stop)
    assert main(["stop"]) == 130
    assert capsys.readouterr().err.strip().splitlines() == ["snndeploy: interrupted"]


def test_sigterm_runs_finally_blocks_and_exits_130(tmp_path):
    """SIGTERM becomes a KeyboardInterrupt: cleanup in finally blocks runs (Lava runs stop there)."""
    marker = tmp_path / "cleaned"
    script = (
        "import sys, time, click\n"
        "from snndeploy import cli\n"
        "@click.command('hang')\n"
        "def hang():\n"
        "    try:\n"
        "        print('ready', flush=True); time.sleep(60)\n"
        "    finally:\n"
        f"        open({str(marker)!r}, 'w').close()\n"
        "cli.cli.add_command(hang)\n"
        "sys.exit(cli.main(['hang']))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err.strip().splitlines() == ["snndeploy: stopped by SIGTERM"]
    assert Path(marker).exists()
