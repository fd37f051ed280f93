"""Test helper: start a `snndeploy prune` run in a subprocess and SIGKILL it once it has saved round N."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import torch


def kill_after_round(cmd: list[str], out: Path, rounds: int, env: dict, poll_s: float = 0.1) -> dict:
    """Run ``cmd`` (which writes ``out/prune_state.pt``), kill it after ``rounds`` saved rounds; return that state."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / "prune_state.pt"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if state.is_file() and torch.load(state, weights_only=True)["next_round"] >= rounds:
                break
            time.sleep(poll_s)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    return torch.load(state, weights_only=True)
