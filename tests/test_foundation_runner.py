"""Every Lava run through snndeploy.lava_runner is stopped: success, worker errors, timeouts, signals, exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

import snndeploy  # noqa: F401
from snndeploy import lava_runner

TESTS = Path(__file__).parent
pytestmark = pytest.mark.lava


def fixed_pt():
    from lava.magma.core.run_configs import Loihi2SimCfg

    return Loihi2SimCfg(select_tag="fixed_pt")


def test_successful_run_returns_output_and_leaves_nothing(no_lava_leftovers):
    from lava_procs.networks import chain

    sink, _ = chain(steps=10)
    with lava_runner.lava_session(sink):
        lava_runner.run_steps(sink, 10, fixed_pt(), stop_after=False)
        out = sink.data.get()
    assert out.sum() > 0
    lava_runner.stop(sink)  # stopping twice is harmless


@pytest.mark.parametrize("fail_at", [1, 5])
def test_error_mid_pipeline_is_raised_with_worker_traceback(fail_at, no_lava_leftovers):
    from lava_procs.faulty import Relay
    from lava_procs.networks import chain

    sink, _ = chain(steps=20, relay=Relay(shape=(4,), fail_at=fail_at))
    start = time.monotonic()
    with pytest.raises(lava_runner.LavaModelError) as info:
        lava_runner.run_steps(sink, 20, fixed_pt(), timeout_s=60)
    assert "injected failure" in str(info.value)
    assert "Traceback" in str(info.value)
    assert time.monotonic() - start < 30


def test_stalled_run_times_out_and_is_stopped(no_lava_leftovers):
    from lava_procs.faulty import Relay
    from lava_procs.networks import chain

    sink, _ = chain(steps=20, relay=Relay(shape=(4,), fail_at=3, mode=1))
    start = time.monotonic()
    with pytest.raises(lava_runner.LavaTimeoutError):
        lava_runner.run_steps(sink, 20, fixed_pt(), timeout_s=2)
    assert time.monotonic() - start < 20


def test_exception_in_the_parent_inside_a_session_stops_the_run(no_lava_leftovers):
    from lava_procs.networks import chain

    sink, _ = chain(steps=10)
    with pytest.raises(KeyError), lava_runner.lava_session(sink):
        lava_runner.run_steps(sink, 10, fixed_pt(), stop_after=False)
        raise KeyError("parent failure after the run")


CHILD = textwrap.dedent("""
    import sys, time
    import snndeploy
    from snndeploy import lava_runner
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava_procs.faulty import Relay
    from lava_procs.networks import chain
    mode = sys.argv[1]
    if mode == "forget-stop":
        sink, _ = chain(steps=10)
        lava_runner.run_steps(sink, 10, Loihi2SimCfg(select_tag="fixed_pt"), stop_after=False)
        print("READY", flush=True)
        raise SystemExit(0)          # never stopped by the script itself
    try:
        sink, _ = chain(steps=100, relay=Relay(shape=(4,), fail_at=2, mode=1))
        print("READY", flush=True)
        lava_runner.run_steps(sink, 100, Loihi2SimCfg(select_tag="fixed_pt"), timeout_s=None)
    except KeyboardInterrupt:
        print("INTERRUPTED", flush=True)
        raise SystemExit(130)
""")


def start_child(mode: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", CHILD, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)


def lava_descendants(proc: subprocess.Popen, settle_s: float = 3.0) -> list[psutil.Process]:
    """Wait until the child's Lava run is up and return its worker processes."""
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        kids = parent.children(recursive=True)
        if len(kids) >= 5:
            time.sleep(settle_s)
            return parent.children(recursive=True)
        time.sleep(0.1)
    raise AssertionError("the child never started its Lava run")


def processes_running(code: str) -> list[psutil.Process]:
    """Live processes whose command line carries ``code`` (forked Lava workers keep their parent's)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if code in (proc.info["cmdline"] or []) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            pass
    return found


def assert_all_gone(procs: list[psutil.Process], timeout_s: float = 15.0) -> None:
    gone, alive = psutil.wait_procs(procs, timeout=timeout_s)
    assert not alive, f"left behind: {[p.pid for p in alive]}"


def test_ctrl_c_to_the_process_group_stops_cleanly():
    child = start_child("stall")
    try:
        workers = lava_descendants(child)
        os.killpg(child.pid, signal.SIGINT)  # what a terminal Ctrl-C does
        out, err = child.communicate(timeout=60)
        assert child.returncode == 130, err
        assert "INTERRUPTED" in out
        assert_all_gone(workers)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)


def test_ctrl_c_during_start_up_is_not_lost():
    child = start_child("stall")
    try:
        assert child.stdout.readline().strip() == "READY"  # printed right before Lava compiles and forks
        os.killpg(child.pid, signal.SIGINT)
        out, err = child.communicate(timeout=60)
        assert child.returncode == 130, err
        assert "INTERRUPTED" in out
        assert_all_gone(processes_running(CHILD))
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)


def test_sigterm_of_the_parent_takes_the_workers_down():
    shm_before = set(os.listdir("/dev/shm"))
    child = start_child("stall")
    try:
        workers = lava_descendants(child)
        child.terminate()
        child.wait(timeout=30)
        assert_all_gone(workers)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and {f for f in os.listdir("/dev/shm") if f.startswith("psm_")} - shm_before:
        time.sleep(0.2)
    leaked = {f for f in os.listdir("/dev/shm") if f.startswith("psm_")} - shm_before
    assert not leaked, f"shared memory leaked: {leaked}"


def test_runtime_never_stopped_by_the_script_does_not_hang_the_interpreter():
    child = start_child("forget-stop")
    try:
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    assert child.returncode == 0, err
    assert "READY" in out
