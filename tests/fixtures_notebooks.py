"""Notebook fixtures: a manager over tmp_path, a real uvicorn serving its routes, Strata layouts."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from foundation import Settings
from notebooks import NotebookManager
from rest.app import create_app
from rest.notebooks import notebook_router
from tests.servers import serving

PYTHONS = {"3.11": Path(sys.executable), "3.12": Path(sys.executable)}

STRATA_TOML = """\
# A notebook written by Strata 0.5 (plus hand edits).
notebook_id = "0b7c5f0e-2f7e-4d8e-9a51-0d7b1c3f1a2e"
name = "Strata Demo"
created_at = 2025-06-01T10:00:00Z
updated_at = 2025-06-02T11:30:00Z
custom_top = "keep me"   # an unknown key with a comment
cells = [
    # the loading step
    { id = "intro", file = "intro.md", language = "markdown", order = 0 },
    { id = "load", file = "load.py", language = "python", order = 1, worker = "local" },
    { id = "q", file = "q.py", language = "sql", order = 2, future = { x = 1 } },
    { id = "train", file = "train.py", language = "python", order = 3 },
]

[env]
REGION = "eu"

[[mounts]]
name = "raw"
uri = "file:///data"
mode = "ro"

[ai]
model = "some-model"  # chosen by hand

[connections.warehouse]
driver = "duckdb"

[future_block]
keep = [1, 2, 3]
"""

STRATA_CELLS = {
    "intro.md": "# Demo\nLoads data and trains.\n",
    "load.py": "import pyarrow as pa\nevents = pa.table({'id': [1, 2, 3]})\n",
    "q.py": "-- @name big\nselect * from events where id > 1\n",
    "train.py": "model = len(big)\n",
}


def write_strata_notebook(parent: Path, name: str = "strata_demo") -> Path:
    path = parent / name
    (path / "cells").mkdir(parents=True)
    (path / "notebook.toml").write_text(STRATA_TOML)
    (path / "pyproject.toml").write_text(
        '[project]\nname = "strata-demo"\nversion = "0.1.0"\ndescription = ""\n'
        'requires-python = "==3.12.*"\ndependencies = ["pyarrow>=14", "pandas>=2.2"]\n\n'
        "[tool.uv]\n"
    )
    (path / ".strata").mkdir()
    (path / ".strata" / "runtime.json").write_text('{"schema_version": 1, "cells": {}}')
    for file, source in STRATA_CELLS.items():
        (path / "cells" / file).write_text(source)
    return path


@pytest.fixture
def nb_root(settings: Settings) -> Path:
    settings.notebook_root.mkdir(parents=True, exist_ok=True)
    return settings.notebook_root.resolve()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def manager(settings: Settings, clock: FakeClock) -> NotebookManager:
    return NotebookManager(settings, clock=clock, python_versions=dict(PYTHONS))


class _Dispatch:
    """The one ASGI app the shared server runs; each test swaps in its own app."""

    def __init__(self) -> None:
        self.app: Any = create_app([])

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@dataclass
class LiveServer:
    url: str
    dispatch: _Dispatch


@pytest.fixture(scope="session")
def live_server() -> Iterator[LiveServer]:
    dispatch = _Dispatch()
    with serving(dispatch, lifespan="off") as url:
        yield LiveServer(url, dispatch)


@pytest.fixture
def make_client(
    live_server: LiveServer, settings: Settings, clock: FakeClock
) -> Iterator[Callable[..., tuple[httpx.Client, NotebookManager]]]:
    """Serve a fresh manager (optionally with other settings) and return a client for it.

    The shared server serves the most recently made manager: one per test.
    """
    clients: list[httpx.Client] = []

    def make(**overrides: Any) -> tuple[httpx.Client, NotebookManager]:
        s = settings.model_copy(update=overrides) if overrides else settings
        m = NotebookManager(s, clock=clock, python_versions=dict(PYTHONS))
        live_server.dispatch.app = create_app([notebook_router(m, s)])
        client = httpx.Client(base_url=live_server.url, timeout=30)
        clients.append(client)
        return client, m

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def client(make_client: Callable[..., tuple[httpx.Client, NotebookManager]]) -> httpx.Client:
    return make_client()[0]
