"""A real uvicorn on an ephemeral loopback port, in a thread, for tests and benchmarks.

Callers wait on uvicorn's own start-up (an event set in ``startup``), never a sleep.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import uvicorn


class _Server(uvicorn.Server):
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
        server.should_exit = True
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
