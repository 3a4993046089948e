"""The notebook tools for coding agents outside Quiver: a Model Context Protocol server.

Served at ``/mcp`` (streamable HTTP, the official ``mcp`` package) by the same app
as the REST API, behind the same bearer token, and built on the first request there
(``rest/mcp.py``): a process that serves no MCP never imports ``mcp``. A coding agent (Claude
Code, Cursor, ...) drives live sessions — their warm kernels and caches —
instead of editing files behind the server's back. The tools are the agent's
(``notebooks.ai``), each taking the ``session_id`` of an open notebook, plus
listing and opening notebooks, reading a variable (a table as its schema and
first rows) and the cells' statuses. Every change goes through the session
methods the REST routes call and is broadcast to open clients. A destructive
tool runs only when the call says ``approved: true`` — the coding agent asks
its user first, as the in-notebook agent does over the WebSocket.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

from foundation import QuiverError, Unauthorized, __version__
from notebooks import (
    TOOLS,
    NotebookManager,
    NotebookTools,
    Session,
    cells_list,
    output_summary,
)

_SESSION = {"type": "string", "description": "the session id of an open notebook"}

EXTRA: tuple[types.Tool, ...] = (
    types.Tool(
        name="list_notebooks",
        description="The open notebook sessions (session_id, name, path) and the notebooks "
        "on disk that can be opened.",
        input_schema={"type": "object", "properties": {}},
    ),
    types.Tool(
        name="open_notebook",
        description="Open the notebook at a path (relative to the notebook root); answers "
        "its session_id (the same one if it is open already).",
        input_schema={
            "type": "object",
            "properties": {"path": {"type": "string"}},
            "required": ["path"],
        },
    ),
    types.Tool(
        name="read_variable",
        description="A variable's value as its producing cell's last run left it: a table "
        "as its schema and first rows, a value as JSON or its repr.",
        input_schema={
            "type": "object",
            "properties": {"session_id": _SESSION, "name": {"type": "string"}},
            "required": ["session_id", "name"],
        },
    ),
    types.Tool(
        name="notebook_status",
        description="Every cell's status (idle, running, ready, error, stale) and what it "
        "defines, in notebook order.",
        input_schema={
            "type": "object",
            "properties": {"session_id": _SESSION},
            "required": ["session_id"],
        },
    ),
)


def _with_session(tool: Any) -> types.Tool:
    schema = json.loads(json.dumps(tool.parameters))
    schema["properties"] = {"session_id": _SESSION, **schema["properties"]}
    schema["required"] = ["session_id", *schema["required"]]
    description = tool.description
    if tool.destructive:
        schema["properties"]["approved"] = {
            "type": "boolean",
            "description": "the user approved this change",
        }
        description += " Destructive: ask the user first, then call with approved: true."
    return types.Tool(name=tool.name, description=description, input_schema=schema)


class McpTools:
    """The MCP server's tool table and its dispatch onto the notebook tools."""

    def __init__(self, manager: NotebookManager, tools: NotebookTools) -> None:
        self.manager = manager
        self.tools = tools
        self.listed = [_with_session(t) for t in TOOLS] + list(EXTRA)
        self.destructive = {t.name for t in TOOLS if t.destructive}

    def call(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run one tool; raises QuiverError for the caller's mistakes."""
        if name == "list_notebooks":
            return self.list_notebooks()
        if name == "open_notebook":
            session = self.manager.open(str(args.get("path", "")))
            return {"session_id": session.id, "name": session.nb.name, "path": session.path}
        session = self.manager.get(str(args.pop("session_id", "")))
        if name == "read_variable":
            return self.read_variable(session, str(args.get("name", "")))
        if name == "notebook_status":
            with session.lock:
                cells = cells_list(session.derived)
            return {"cells": [{"id": c["id"], "language": c["language"], "status": c["status"],
                               "defines": c["defines"]} for c in cells]}  # fmt: skip
        if name in self.destructive and args.pop("approved", None) is not True:
            return {"error": f"{name} changes the notebook for good: ask the user, then call "
                    "it again with approved: true"}  # fmt: skip
        args.pop("approved", None)
        return self.tools.call(session, name, args)

    def list_notebooks(self) -> dict[str, Any]:
        try:  # the session list is personal-mode only, as over REST
            sessions = self.manager.list_sessions()
        except Unauthorized:
            sessions = []
        on_disk = self.manager.discover().get("notebooks", [])
        return {"open": sessions, "on_disk": on_disk}

    @staticmethod
    def read_variable(session: Session, name: str) -> dict[str, Any]:
        with session.lock:
            d = session.derived
            producer = d.dag.variable_producer.get(name)
            result = d.results.get(producer) if producer else None
        if producer is None:
            return {"error": f"no cell defines {name!r}"}
        var = result.variables.get(name) if result is not None else None
        if var is None:
            return {"error": f"{name!r} has no value yet: run cell {producer}"}
        return {"name": name, "cell_id": producer, **output_summary(var)}


class McpServer:
    """The MCP server's ASGI endpoint and the lifespan its sessions need."""

    def __init__(self, manager: NotebookManager, tools: NotebookTools) -> None:
        self.table = McpTools(manager, tools)
        self.server: Server[Any] = Server(
            "quiver",
            version=__version__,
            instructions="Drive live Quiver notebooks: list or open one, read its cells, "
            "variables and DAG, add, edit and run cells.",
            on_list_tools=self._list,
            on_call_tool=self._call,
        )
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
        self.manager = StreamableHTTPSessionManager(
            app=self.server, stateless=True, security_settings=security
        )
        self.asgi = StreamableHTTPASGIApp(self.manager)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with self.manager.run():
            yield

    async def _list(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=self.table.listed)

    async def _call(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        args = dict(params.arguments or {})
        try:
            answer = await anyio.to_thread.run_sync(self.table.call, params.name, args)
        except QuiverError as exc:
            answer = {"error": exc.message}
        text = json.dumps(answer, default=str)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)],
            structured_content=json.loads(text),
            is_error="error" in answer,
        )
