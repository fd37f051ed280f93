"""The one place that runs Lava networks: always stopped, bounded in time, worker errors surfaced.

lava-nc 0.10.0's own lifecycle has sharp edges (docs/stack.md, section 5): ``stop()`` waits forever after
an exception inside a ProcessModel or a terminal Ctrl-C, ``run()`` waits forever when a model in the
middle of a pipeline dies, a started runtime that is never stopped hangs the interpreter at exit, and a
SIGTERM of the parent orphans the workers and leaks ``/dev/shm``. This module avoids each of them:

* workers are forked with SIGINT ignored (only the parent handles Ctrl-C; a Ctrl-C during start-up is raised as
  soon as Lava has started) and with ``PR_SET_PDEATHSIG`` so that they die with the parent;
* runs are started non-blocking and waited for by polling, which notices dead workers and timeouts;
* stopping uses Lava's handshake only when every worker is alive, else terminates the survivors;
* every runtime started here is stopped on exit from :func:`lava_session` and, as a last resort, at
  interpreter exit.

Call from the main thread (signal handlers and the parent-death signal are per thread).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

from snndeploy.interrupts import Interrupted, as_keyboard_interrupt

_PR_SET_PDEATHSIG = 1
_live_processes: weakref.WeakSet = weakref.WeakSet()
_fork_hook_registered = False
_exit_handler_registered = False
_forking = False  # inside the window where Lava forks its workers (inherited by the children at fork time)
_sigint_pending = 0  # the stop signal that arrived while forking (0: none)


class LavaRunError(RuntimeError):
    """A Lava run failed; the network has been stopped and its workers cleaned up."""


class LavaModelError(LavaRunError):
    """A Lava worker (ProcessModel or runtime service) died; carries the worker's traceback."""


class LavaTimeoutError(LavaRunError):
    """A Lava run did not finish within its time limit."""


