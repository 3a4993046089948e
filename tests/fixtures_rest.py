"""REST fixtures: the real app (``app_from_settings``) under a real uvicorn on an ephemeral
port, in front of a real in-process Flight server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from flight import QuiverFlightServer
from foundation import Settings
from rest.app import app_from_settings
from tests.servers import serve_asgi


@dataclass
class Rest:
    url: str
    http: httpx.Client
    flight: QuiverFlightServer | None
    settings: Settings


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
