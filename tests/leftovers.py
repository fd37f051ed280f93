"""What a Lava run leaves behind: the descendants of a process and the ``/dev/shm`` segments they map (read from
``/proc/<pid>/maps``), and the check that both are gone. Shared by the lifecycle and worker tests."""

from __future__ import annotations

import os
from pathlib import Path

import psutil


def descendants(parent: psutil.Process) -> list[psutil.Process]:
    """Every process below ``parent`` except multiprocessing's resource tracker (it outlives runs by design)."""
    return [p for p in parent.children(recursive=True) if "resource_tracker" not in " ".join(p.cmdline())]


def shm_segments(procs: list[psutil.Process]) -> set[str]:
    """``/dev/shm`` segments mapped by ``procs`` right now."""
    names = set()
    for proc in procs:
        try:
            maps = Path(f"/proc/{proc.pid}/maps").read_text()
        except OSError:
            continue
        names |= {line.split()[-1] for line in maps.splitlines() if "/dev/shm/" in line}
    return names


def assert_nothing_left(procs: list[psutil.Process], segments: set[str] = frozenset(), timeout_s: float = 30) -> None:
    """Every process in ``procs`` exits within ``timeout_s`` and no segment of ``segments`` remains."""
    _, alive = psutil.wait_procs(procs, timeout=timeout_s)
    assert not alive, f"left behind: {[p.pid for p in alive]}"
    left = [name for name in segments if os.path.exists(name)]
    assert not left, f"shared memory left behind: {left}"