def _setup_child() -> None:
    """In every forked child: die with the parent; Lava workers also leave Ctrl-C to the parent."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if _forking:
        # a group SIGINT/SIGTERM is the parent's to handle: it stops the runtime (a worker dying on its own
        # mid-start would leave Lava's start waiting forever)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _register_fork_hook() -> None:
    global _fork_hook_registered
    if not _fork_hook_registered and sys.platform.startswith("linux"):
        os.register_at_fork(after_in_child=_setup_child)
        _fork_hook_registered = True


def _runtime(proc: Any):
    return getattr(proc, "_runtime", None)


def _actors(proc: Any) -> list:
    runtime = _runtime(proc)
    infrastructure = getattr(runtime, "_messaging_infrastructure", None) if runtime else None
    return list(infrastructure.actors) if infrastructure is not None else []


def _alive(actor: Any) -> bool:
    try:
        return actor.exitcode is None
    except ValueError:  # already closed by Lava
        return False


def worker_exceptions(proc: Any) -> list[tuple[BaseException, str]]:
    """(exception, traceback text) of every worker that raised; Lava itself only logs these at INFO."""
    found = []
    for actor in _actors(proc):
        try:
            exc = actor.exception
        except (ValueError, OSError):  # its pipe is already closed
            exc = None
        if exc:
            found.append(exc)
    return found


def _model_error(proc: Any, what: str) -> LavaModelError:
    errors = worker_exceptions(proc)
    if not errors:
        return LavaModelError(f"{what}: a Lava worker process died without reporting an exception")
    summary = "; ".join(repr(exc) for exc, _ in errors)
    return LavaModelError(f"{what}: {summary}\n--- worker traceback ---\n{errors[0][1]}")


def stop(proc: Any, *, graceful: bool = True) -> None:
    """Stop ``proc``'s runtime whatever state it is in; a no-op when it was never started or is stopped.

    ``graceful=False`` (after Ctrl-C or SIGTERM) skips Lava's handshake: a signal that landed in the middle of a
    channel exchange can leave a worker that never answers it, and the stop would wait forever.
    """
    runtime = _runtime(proc)
    if runtime is None or getattr(runtime, "_messaging_infrastructure", None) is None:
        return
    _live_processes.discard(proc)
    actors = _actors(proc)
    if not runtime._is_started and not any(_alive(a) for a in actors):
        return
    if graceful and runtime._is_started and not runtime._is_running and all(_alive(a) for a in actors):
        try:
            proc.stop()  # Lava's normal STOP/TERMINATED handshake
        except KeyboardInterrupt:  # interrupted while stopping: finish the stop without the handshake
            _terminate(proc, actors)
            raise
        return
    _terminate(proc, actors)


def _terminate(proc: Any, actors: list) -> None:
    """Kill the workers and release shared memory without the handshake (which would wait forever)."""
    for actor in actors:
        if _alive(actor):
            actor.kill()  # workers ignore SIGTERM (see _setup_child)
    for actor in actors:
        # Lava's SystemProcess.join() has no timeout (and closes the process); wait through the base class.
        with contextlib.suppress(ValueError, AssertionError):
            multiprocessing.Process.join(actor, 5)
            if _alive(actor):
                actor.kill()
                multiprocessing.Process.join(actor, 5)
    runtime = _runtime(proc)
    runtime._is_started = False
    runtime._is_running = False
    try:
        proc.stop()  # with _is_started False this only shuts down the message infrastructure
    except Exception:  # e.g. the watchdog manager failed after the workers died: shut down directly
        with contextlib.suppress(Exception):
            runtime._messaging_infrastructure.stop()


def _wait(proc: Any, timeout_s: float | None, what: str) -> None:
    runtime = _runtime(proc)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    poll_s = 1e-4
    while True:
        if any(port.probe() for port in runtime.service_to_runtime):
            try:
                proc.wait()  # a reply is waiting: let Lava consume it (raises on worker errors)
            except RuntimeError as exc:
                raise _model_error(proc, what) from exc
            return
        if not all(_alive(a) for a in _actors(proc)):
            raise _model_error(proc, what)
        if deadline is not None and time.monotonic() > deadline:
            raise LavaTimeoutError(f"{what}: no result after {timeout_s:g} s; the run was stopped")
        time.sleep(poll_s)
        poll_s = min(poll_s * 2, 0.02)


def _remember_sigint(signum: int, frame: Any) -> None:
    global _sigint_pending
    _sigint_pending = _sigint_pending or signum


@contextlib.contextmanager
def _defer_sigint_while_forking() -> Iterator[None]:
    """Workers forked here ignore SIGINT and SIGTERM; either signal in the parent meanwhile is raised once Lava
    has started (SIGTERM as :class:`snndeploy.interrupts.Interrupted`).

    Raising inside Lava's compile/start would leave it half built; ignoring it (as before) lost the Ctrl-C.
    """
    global _forking, _sigint_pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _sigint_pending = 0
    previous = {s: signal.signal(s, _remember_sigint) for s in (signal.SIGINT, signal.SIGTERM)}
    _forking = True
    try:
        yield
    finally:
        _forking = False
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    pending, _sigint_pending = _sigint_pending, 0
    if pending == signal.SIGTERM:
        raise Interrupted(signal.SIGTERM)
    if pending:
        raise KeyboardInterrupt


def run_steps(
    proc: Any,
    num_steps: int,
    run_cfg: Any,
    *,
    timeout_s: float | None = 600.0,
    stop_after: bool = True,
    what: str = "Lava run",
) -> None:
    """Run ``num_steps`` time steps of the network that ``proc`` belongs to.

    On any error (including Ctrl-C and the timeout) the network is stopped before the exception
    propagates. With ``stop_after=False`` the runtime stays up so that Vars can be read; use
    :func:`lava_session` to guarantee the final stop.
    """
    _register_fork_hook()
    _register_exit_handler()
    # SIGTERM stops the run like Ctrl-C whoever started it (CLI, pipeline, benchmark scripts)
    with as_keyboard_interrupt():
        _run_and_wait(proc, num_steps, run_cfg, timeout_s, what)
        if stop_after:
            stop(proc)


def _run_and_wait(proc: Any, num_steps: int, run_cfg: Any, timeout_s: float | None, what: str) -> None:
    from lava.magma.core.run_conditions import RunSteps

    try:
        with _defer_sigint_while_forking():
            proc.run(condition=RunSteps(num_steps=num_steps, blocking=False), run_cfg=run_cfg)
        _live_processes.add(proc)
        _wait(proc, timeout_s, what)
    except BaseException as exc:
        stop(proc, graceful=not isinstance(exc, KeyboardInterrupt))
        raise


@contextlib.contextmanager
def lava_session(proc: Any) -> Iterator[Any]:
    """``with lava_session(net): run_steps(net, ..., stop_after=False); read Vars`` - always stopped."""
    with as_keyboard_interrupt():
        try:
            yield proc
        except BaseException as exc:
            stop(proc, graceful=not isinstance(exc, KeyboardInterrupt))
            raise
        stop(proc)


def _stop_forgotten_runtimes() -> None:
    for proc in list(_live_processes):
        with contextlib.suppress(Exception):
            stop(proc)


def _register_exit_handler() -> None:
    # atexit runs handlers last-in first-out: registering after multiprocessing (imported by Lava) makes this
    # run before multiprocessing joins its non-daemon workers, which would otherwise wait forever.
    global _exit_handler_registered
    if not _exit_handler_registered:
        import multiprocessing.util  # noqa: F401

        atexit.register(_stop_forgotten_runtimes)
        _exit_handler_registered = True


def lava_worker_processes() -> list:
    """Live child processes of this interpreter that Lava started (excluding multiprocessing's tracker)."""
    import psutil

    children = psutil.Process().children(recursive=True)
    return [c for c in children if _is_lava_worker(c)]


def _is_lava_worker(child: Any) -> bool:
    try:
        cmdline = " ".join(child.cmdline())
        return child.is_running() and child.status() != "zombie" and "resource_tracker" not in cmdline
    except Exception:  # vanished while we looked
        return False
