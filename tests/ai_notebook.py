"""A notebook served with the AI assistant wired as ``quiver serve`` wires it (prompt cells,
the agent, MCP), over a real Flight server, kernel and uvicorn."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from foundation import Settings
from notebooks import Executions, FlightConfig, NotebookManager
from rest.app import create_app
from rest.notebook_ai import ai_routes
from rest.notebooks import notebook_router
from rest.ws_hub import Hub
from tests.fixtures_execution import Nb
from tests.fixtures_notebooks import PYTHONS
from tests.servers import serve_asgi


def open_ai_nb(settings: Settings, location: str) -> tuple[Nb, Callable[[], None]]:
    manager = NotebookManager(settings, python_versions=dict(PYTHONS))
    executions = Executions(manager, FlightConfig(location))
    hub = Hub()
    ai = ai_routes(manager, settings, executions, hub)
    router = notebook_router(
        manager, settings, executions=executions, hub=hub, ws_extra=ai.ws, extra=ai.routes
    )
    app = create_app([router])
    url, stop = serve_asgi(app, lifespan="off")
    client = httpx.Client(base_url=url, timeout=120)
    r = client.post("/v1/notebooks/create", json={"parent_path": ".", "name": "ai"})
    assert r.status_code == 200, r.text
    nb = Nb(client, manager, executions, r.json()["session_id"], location, url)

    def close() -> None:
        ai.close()
        executions.close()
        client.close()
        stop()

    return nb, close
