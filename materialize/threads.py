"""The threads builds run in, a bounded number at once, and how a command exits past them.

Builds run in plain (non-daemon) threads, at most ``size`` at a time; the rest
wait for a slot, in no particular order. :meth:`Materializer.close` decides how
long to wait for them and abandons the ones that do not stop (an executor that
ignores its cancel: a query that cannot be interrupted, a plugin looping in
Python).

Such a thread cannot be stopped from outside, and Python joins every thread at
exit, so it would hold a stopped ``quiver serve`` for ever. Daemon threads are no
way out: one finalized while inside Arrow's C++ (a reader calling back into Python)
aborts the interpreter ("PyGILState_Release ... finalizing"). So the ``quiver``
commands end through :func:`leave`, which exits at once (``os._exit``) when a build
thread still runs after everything was closed; a program embedding a
``Materializer`` waits for it, as for any thread of its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_running = 0
_running_lock = threading.Lock()


def running() -> int:
    """How many build threads of this process are running (or waiting for a slot)."""
    with _running_lock:
        return _running


def leave(status: int) -> int:
    """``status``, for a command to exit with; but if a build thread still runs, exit now.

    Call it last, once servers and stores are closed: nothing is left to flush
    but the standard streams and the log.
    """
    stuck = running()
    if not stuck:
        return status
    log.warning("%d build(s) did not stop; exiting without waiting for them", stuck)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed or broken: nothing to say
            stream.flush()
    os._exit(status)


class BuildThreads:
    """Runs submitted calls in threads of their own, ``size`` at a time."""

    def __init__(self, size: int, name: str = "quiver-build") -> None:
        self._slots = threading.BoundedSemaphore(max(1, size))
        self._name = name
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` once a slot is free. RuntimeError once closed."""
        global _running
        with self._lock:
            if self._closed:
                raise RuntimeError("build threads closed")
        # Never a daemon, whoever submits: a thread inherits its creator's daemon flag,
        # and gRPC's handler threads count as daemons. Python does not wait for a daemon
        # at exit; one still inside native code (DuckDB) then aborts the process.
        thread = threading.Thread(target=self._run, args=(fn, args), name=self._name, daemon=False)
        with _running_lock:
            _running += 1
        try:
            thread.start()
        except BaseException:
            with _running_lock:
                _running -= 1
            raise

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        global _running
        try:
            with self._slots:
                fn(*args)
        finally:
            with _running_lock:
                _running -= 1

    def close(self) -> None:
        """Refuse new calls; running and waiting ones go on (nothing here waits for them)."""
        with self._lock:
            self._closed = True
