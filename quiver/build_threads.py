"""The threads builds run in: a bounded number at once, none able to hold the process.

A ``ThreadPoolExecutor`` joins its threads when the interpreter exits, so one
executor that ignores its cancel (a query that cannot be interrupted, a plugin
looping in Python) would keep a stopped server from ever exiting. Builds run in
daemon threads instead, at most ``size`` at a time (the rest wait for a slot,
in no particular order); :meth:`Materializer.close` decides how long to wait for
them and gives up on the ones that do not stop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class BuildThreads:
    """Runs submitted calls in daemon threads, ``size`` at a time."""

    def __init__(self, size: int, name: str = "quiver-build") -> None:
        self._slots = threading.BoundedSemaphore(max(1, size))
        self._name = name
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` once a slot is free. RuntimeError once closed."""
        with self._lock:
            if self._closed:
                raise RuntimeError("build threads closed")
        thread = threading.Thread(target=self._run, args=(fn, args), name=self._name, daemon=True)
        thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        with self._slots:
            fn(*args)

    def close(self) -> None:
        """Refuse new calls; running and waiting ones go on (nothing here waits for them)."""
        with self._lock:
            self._closed = True
