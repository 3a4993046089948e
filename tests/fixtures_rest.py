"""REST fixtures: the real app (``app_from_settings``) under a real uvicorn on an ephemeral
port, in front of a real in-process Flight server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from flight.server import QuiverFlightServer
from quiver.settings import Settings
from rest.app import app_from_settings


class _Server(uvicorn.Server):
    """uvicorn with a started event, so tests wait on it instead of sleeping."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


@dataclass
class Rest:
    url: str
    http: httpx.Client
    flight: QuiverFlightServer | None
    settings: Settings


def serve_asgi(app: Any) -> tuple[str, Callable[[], None]]:
    """Serve ``app`` on 127.0.0.1:<ephemeral>; the URL and a stop function."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = _Server(config)
    thread = threading.Thread(target=server.run, daemon=True, name="test-rest")
    thread.start()
    if not server.ready.wait(30) or not server.started:
        raise RuntimeError("uvicorn did not start")
    port = server.servers[0].sockets[0].getsockname()[1]

    def stop() -> None:
        server.should_exit = True
        thread.join(15)

    return f"http://127.0.0.1:{port}", stop


@pytest.fixture(params=["in-process", "grpc"])
def make_rest(
    request: pytest.FixtureRequest,
    make_flight_server: Callable[..., QuiverFlightServer],
) -> Iterator[Callable[..., Rest]]:
    """``make_rest(**settings)``: a Flight server and the REST app in front of it.

    ``flight_uri=...`` points the REST app elsewhere (and starts no Flight server).
    Every REST test runs twice: with the REST app calling the Flight server beside
    it in-process (``quiver serve``'s default) and over loopback gRPC, the path
    ``quiver rest --flight`` always takes.
    """
    transport = {"rest_in_process_flight": request.param == "in-process"}
    stops: list[Callable[[], None]] = []
    clients: list[httpx.Client] = []

    def make(flight_uri: str | None = None, **overrides: Any) -> Rest:
        overrides = {**transport, **overrides}
        flight = None
        if flight_uri is None:
            flight = make_flight_server(**overrides)
            settings = flight.core.settings
            flight_uri = flight.location
        else:
            settings = Settings(**overrides)
        url, stop = serve_asgi(app_from_settings(settings, flight_uri=flight_uri))
        stops.append(stop)
        http = httpx.Client(base_url=url, timeout=30)
        clients.append(http)
        return Rest(url, http, flight, settings)

    yield make
    for c in clients:
        c.close()
    for stop in stops:
        stop()


@pytest.fixture
def rest(make_rest: Callable[..., Rest]) -> Rest:
    return make_rest()
