"""Shared test fixtures: real data and fixture folders, and a check that no Lava worker outlives a test."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

import snndeploy  # noqa: F401  (installs the Lava compatibility hook before any lava import)
from snndeploy import settings

os.environ.setdefault("MPLBACKEND", "Agg")

# A suite started in the background by a non-interactive shell (`make test &`, some CI runners) inherits SIGINT
# ignored, and so would every child it starts: the Ctrl-C tests would then test nothing but that. Restore it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = settings.data_dir()
    if not path.is_dir():
        pytest.fail(f"data folder {path} not found: set SNNDEPLOY_DATA")
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    path = settings.fixtures_dir() / "lava-dl"
    if not path.is_dir():
        pytest.fail(f"fixtures folder {path} not found: set SNNDEPLOY_FIXTURES")
    return path


def wait_for_no_lava_workers(timeout_s: float = 5.0) -> list:
    """Lava workers still alive after ``timeout_s`` (normally none)."""
    from snndeploy.lava_runner import lava_worker_processes

    deadline = time.monotonic() + timeout_s
    while True:
        left = lava_worker_processes()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


@pytest.fixture(scope="module")
def one_thread():
    """Small tensors: one torch thread is faster than several competing for the shared cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def no_lava_leftovers():
    """Fails the test if Lava worker processes remain after it."""
    yield
    left = wait_for_no_lava_workers()
    assert not left, f"Lava processes left behind: {[p.pid for p in left]}"
