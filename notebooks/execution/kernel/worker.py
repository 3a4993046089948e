"""The kernel worker: runs notebook cells in a subprocess, one per session.

This file is run by path with the notebook's own interpreter
(``python worker.py FD``), so it imports nothing from Quiver: only the standard
library and its neighbour ``cellrun.py`` (from this file's folder), which runs the
cells. The worker owns the wire and the loop: it talks to the server over the
inherited socket ``FD`` with length-prefixed JSON frames (4-byte big-endian length,
UTF-8 JSON), and it serves the inspection REPL (``inspect``, ``inspect_eval``).

Server → worker:
    {"op": "execute", "id", "cell_id", "source", "inputs": {name: spec},
     "exports": [names], "env": {name: value}, "flight": {"location", "token"?},
     "put_metadata": {...}, "mounts"?: [spec], "mount_helper"?: path}
  ``mounts`` become variables, built by the helper module at ``mount_helper``.
  ``env`` is set in os.environ for the run only, then put back as it was.
    {"op": "forget", "names": [...]}     {"op": "shutdown"}
  An input spec is {"token": str, "kind": "arrow", "uri": str, "format": str, "location"?}
  | {"token", "kind": "json", "value"} | {"token", "kind": "pickle", "data": b64}
  | {"token", "kind": "memory"}. The worker keeps the values it produced or
  loaded, keyed by name and token, and uses them instead of loading again.

Worker → server:
    {"op": "ready", "python": str, "pid": int, "modules": {...}}
    {"op": "console", "id", "stream": "stdout"|"stderr", "text"}
    {"op": "result", "id", "status": "ok"|"error"|"cancelled", "variables": {...},
     "display": {...}|null, "error": {...}|null, "duration_ms": int}
"""

from __future__ import annotations

import builtins
import io
import json
import os
import signal
import socket
import struct
import sys
import threading
from typing import Any

HERE = os.path.dirname(os.path.realpath(__file__))
if HERE not in sys.path:  # PYTHONSAFEPATH (or -P) leaves the script's folder out
    sys.path.insert(0, HERE)

from cellrun import Kernel  # noqa: E402 (found through the line above)

_HEADER = struct.Struct(">I")


class Channel:
    """Framed JSON over a socket; sends are serialised by a lock.

    A frame is never cut by a cancel: an interrupt that arrives while a frame
    is being written is held (``deferred``) and raised once the frame is out,
    otherwise the server would read half a frame and lose the kernel.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()
        self.rfile = sock.makefile("rb")
        self.sending = False
        self.deferred = False

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, default=str).encode()
        with self.lock:
            self.sending = True
            try:
                self.sock.sendall(_HEADER.pack(len(data)) + data)
            finally:
                self.sending = False
        if self.deferred:
            self.deferred = False
            raise KeyboardInterrupt

    def recv(self) -> dict[str, Any] | None:
        head = self.rfile.read(_HEADER.size)
        if len(head) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack(head)
        return json.loads(self.rfile.read(size))


class Inspector:
    """The inspection REPL: a cell's inputs loaded into a namespace of its own, then
    expressions evaluated in it (``inspect``, ``inspect_eval``)."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.namespace: dict[str, Any] | None = None

    def inspect(self, request: dict[str, Any]) -> dict[str, Any]:
        """Load a cell's inputs into a fresh REPL namespace; which loaded, which failed."""
        self.namespace = {"__name__": "__inspect__", "__builtins__": builtins}
        loaded, failed = [], {}
        for name, spec in request.get("inputs", {}).items():
            try:
                self.namespace[name] = self.kernel.load(name, spec, request.get("flight"))
                loaded.append(name)
            except Exception as exc:
                failed[name] = f"{type(exc).__name__}: {exc}"
        return {"op": "result", "id": request["id"], "status": "ok",
                "loaded": loaded, "failed": failed}  # fmt: skip

    def inspect_eval(self, request: dict[str, Any]) -> dict[str, Any]:
        """Evaluate (or execute) ``expr`` in the REPL namespace; its repr, type and stdout,
        each cut at ``limit`` characters."""
        limit = int(request.get("limit") or 10_000)
        ns = self.namespace
        if ns is None:
            ns = self.namespace = {"__name__": "__inspect__", "__builtins__": builtins}
        out = _Capped(limit)
        answer: dict[str, Any] = {"op": "result", "id": request["id"]}
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = out
        self.kernel.running = True
        try:
            source = str(request.get("expr", ""))
            try:
                code = compile(source, "<inspect>", "eval")
            except SyntaxError:
                exec(compile(source, "<inspect>", "exec"), ns)
                value = None
            else:
                value = eval(code, ns)
            answer.update(status="ok", type=type(value).__name__)
            if value is not None:
                text = repr(value)
                answer["result"] = text if len(text) <= limit else text[:limit] + " …"
        except KeyboardInterrupt:
            answer.update(status="cancelled")
        except BaseException as exc:
            answer.update(status="error", error=f"{type(exc).__name__}: {exc}"[:limit])
        finally:
            self.kernel.running = False
            sys.stdout, sys.stderr = saved
        answer["stdout"] = out.text()
        return answer


class _Capped(io.TextIOBase):
    """Collects what is written, up to ``limit`` characters (the rest is counted only)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        room = self.limit - self.size
        if room > 0:
            self.parts.append(text[:room])
        self.size += len(text)
        return len(text)

    def text(self) -> str:
        out = "".join(self.parts)
        return out if self.size <= self.limit else out + f"\n… [{self.size - self.limit} more]"


def _modules() -> dict[str, str | None]:
    """Versions of the table libraries this environment has, without importing them."""
    from importlib import metadata

    found: dict[str, str | None] = {}
    for name in ("pyarrow", "polars", "pandas", "cloudpickle"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def main(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    channel = Channel(sock)
    kernel = Kernel(channel)
    inspector = Inspector(kernel)

    def interrupt(signum: int, frame: Any) -> None:
        if not kernel.running:
            return
        if channel.sending:  # never cut a frame: raise once it is out
            channel.deferred = True
            return
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    try:
        channel.send(
            {"op": "ready", "python": sys.version.split()[0], "pid": os.getpid(),
             "modules": _modules()}
        )  # fmt: skip
        while True:
            message = channel.recv()
            if message is None or message.get("op") == "shutdown":
                return
            op = message.get("op")
            if op == "execute":
                channel.send(kernel.execute(message))
            elif op == "inspect":
                channel.send(inspector.inspect(message))
            elif op == "inspect_eval":
                channel.send(inspector.inspect_eval(message))
            elif op == "forget":
                for name in message.get("names", []):
                    kernel.values.pop(name, None)
    except (BrokenPipeError, ConnectionResetError):
        return  # the server went away (it crashed or was killed): nobody is left to tell


if __name__ == "__main__":
    main(int(sys.argv[1]))
