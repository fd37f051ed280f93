"""Ctrl-C (SIGINT to the foreground process group) and SIGTERM during a long ``verify``: every Lava worker stops,
every shared-memory segment is unlinked, and the command exits 130 with one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from leftovers import assert_nothing_left, descendants, shm_segments

pytestmark = pytest.mark.lava


@pytest.fixture(scope="module")
def long_verify(fixtures_dir, tmp_path_factory) -> list[str]:
    from snndeploy.export.nir_io import write_nir
    from snndeploy.export.slayer_io import from_slayer
    from snndeploy.loader import load_model

    net = fixtures_dir / "mnist-mlp-128" / "network.net"
    nir = tmp_path_factory.mktemp("interrupt") / "mlp128.nir"
    write_nir(from_slayer(load_model(net)), nir)
    return [sys.executable, "-m", "snndeploy.cli", "verify", str(net), str(nir), "--samples", "50", "--steps", "100"]


def _run_and_stop(argv: list[str], signum: int) -> tuple[subprocess.CompletedProcess, list, set[str], float]:
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    parent = psutil.Process(child.pid)
    try:
        deadline = time.monotonic() + 240
        workers: list[psutil.Process] = []
        while time.monotonic() < deadline and child.poll() is None and len(workers) < 3:
            time.sleep(0.2)
            workers = descendants(parent)
        assert len(workers) >= 3, "the Lava run never started"
        segments = shm_segments([parent, *workers])
        assert segments, "no shared memory seen: the check below would prove nothing"
        os.killpg(child.pid, signum)  # a terminal's Ctrl-C reaches the whole foreground group
        start = time.monotonic()
        _, err = child.communicate(timeout=60)
        return (subprocess.CompletedProcess(argv, child.returncode, "", err), workers, segments,
                time.monotonic() - start)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)


@pytest.mark.parametrize("signum", [
    signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_during_verify_leaves_no_process_and_no_shared_memory(long_verify, signum):
    result, workers, segments, seconds = _run_and_stop(long_verify, signum)
    assert result.returncode == 130, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last == ("snndeploy: interrupted" if signum == signal.SIGINT else "snndeploy: stopped by SIGTERM")
    assert "Traceback" not in result.stderr
    assert seconds < 20, f"took {seconds:.1f} s to stop"
    assert_nothing_left(workers, segments, timeout_s=10)


@pytest.mark.slow
def test_sigterm_stops_a_lava_run_started_outside_the_cli(fixtures_dir):
    """A script (a benchmark, a notebook job) running Lava through snndeploy also stops cleanly on SIGTERM."""
    script = ("import numpy as np\n"
              "from snndeploy.loader import load_net\nfrom snndeploy.simulate import simulate_net\n"
              f"net = load_net({str(fixtures_dir / 'mnist-mlp-128' / 'network.net')!r})\n"
              "x = (np.random.default_rng(0).random((400, 784, 50)) < 0.2).astype(np.uint8)\n"
              "simulate_net(net, x)\n")
    result, workers, segments, seconds = _run_and_stop([sys.executable, "-c", script], signal.SIGTERM)
    assert result.returncode != 0
    assert "Interrupted: SIGTERM" in result.stderr
    assert seconds < 20, f"took {seconds:.1f} s to stop"
    assert_nothing_left(workers, segments, timeout_s=10)
