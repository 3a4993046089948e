"""Fixtures for running notebooks: a real Flight server, real kernels, the REST app on a
real uvicorn, WebSockets through a real client whose every receive has a deadline."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from foundation import Settings
from notebooks import Executions, FlightConfig, NotebookManager
from rest.app import create_app
from rest.notebooks import notebook_router
from tests.fixtures_notebooks import PYTHONS
from tests.servers import serve_asgi

RECV_TIMEOUT_S = 30.0
"""How long a test waits for a frame it expects (a kernel's cold start included)."""


class Socket:
    """A WebSocket client of the notebook protocol. Every receive has a deadline: a
    frame that never comes fails the test at once, showing the frames that did."""

    def __init__(self, opening: Any) -> None:
        self._opening = opening  # websockets' connect(), used as its context manager
        self.conn: ClientConnection = opening.__enter__()
        self.seen: list[dict[str, Any]] = []

    def send(self, kind: str, **payload: Any) -> None:
        self.conn.send(json.dumps({"type": kind, "payload": payload}))

    def recv(self, timeout: float = RECV_TIMEOUT_S) -> dict[str, Any]:
        try:
            frame = json.loads(self.conn.recv(timeout=timeout))
        except TimeoutError:
            raise AssertionError(
                f"no frame within {timeout:g} s; the last received: {self.seen[-8:]}"
            ) from None
        self.seen.append(frame)
        return frame

    def recv_until(
        self, stop: Callable[[dict[str, Any]], bool], timeout: float = RECV_TIMEOUT_S
    ) -> list[dict[str, Any]]:
        """Frames up to and including the first one ``stop`` accepts, within ``timeout``."""
        deadline = time.monotonic() + timeout
        frames: list[dict[str, Any]] = []
        while True:
            # fails at the deadline, showing what came
            frames.append(self.recv(max(0.0, deadline - time.monotonic())))
            if stop(frames[-1]):
                return frames

    def quiet(self, timeout: float = 0.3) -> list[dict[str, Any]]:
        """The frames that arrive within ``timeout`` (to show that some frame does not)."""
        frames = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                frames.append(json.loads(self.conn.recv(timeout=left)))
            except TimeoutError:
                break
        self.seen.extend(frames)
        return frames

    def close(self) -> None:
        self._opening.__exit__(None, None, None)

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_socket(base_url: str, path: str, headers: dict[str, str] | None = None) -> Socket:
    """Connect to ``path`` of the server at ``base_url`` (``http://host:port``)."""
    url = base_url.replace("http://", "ws://", 1) + path
    return Socket(connect(url, additional_headers=headers, open_timeout=RECV_TIMEOUT_S))


def recv_until(ws: Socket, stop: Callable[[dict[str, Any]], bool]) -> list[dict]:
    """Frames up to and including the first one ``stop`` accepts (within the deadline)."""
    return ws.recv_until(stop)


@dataclass
class Nb:
    """One open notebook, served by a real uvicorn."""

    client: httpx.Client
    manager: NotebookManager
    executions: Executions
    sid: str
    location: str
    url: str
    ids: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"/v1/notebooks/{self.sid}"

    def socket(self, query: str = "") -> Socket:
        """A WebSocket on this notebook's session (``query`` e.g. ``"?role=viewer"``)."""
        return open_socket(self.url, f"/v1/notebooks/ws/{self.sid}{query}")

    def add(self, source: str, language: str = "python") -> str:
        r = self.client.post(f"{self.base}/cells", json={"language": language})
        assert r.status_code == 200, r.text
        cid = r.json()["id"]
        self.edit(cid, source)
        self.ids.append(cid)
        return cid

    def edit(self, cid: str, source: str) -> dict[str, Any]:
        r = self.client.put(f"{self.base}/cells/{cid}", json={"source": source})
        assert r.status_code == 200, r.text
        return r.json()

    def run(self, cid: str, mode: str = "normal", status: int = 200) -> dict[str, Any]:
        r = self.client.post(f"{self.base}/cells/{cid}/execute", params={"mode": mode})
        assert r.status_code == status, r.text
        return r.json()

    def cells(self) -> dict[str, dict[str, Any]]:
        return {c["id"]: c for c in self.client.get(f"{self.base}/cells").json()["cells"]}


def open_nb(
    settings: Settings, location: str, path: str | None = None
) -> tuple[Nb, Callable[[], None]]:
    """A notebook (new, or opened at ``path``) on its own server; and what closes it."""
    manager = NotebookManager(settings, python_versions=dict(PYTHONS))
    executions = Executions(manager, FlightConfig(location))
    app = create_app([notebook_router(manager, settings, executions=executions)])
    url, stop = serve_asgi(app, lifespan="off")
    client = httpx.Client(base_url=url, timeout=120)
    if path is None:
        r = client.post("/v1/notebooks/create", json={"parent_path": ".", "name": "run"})
    else:
        r = client.post("/v1/notebooks/open", json={"path": path})
    assert r.status_code == 200, r.text
    nb = Nb(client, manager, executions, r.json()["session_id"], location, url)

    def close() -> None:
        executions.close()
        client.close()
        stop()

    return nb, close


@pytest.fixture
def make_nb(settings: Settings, flight_server: Any) -> Iterator[Callable[..., Nb]]:
    closers: list[Callable[[], None]] = []

    def make(path: str | None = None) -> Nb:
        nb, close = open_nb(settings, flight_server.location, path)
        closers.append(close)
        return nb

    yield make
    for close in closers:
        close()


@pytest.fixture
def nb(make_nb: Callable[..., Nb]) -> Nb:
    return make_nb()
