"""Fixtures for running notebooks: a real Flight server, real kernels, the REST app."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

with warnings.catch_warnings():
    # Starlette 1.x asks for httpx2 (not installed here); its TestClient works with httpx,
    # and it is the only WebSocket client available (uvicorn here has no websocket library).
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from notebooks.execution import Executions, FlightConfig
from notebooks.manager import NotebookManager
from quiver.settings import Settings
from rest.app import create_app
from rest.notebooks import notebook_router
from tests.fixtures_notebooks import PYTHONS


@dataclass
class Nb:
    """One open notebook behind a TestClient."""

    client: TestClient
    manager: NotebookManager
    executions: Executions
    sid: str
    location: str
    ids: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"/v1/notebooks/{self.sid}"

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


def recv_until(ws: Any, stop: Callable[[dict[str, Any]], bool], limit: int = 200) -> list[dict]:
    """Frames up to and including the first one ``stop`` accepts."""
    frames = []
    for _ in range(limit):
        frame = json.loads(ws.receive_text())
        frames.append(frame)
        if stop(frame):
            return frames
    raise AssertionError(f"no matching frame in {limit}: {frames[-5:]}")


def open_nb(settings: Settings, location: str, path: str | None = None) -> Nb:
    manager = NotebookManager(settings, python_versions=dict(PYTHONS))
    executions = Executions(manager, FlightConfig(location))
    app = create_app([notebook_router(manager, settings, executions=executions)])
    client = TestClient(app)
    if path is None:
        r = client.post("/v1/notebooks/create", json={"parent_path": ".", "name": "run"})
    else:
        r = client.post("/v1/notebooks/open", json={"path": path})
    assert r.status_code == 200, r.text
    return Nb(client, manager, executions, r.json()["session_id"], location)


@pytest.fixture
def make_nb(settings: Settings, flight_server: Any) -> Iterator[Callable[..., Nb]]:
    made: list[Nb] = []

    def make(path: str | None = None) -> Nb:
        nb = open_nb(settings, flight_server.location, path)
        made.append(nb)
        return nb

    yield make
    for nb in made:
        nb.executions.close()
        nb.client.close()


@pytest.fixture
def nb(make_nb: Callable[..., Nb]) -> Nb:
    return make_nb()
