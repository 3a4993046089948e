"""The server commands: ``quiver serve``, ``quiver flight`` and ``quiver rest``.

``serve`` runs the Flight server and the REST app in the same process (see
:func:`start_rest`); ``rest --flight grpc://host:port`` runs the REST app alone
in front of a Flight server elsewhere. Each runs until SIGINT or SIGTERM, then
drains within ``shutdown_timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from foundation import Settings

if TYPE_CHECKING:
    from rest import PromptServer

REST_STOP_MARGIN_S = 2.0
"""Beyond uvicorn's graceful-shutdown timeout: its tick, cancelling, the app's lifespan end."""


@dataclass
class RestHandle:
    url: str
    server: PromptServer
    thread: threading.Thread

    def stop(self, timeout: float = 15.0) -> None:
        """Ask uvicorn to exit; wait at most ``timeout`` seconds for it.

        uvicorn stops accepting at once, lets requests finish for
        ``settings.shutdown_timeout_s`` (``timeout_graceful_shutdown``), then
        cancels those still running (a client that stopped reading a stream).
        """
        self.server.exit()
        self.thread.join(timeout)
        if self.thread.is_alive():
            logging.getLogger("quiver").warning("the REST app did not stop in %.3g s", timeout)


class _QuietCancelledRequests(logging.Filter):
    """Drop uvicorn's traceback for each request it cancels at the shutdown deadline.

    uvicorn already logs one line saying it cancels them; the tracebacks (one
    ``CancelledError`` per stuck response) would only bury it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, asyncio.CancelledError)


_QUIET_CANCELLED = _QuietCancelledRequests()


def start_rest(settings: Settings, flight_uri: str) -> RestHandle:
    """Start the REST app (``rest.app_from_settings``) in a thread, over the Flight
    server at ``flight_uri``."""
    import uvicorn

    from rest import PromptServer, app_from_settings

    app = app_from_settings(settings, flight_uri=flight_uri)
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.rest_port))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level=settings.log_level, timeout_graceful_shutdown=settings.shutdown_timeout_s
    )
    logging.getLogger("uvicorn.error").addFilter(_QUIET_CANCELLED)
    server = PromptServer(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="quiver-rest", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not server.started:
        raise RuntimeError("the REST app did not start")
    return RestHandle(f"http://{settings.host}:{port}", server, thread)


# --- serve / flight -------------------------------------------------------------
def _on_stop_signals() -> list[bool]:
    """A flag that SIGINT/SIGTERM set. A plain list, not a ``threading.Event``: a handler
    setting an Event can deadlock on the Event's lock if the signal lands while the main
    thread holds it inside ``wait``."""
    stopping = [False]

    def handler(signum: int, frame: object) -> None:
        stopping[0] = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
    return stopping


def _process_start(settings: Settings) -> list[bool]:
    """Logging as settings say, stacks on SIGUSR1, and the flag SIGINT/SIGTERM set."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s %(message)s"
    )
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` dumps every thread's stack
    return _on_stop_signals()


def _wait_for(stopping: list[bool]) -> None:
    """Return once SIGINT/SIGTERM came: at once, not on a poll's next tick.

    Python's own signal handler writes each signal's number to the wakeup pipe
    (``signal.set_wakeup_fd``) as the signal arrives, so a signal landing just before
    the ``select`` still wakes it. The 1 s cap is only a safety net.
    """
    stops = {signal.SIGINT, signal.SIGTERM}
    read, write = os.pipe()
    os.set_blocking(read, False)
    os.set_blocking(write, False)
    previous = signal.set_wakeup_fd(write)
    try:
        while not stopping[0]:
            select.select([read], [], [], 1.0)
            with contextlib.suppress(BlockingIOError):
                if stops & set(os.read(read, 512)):
                    return
    finally:
        signal.set_wakeup_fd(previous)
        os.close(read)
        os.close(write)


def serve(settings: Settings, *, rest: bool) -> int:
    from flight import start
    from notebooks import enable_remote_cells

    stopping = _process_start(settings)
    server = start(settings)
    token = settings.token.get_secret_value() if settings.token is not None else None
    cells = enable_remote_cells(server, token)  # other nodes may run cells here
    handle = None
    try:
        print(f"data: {settings.data_dir}", flush=True)
        print(f"flight: {server.location}", flush=True)
        if rest:
            handle = start_rest(settings, server.location)
            print(f"rest: {handle.url}", flush=True)
        print("ready (Ctrl-C to stop)", flush=True)
        _wait_for(stopping)
    finally:
        # One deadline for both, from now: both refuse new work at once; the REST
        # app drains first (its requests still reach this core in-process), then
        # Flight gets what is left; past the deadline both cancel what still runs.
        server.begin_close()
        if handle is not None:
            handle.stop(settings.shutdown_timeout_s + REST_STOP_MARGIN_S)
        cells.close()
        server.close()
    print("stopped", flush=True)
    return 0


def data_node(settings: Settings, head: str, advertise: str | None = None) -> int:
    """A stateless Flight data node of the head at ``head`` (:mod:`flight.datanode`)."""
    from flight import DataNodeServer

    stopping = _process_start(settings)
    node = DataNodeServer(settings, head, advertise)
    said = {"flight": node.location, "joined": f"{head} (parts: {node.parts.uri})"}
    return _run_until_stopped(stopping, said, node.close)


def rest_only(settings: Settings, flight: str | None) -> int:
    """Only the REST app, in front of a Flight server that runs elsewhere."""
    stopping = _process_start(settings)
    flight_uri = flight or f"grpc://{settings.host}:{settings.flight_port}"
    handle = start_rest(settings, flight_uri)
    return _run_until_stopped(
        stopping,
        {"flight": flight_uri, "rest": handle.url},
        lambda: handle.stop(settings.shutdown_timeout_s + REST_STOP_MARGIN_S),
    )


def _run_until_stopped(stopping: list[bool], said: dict[str, str], stop: Callable[[], None]) -> int:
    """Print ``key: value`` lines and ``ready``, wait for SIGINT/SIGTERM, then ``stop``."""
    try:
        for key, value in said.items():
            print(f"{key}: {value}", flush=True)
        print("ready (Ctrl-C to stop)", flush=True)
        _wait_for(stopping)
    finally:
        stop()
    print("stopped", flush=True)
    return 0
