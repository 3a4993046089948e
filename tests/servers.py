"""A real uvicorn on an ephemeral loopback port, in a thread, for tests and benchmarks.

Callers wait on uvicorn's own start-up (an event set in ``startup``), never a sleep.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal
from urllib.parse import urlsplit

import uvicorn

from rest import PromptServer


class _Server(PromptServer):
    """uvicorn with a started event."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


def serve_asgi(
    app: Any, *, lifespan: Literal["on", "off", "auto"] = "on"
) -> tuple[str, Callable[[], None]]:
    """Serve ``app`` on 127.0.0.1:<ephemeral>; the URL and a stop function."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan=lifespan)
    server = _Server(config)
    thread = threading.Thread(target=server.run, daemon=True, name="test-uvicorn")
    thread.start()
    if not server.ready.wait(30) or not server.started:
        raise RuntimeError("uvicorn did not start")
    port = server.servers[0].sockets[0].getsockname()[1]

    def stop() -> None:
        server.exit()
        thread.join(15)

    return f"http://127.0.0.1:{port}", stop


@contextmanager
def serving(app: Any, *, lifespan: Literal["on", "off", "auto"] = "on") -> Iterator[str]:
    """:func:`serve_asgi` as a context manager: the URL while it runs."""
    url, stop = serve_asgi(app, lifespan=lifespan)
    try:
        yield url
    finally:
        stop()


def stalled_get(url: str, path: str, *, first: int = 1024) -> socket.socket:
    """An HTTP GET of ``path`` that read the first ``first`` bytes and then stopped reading.

    Its receive buffer is fixed small (no autotuning, which on loopback grows to
    tens of MiB), so a large body stays mostly unsent while it is open.
    """
    where = urlsplit(url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.connect((where.hostname, where.port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {where.netloc}\r\n\r\n".encode())
    head = b""
    while len(head) < first:
        got = sock.recv(first - len(head))
        assert got, f"the server closed the connection after {head!r}"
        head += got
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock
