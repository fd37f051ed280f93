"""Lava runs in parallel worker processes: each worker runs its share through :mod:`snndeploy.lava_runner`, and
all of them are stopped on an error, a time-out and Ctrl-C, with nothing left behind.

Workers are forked (Lava's own start method) and are not daemons, because Lava forks its runtime processes from
them. Each worker turns SIGTERM into :class:`snndeploy.interrupts.Interrupted` (a KeyboardInterrupt), so that
``lava_runner`` stops its Lava runtime (workers and ``/dev/shm`` segments, without Lava's handshake) on the way
out; the parent sends SIGTERM to every worker still running when anything goes wrong (or the parent is
interrupted), waits ``GRACE_S``, then kills what remains. Every process forked here dies with the parent
(``lava_runner``'s parent-death signal), even if the parent is killed.

Call from the main thread.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import queue as queue_module
import signal
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from snndeploy import lava_runner
from snndeploy.interrupts import Interrupted

GRACE_S = 20.0  # how long a stopped worker may take to stop its Lava runtime before it is killed
POLL_S = 0.2


def default_workers() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _raise_stop(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


def _worker_main(index: int, fn: Callable[..., Any], args: tuple, messages: Any) -> None:
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the workers
    try:
        result = fn(*args, lambda done: messages.put(("progress", index, done)))
        messages.put(("done", index, result))
    except Interrupted:
        messages.put(("stopped", index, None))
    except BaseException as exc:  # noqa: BLE001  (everything is reported to the parent)
        messages.put(("error", index, _portable(exc)))
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # nothing left to clean up: a stop now just ends the process
        messages.close()
        messages.join_thread()


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a LavaRunError carrying its text and traceback."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001
        text = "".join(traceback.format_exception(exc))
        return lava_runner.LavaRunError(f"{type(exc).__name__}: {exc}\n--- worker traceback ---\n{text}")


def run_parallel(fn: Callable[..., Any], parts: Sequence[tuple], *,
                 on_progress: Callable[[int], None] | None = None,
                 silence_s: float | None = None) -> list[Any]:
    """``[fn(*part, report) for part in parts]``, each call in a worker process of its own, results in order.

    ``fn`` calls ``report(done)`` with its own count of finished items; ``on_progress(total)`` gets the sum over
    the workers. A worker's exception is re-raised here (after every worker is stopped); so is a worker that
    dies without reporting, and ``silence_s`` seconds without any message (a hung worker).
    """
    lava_runner._register_fork_hook()  # workers (and their Lava processes) die with the parent
    context = multiprocessing.get_context("fork")
    messages = context.Queue()
    workers = [context.Process(target=_worker_main, args=(i, fn, part, messages), name=f"lava-worker-{i}")
               for i, part in enumerate(parts)]
    results: dict[int, Any] = {}
    progress = [0] * len(workers)
    try:
        for worker in workers:
            worker.start()
        last_message = time.monotonic()
        while len(results) < len(workers):
            try:
                kind, index, payload = messages.get(timeout=POLL_S)
            except queue_module.Empty:
                _check_alive(workers, results, messages)
                if silence_s is not None and time.monotonic() - last_message > silence_s:
                    raise lava_runner.LavaTimeoutError(
                        f"Lava workers: no progress for {silence_s:g} s; all workers were stopped") from None
                continue
            last_message = time.monotonic()
            if kind == "progress":
                progress[index] = payload
                if on_progress is not None:
                    on_progress(sum(progress))
            elif kind == "done":
                results[index] = payload
            elif kind == "error":
                raise payload
            else:
                raise lava_runner.LavaRunError(f"Lava worker {index} was stopped from outside")
    finally:
        stop_workers(workers, finished=len(results) == len(workers))
        messages.close()
        messages.cancel_join_thread()
    return [results[i] for i in range(len(workers))]


def _check_alive(workers: list, results: dict, messages: Any) -> None:
    """A worker that exited without a result: its message may still be in flight; give it a moment."""
    for i, worker in enumerate(workers):
        if i not in results and not worker.is_alive():
            time.sleep(0.5)
            if messages.empty():
                raise lava_runner.LavaModelError(
                    f"Lava worker {i} died (exit code {worker.exitcode}) without reporting a result")


def stop_workers(workers: list, finished: bool = False) -> None:
    """SIGTERM every live worker, wait up to ``GRACE_S`` for them to stop their Lava runtimes, then kill.
    ``finished``: every worker has sent its result and is exiting on its own; it gets ``GRACE_S`` first."""
    if finished:
        deadline = time.monotonic() + GRACE_S
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
    for worker in workers:
        if worker.is_alive():
            with contextlib.suppress(OSError):
                os.kill(worker.pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    for worker in workers:
        if worker.pid is None:
            continue
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            worker.kill()
            worker.join(5)
