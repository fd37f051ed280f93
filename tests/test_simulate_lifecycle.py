"""``snndeploy simulate`` leaves no Lava process behind: after success, a parent error, a timeout, a crashed
worker and Ctrl-C (checked by process listing, as in tests/test_foundation_runner.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import psutil
import pytest
from leftovers import assert_nothing_left, descendants

import snndeploy  # noqa: F401
from snndeploy.cli import main
from snndeploy.lava_runner import LavaTimeoutError, lava_worker_processes
from snndeploy.loader import load_net
from snndeploy.simulate import simulate_net

pytestmark = pytest.mark.lava


def mnist_mlp(fixtures_dir):
    return fixtures_dir / "mnist-mlp-128" / "network.net"


def random_spikes(samples: int, steps: int) -> np.ndarray:
    return (np.random.default_rng(0).random((samples, 784, steps)) < 0.2).astype(np.uint8)


def test_error_in_the_parent_during_a_run_stops_it(fixtures_dir, no_lava_leftovers):
    net = load_net(mnist_mlp(fixtures_dir))
    seen = []

    def fail_at_two(done: int) -> None:
        seen.append(done)
        assert lava_worker_processes(), "the run should be up while samples are reported"
        if done == 2:
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        simulate_net(net, random_spikes(4, 10), on_sample=fail_at_two, copies=1)
    assert seen == [1, 2]


def test_a_run_past_its_timeout_is_stopped_with_a_message(fixtures_dir, capsys, no_lava_leftovers):
    net = load_net(mnist_mlp(fixtures_dir))
    start = time.monotonic()
    with pytest.raises(LavaTimeoutError, match="no result after"):
        simulate_net(net, random_spikes(1, 20_000), timeout_s=0.05)
    assert time.monotonic() - start < 60
    code = main(["simulate", str(mnist_mlp(fixtures_dir)), "--dataset", "mnist", "--samples", "1",
                 "--steps", "20000", "--timeout", "0.05"])
    assert code == 1
    assert "no result after 0.05 s; the run was stopped" in capsys.readouterr().err


class Cli:
    """A long ``snndeploy simulate`` in its own process group (so that a group signal is a terminal Ctrl-C), in
    one Lava runtime (tests/test_simulate_workers.py runs several), its stderr read as it comes (the progress bar
    writes no newlines)."""

    SAMPLES = 400

    def __init__(self, fixtures_dir, tmp_path) -> None:
        args = [sys.executable, "-m", "snndeploy.cli", "simulate", str(mnist_mlp(fixtures_dir)), "--dataset",
                "mnist", "--samples", str(self.SAMPLES), "--steps", "50", "--out", str(tmp_path / "out"),
                "--workers", "1", "--copies", "1"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        self._err = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while chunk := os.read(self.proc.stderr.fileno(), 4096):
            self._err += chunk

    @property
    def err(self) -> str:
        return self._err.decode(errors="replace")

    def stepping(self, timeout_s: float = 600.0) -> list[psutil.Process]:
        """The Lava workers once the run is stepping: the progress bar has counted a sample (a Ctrl-C while Lava
        forks its workers is held until it has started, so this is the state a user interrupts). Waits as long as
        a start-up on a loaded machine takes (imports, data, compile), bounded."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.proc.poll() is None:
            if re.search(rf"\b[1-9]\d*/{self.SAMPLES}\b", self.err):
                workers = descendants(psutil.Process(self.proc.pid))
                assert workers, "the run is stepping without Lava workers"
                return workers
            time.sleep(0.1)
        raise AssertionError(f"the simulation never stepped: {self.err[-2000:]}")

    def finish(self, timeout_s: float = 300.0) -> tuple[int, str]:
        """Exit code and stderr once the CLI exits (bounded: a stop that hangs fails the test)."""
        code = self.proc.wait(timeout=timeout_s)
        self._reader.join(timeout=30)
        return code, self.err

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)


def test_ctrl_c_stops_the_simulation_and_its_workers(fixtures_dir, tmp_path):
    cli = Cli(fixtures_dir, tmp_path)
    try:
        workers = cli.stepping()
        os.killpg(cli.proc.pid, signal.SIGINT)  # what a terminal Ctrl-C does
        code, err = cli.finish()
        assert code == 130, err
        assert "aborted" in err or "interrupted" in err
        assert_nothing_left(workers, timeout_s=120)
        assert not (tmp_path / "out").exists()  # nothing half-written
    finally:
        cli.kill()


@pytest.mark.slow
def test_a_crashed_worker_fails_the_simulation_and_takes_the_rest_down(fixtures_dir, tmp_path):
    cli = Cli(fixtures_dir, tmp_path)
    try:
        workers = cli.stepping()
        max(workers, key=lambda p: p.pid).kill()  # one process model dies (as on an out-of-memory kill)
        code, err = cli.finish()
        assert code == 1, err
        assert "Lava worker" in err
        assert_nothing_left(workers, timeout_s=120)
        assert not (tmp_path / "out").exists()
    finally:
        cli.kill()
