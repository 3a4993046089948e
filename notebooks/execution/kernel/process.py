"""The server's side of a kernel: start, talk to, time out, cancel and reap it.

A :class:`KernelProcess` owns one worker subprocess (``worker.py``) run with
the notebook's interpreter. :meth:`KernelProcess.execute` sends one cell and
blocks until its result, calling ``on_console`` for stdout/stderr as the
worker writes them. A worker that dies, or a cell that runs past its time
limit (the worker is killed), ends the call with a :class:`KernelDied`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WORKER = Path(__file__).with_name("worker.py")
_HEADER = struct.Struct(">I")

ConsoleCallback = Callable[[str, str], None]


class KernelDied(Exception):
    """The worker process ended (crash, kill, time-out) before answering."""

    def __init__(self, reason: str, *, timed_out: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.timed_out = timed_out


@dataclass
class _Pending:
    on_console: ConsoleCallback | None
    done: threading.Event = field(default_factory=threading.Event)
    result: dict[str, Any] | None = None


def describe_exit(code: int | None) -> str:
    if code is None:
        return "the kernel stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"the kernel process was killed by {name}{hint}"
    return f"the kernel process exited with code {code}"


class KernelProcess:
    """One live worker. Thread-safe; one ``execute`` at a time (callers serialise)."""

    def __init__(
        self,
        python: str = sys.executable,
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.python = python
        parent, child = socket.socketpair()
        self._sock = parent
        # No screen here: matplotlib draws off-screen unless the notebook says otherwise.
        full_env = {"MPLBACKEND": "Agg", **os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        try:
            self.proc = subprocess.Popen(
                [python, str(WORKER), str(child.fileno())],
                pass_fds=(child.fileno(),),
                cwd=str(cwd) if cwd else None,
                env=full_env,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            child.close()
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._ready = threading.Event()
        self.info: dict[str, Any] = {}
        self._closed = False
        self._rfile = parent.makefile("rb")
        self._reader = threading.Thread(target=self._read_loop, daemon=True, name="kernel-reader")
        self._reader.start()

    # --- plumbing -------------------------------------------------------------
    def _send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, default=str).encode()
        with self._send_lock:
            self._sock.sendall(_HEADER.pack(len(data)) + data)

    def _read_loop(self) -> None:
        try:
            while True:
                head = self._rfile.read(_HEADER.size)
                if len(head) < _HEADER.size:
                    break
                (size,) = _HEADER.unpack(head)
                message = json.loads(self._rfile.read(size))
                op = message.get("op")
                if op == "ready":
                    self.info = message
                    self._ready.set()
                elif op == "console":
                    pending = self._pending.get(message.get("id", ""))
                    if pending is not None and pending.on_console is not None:
                        pending.on_console(message["stream"], message["text"])
                elif op == "result":
                    with self._lock:
                        pending = self._pending.pop(message["id"], None)
                    if pending is not None:
                        pending.result = message
                        pending.done.set()
        except (OSError, ValueError):
            pass
        finally:
            self._ready.set()
            with self._lock:
                pending_all = list(self._pending.values())
                self._pending.clear()
            for pending in pending_all:
                pending.done.set()

    # --- public ---------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.proc.poll() is None and not self._closed

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 60.0) -> dict[str, Any]:
        if not self._ready.wait(timeout) or not self.info:
            code = self.proc.poll()
            self.kill()
            raise KernelDied(f"the kernel did not start: {describe_exit(code)}")
        return self.info

    def execute(
        self,
        request: dict[str, Any],
        *,
        on_console: ConsoleCallback | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Run one cell; its result frame. Raises :class:`KernelDied` when the worker ends."""
        return self.call("execute", request, on_console=on_console, timeout=timeout)

    def call(
        self,
        op: str,
        request: dict[str, Any],
        *,
        on_console: ConsoleCallback | None = None,
        timeout: float | None = None,
        grace: float | None = None,
    ) -> dict[str, Any]:
        """Send one request (``execute``, ``inspect``, ``inspect_eval``); its result frame.

        Past ``timeout`` the worker is interrupted and, given ``grace``, may still
        answer (a cancelled result) within it; else it is killed (:class:`KernelDied`).
        """
        self.wait_ready()
        rid = uuid.uuid4().hex
        pending = _Pending(on_console)
        with self._lock:
            self._pending[rid] = pending
        with contextlib.suppress(OSError):
            self._send({**request, "op": op, "id": rid})
        if not pending.done.wait(timeout):
            if grace is not None:
                self.interrupt()
                if pending.done.wait(grace) and pending.result is not None:
                    return pending.result
            self.kill()
            raise KernelDied(
                f"the cell ran longer than its time limit of {timeout:g} s; "
                "the kernel was restarted",
                timed_out=True,
            )
        if pending.result is None:
            code = self._reap()
            raise KernelDied(describe_exit(code))
        return pending.result

    def forget(self, names: list[str]) -> None:
        with contextlib.suppress(OSError):
            self._send({"op": "forget", "names": names})

    def interrupt(self) -> None:
        """Ask the running cell to stop (KeyboardInterrupt inside the cell)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGINT)

    def _reap(self) -> int | None:
        try:
            return self.proc.wait(5)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        self._closed = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._reap()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._reader.join(5)
        with contextlib.suppress(OSError):
            self._rfile.close()
            self._sock.close()

    def shutdown(self, timeout: float = 5.0) -> None:
        if self._closed:
            return
        with contextlib.suppress(OSError):
            self._send({"op": "shutdown"})
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)
        self.kill()
