"""``simulate --workers N``: samples split over N Lava runtimes in worker processes give the same results as one,
and every exit (success, an error in a worker, Ctrl-C, the parent killed) leaves no process and no ``/dev/shm``
segment behind (segments are the ones our processes had mapped, read from ``/proc/<pid>/maps``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
from leftovers import assert_nothing_left, descendants, shm_segments

import snndeploy  # noqa: F401
from snndeploy.lava_runner import LavaTimeoutError, lava_worker_processes
from snndeploy.lava_workers import run_parallel
from snndeploy.sim_inputs import prepare
from snndeploy.simulate import simulate_net

pytestmark = pytest.mark.lava


def test_two_workers_equal_one_and_report_progress(fixtures_dir, no_lava_leftovers):
    net, inputs = prepare(fixtures_dir / "mnist-mlp-512" / "network.net", None, "mnist", 6, 10)
    seen: list[int] = []
    both = simulate_net(net, inputs.spikes, workers=2, copies=3, on_sample=seen.append, input_bias=inputs.bias)
    one = simulate_net(net, inputs.spikes, workers=1, copies=3, input_bias=inputs.bias)
    assert both.timing.workers == 2 and both.timing.chunks == 2 and both.samples == 6
    assert seen[-1] == 6 and seen == sorted(seen)
    assert np.array_equal(both.output, one.output)
    assert np.array_equal(both.probes[3]["v"], one.probes[3]["v"])
    assert len({one.probes[3]["v"][k].tobytes() for k in range(6)}) == 6  # six digits, each its own bias
    assert [a.per_neuron.tolist() for a in both.activity.layers] == [a.per_neuron.tolist()
                                                                     for a in one.activity.layers]
    assert both.activity.steps == one.activity.steps


def test_an_error_in_one_worker_stops_all_of_them(fixtures_dir, no_lava_leftovers):
    net, inputs = prepare(fixtures_dir / "mnist-mlp-128" / "network.net", None, "mnist", 2, 20_000)
    start = time.monotonic()
    with pytest.raises(LavaTimeoutError, match="no result after"):
        simulate_net(net, inputs.spikes, workers=2, timeout_s=0.05)
    assert time.monotonic() - start < 120
    assert not lava_worker_processes()


def _fail_or_sleep(index: int, report) -> None:
    if index == 0:
        raise ValueError("worker 0 fails")
    time.sleep(300)


def test_a_failing_worker_takes_down_a_busy_one():
    start = time.monotonic()
    with pytest.raises(ValueError, match="worker 0 fails"):
        run_parallel(_fail_or_sleep, [(0,), (1,)])
    assert time.monotonic() - start < 60
    assert not descendants(psutil.Process())


def start_cli(fixtures_dir, tmp_path) -> subprocess.Popen:
    """Two workers, each one long Lava build: 2 copies x 100 MNIST digits x 50 steps back to back."""
    args = [sys.executable, "-m", "snndeploy.cli", "simulate", str(fixtures_dir / "mnist-mlp-128" / "network.net"),
            "--dataset", "mnist", "--samples", "400", "--steps", "50", "--workers", "2", "--copies", "2",
            "--out", str(tmp_path / "out"), "--json"]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def running_workers(child: subprocess.Popen, timeout_s: float = 180.0) -> tuple[list[psutil.Process], set[str]]:
    """The CLI's descendants and their shared-memory segments once both workers' Lava runs are stepping."""
    parent = psutil.Process(child.pid)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and child.poll() is None:
        procs = descendants(parent)
        workers = [p for p in procs if p.ppid() == child.pid]
        if len(workers) == 2 and all(len(w.children()) >= 8 for w in workers):
            time.sleep(2.0)
            procs = parent.children(recursive=True)
            return procs, shm_segments(procs)
        time.sleep(0.2)
    raise AssertionError(f"the workers never started: {child.communicate()[1][-2000:]}")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c", "kill-a-lava-process"])
def test_cli_with_workers_stops_cleanly(fixtures_dir, tmp_path, how):
    child = start_cli(fixtures_dir, tmp_path)
    try:
        procs, segments = running_workers(child)
        assert segments, "expected Lava's shared memory to be mapped"
        if how == "ctrl-c":
            os.killpg(child.pid, signal.SIGINT)
        else:
            max(procs, key=lambda p: p.pid).kill()  # one Lava process model dies
        _, err = child.communicate(timeout=120)
        assert child.returncode == (130 if how == "ctrl-c" else 1), err
        assert_nothing_left(procs, segments)
        assert not (tmp_path / "out").exists()
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)


@pytest.mark.slow
def test_killing_the_parent_takes_the_workers_down(fixtures_dir, tmp_path):
    child = start_cli(fixtures_dir, tmp_path)
    try:
        procs, _ = running_workers(child)
        child.kill()
        child.wait(30)
        assert_nothing_left(procs)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
