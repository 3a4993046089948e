"""The ``/mcp`` endpoint, built on its first request.

The MCP server (``rest/mcp_server.py``) needs the ``mcp`` package, the heaviest
import of the REST app (about half of its import time, and more again in the
interpreter's teardown). Most processes never serve MCP — every test app, most
``quiver serve`` runs — so the app holds this front instead: on the first request
it imports the server (in a worker thread, so the event loop keeps serving), starts
its session manager inside the app's lifespan and hands it every request from then
on. What a client sees is the same as when the server is built with the app.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup, TaskStatus
from starlette.types import Receive, Scope, Send

from notebooks import NotebookManager, NotebookTools

if TYPE_CHECKING:
    from rest.mcp_server import McpServer


def _import_server() -> type[McpServer]:
    from rest.mcp_server import McpServer

    return McpServer


class McpEndpoint:
    """The ``/mcp`` ASGI app over the notebook ``manager`` and the agent's ``tools``;
    :meth:`running` is the lifespan its server runs in."""

    def __init__(self, manager: NotebookManager, tools: NotebookTools) -> None:
        self._manager = manager
        self._tools = tools
        self._server: McpServer | None = None
        self._group: TaskGroup | None = None
        self._building: anyio.Lock | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """While the app runs: the task group the server, once built, runs in."""
        async with anyio.create_task_group() as group:
            self._group, self._building = group, anyio.Lock()
            try:
                yield
            finally:
                self._group = None
                group.cancel_scope.cancel()  # the server's session manager stops

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = self._server or await self._build()
        await server.asgi(scope, receive, send)

    async def _build(self) -> McpServer:
        if self._group is None or self._building is None:
            raise RuntimeError("the /mcp endpoint serves only while the app's lifespan runs")
        async with self._building:
            if self._server is None:
                server_type = await anyio.to_thread.run_sync(_import_server)
                server = server_type(self._manager, self._tools)
                await self._group.start(self._serve, server)
                self._server = server
        return self._server

    @staticmethod
    async def _serve(server: McpServer, *, task_status: TaskStatus[None]) -> None:
        async with server.running():
            task_status.started()
            await anyio.sleep_forever()
