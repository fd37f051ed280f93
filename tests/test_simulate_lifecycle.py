"""``snndeploy simulate`` leaves no Lava process behind: after success, a parent error, a timeout, a crashed
worker and Ctrl-C (checked by process listing, as in tests/test_foundation_runner.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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


def start_cli(fixtures_dir, tmp_path) -> subprocess.Popen:
    """A long ``snndeploy simulate`` in its own process group (so that a group signal is a terminal Ctrl-C), in
    one Lava runtime (tests/test_simulate_workers.py runs several)."""
    args = [sys.executable, "-m", "snndeploy.cli", "simulate", str(mnist_mlp(fixtures_dir)), "--dataset", "mnist",
            "--samples", "400", "--steps", "50", "--out", str(tmp_path / "out"), "--json", "--workers", "1",
            "--copies", "1"]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def lava_workers_of(proc: subprocess.Popen, timeout_s: float = 120.0) -> list[psutil.Process]:
    """The Lava workers once the run is stepping: no new worker for 3 s (the runner ignores SIGINT while it
    forks the workers, so a Ctrl-C during start-up would be lost)."""
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + timeout_s
    seen, stable_since = -1, time.monotonic()
    while time.monotonic() < deadline and proc.poll() is None:
        count = len(descendants(parent))
        if count != seen:
            seen, stable_since = count, time.monotonic()
        elif count >= 8 and time.monotonic() - stable_since > 3.0:
            return descendants(parent)
        time.sleep(0.1)
    raise AssertionError(f"the simulation never started its Lava run: {proc.communicate()[1][-2000:]}")


def test_ctrl_c_stops_the_simulation_and_its_workers(fixtures_dir, tmp_path):
    child = start_cli(fixtures_dir, tmp_path)
    try:
        workers = lava_workers_of(child)
        os.killpg(child.pid, signal.SIGINT)  # what a terminal Ctrl-C does
        _, err = child.communicate(timeout=60)
        assert child.returncode == 130, err
        assert "aborted" in err or "interrupted" in err
        assert_nothing_left(workers)
        assert not (tmp_path / "out").exists()  # nothing half-written
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)


@pytest.mark.slow
def test_a_crashed_worker_fails_the_simulation_and_takes_the_rest_down(fixtures_dir, tmp_path):
    child = start_cli(fixtures_dir, tmp_path)
    try:
        workers = lava_workers_of(child)
        workers[-1].kill()  # one process model dies (as on an out-of-memory kill)
        _, err = child.communicate(timeout=60)
        assert child.returncode == 1, err
        assert "Lava worker" in err and "\n" not in err.strip().splitlines()[-1]
        assert_nothing_left(workers)
        assert not (tmp_path / "out").exists()
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
