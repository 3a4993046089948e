"""The MCP server at /mcp, driven by the official ``mcp`` client over streamable HTTP: the
same bearer token as the API, the agent's tools on live sessions (their edits broadcast to
open sockets), reading variables, and destructive tools only with the user's approval."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.fixtures_execution import open_socket
from tests.fixtures_rest import Rest

TOKEN = "mcp-t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _client(url: str, http: httpx2.AsyncClient) -> Client:
    return Client(streamable_http_client(f"{url}/mcp", http_client=http))


def _answer(result: Any) -> dict[str, Any]:
    return json.loads(result.content[0].text)


# A process of its own: this test module imports ``mcp`` itself.
_LAZY = """
import sys
from starlette.testclient import TestClient
from foundation import Settings
from rest import app_from_settings

app = app_from_settings(Settings(data_dir=sys.argv[1]), flight_uri="grpc://127.0.0.1:9")
with TestClient(app) as http:
    assert http.get("/health").status_code == 200
    assert http.get("/openapi.json").status_code == 200
    print("before", "mcp" in sys.modules)
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    accept = {"Accept": "application/json, text/event-stream"}
    r = http.post("/mcp", json=ping, headers=accept)
    print("after", "mcp" in sys.modules, r.status_code, r.text.count('"id":1'))
"""


def test_mcp_is_loaded_by_its_first_request(tmp_path: Path) -> None:
    """An app that serves no MCP request never imports ``mcp``; the first request does,
    and gets its answer."""
    run = subprocess.run(
        [sys.executable, "-c", _LAZY, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[:2] == ["before False", "after True 200 1"], run.stdout


def test_mcp_needs_the_token(make_rest: Callable[..., Rest]) -> None:
    rest = make_rest(token=TOKEN)
    r = httpx.post(f"{rest.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert r.status_code == 401


def test_mcp_drives_a_live_notebook(make_rest: Callable[..., Rest]) -> None:
    rest = make_rest(token=TOKEN)
    r = rest.http.post("/v1/notebooks/create", json={"parent_path": ".", "name": "mcp"},
                       headers=AUTH)  # fmt: skip
    assert r.status_code == 200, r.text
    sid = r.json()["session_id"]
    ws = open_socket(rest.url, f"/v1/notebooks/ws/{sid}", headers=AUTH)

    async def drive() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with (
            httpx2.AsyncClient(headers=AUTH, timeout=60) as http,
            _client(rest.url, http) as client,
        ):
            tools = {t.name for t in (await client.list_tools()).tools}
            seen["tools"] = tools
            listed = _answer(await client.call_tool("list_notebooks", {}))
            seen["listed"] = [s["session_id"] for s in listed["open"]]
            added = _answer(await client.call_tool(
                "add_cell", {"session_id": sid, "source": "z = 40 + 2"}))  # fmt: skip
            cid = added["cell_id"]
            seen["cid"] = cid
            seen["run"] = _answer(
                await client.call_tool("run_cell", {"session_id": sid, "cell_id": cid})
            )
            seen["var"] = _answer(
                await client.call_tool("read_variable", {"session_id": sid, "name": "z"})
            )
            seen["status"] = _answer(await client.call_tool("notebook_status", {"session_id": sid}))
            refused = await client.call_tool("delete_cell", {"session_id": sid, "cell_id": cid})
            seen["refused"] = (refused.is_error, _answer(refused))
            deleted = await client.call_tool(
                "delete_cell", {"session_id": sid, "cell_id": cid, "approved": True}
            )
            seen["deleted"] = (deleted.is_error, _answer(deleted))
            missing = await client.call_tool("read_cell", {"session_id": "nope", "cell_id": "x"})
            seen["missing"] = (missing.is_error, _answer(missing))
        return seen  # fmt: skip

    try:
        seen = asyncio.run(drive())
        frames = ws.recv_until(lambda f: f["type"] == "dag_update")
    finally:
        ws.close()
    assert seen["tools"] >= {"list_cells", "read_cell", "add_cell", "edit_cell", "delete_cell",
                             "reorder_cells", "run_cell", "get_dag", "list_notebooks",
                             "open_notebook", "read_variable", "notebook_status"}  # fmt: skip
    assert sid in seen["listed"]
    assert seen["run"]["status"] == "ready"
    assert seen["var"]["value"] == 42 and seen["var"]["cell_id"] == seen["cid"]
    assert seen["status"]["cells"][0]["status"] == "ready"
    assert seen["refused"][0] is True and "approved: true" in seen["refused"][1]["error"]
    assert seen["deleted"] == (False, {"cell_id": seen["cid"], "deleted": True})
    assert seen["missing"][0] is True and "not found" in seen["missing"][1]["error"].lower()
    assert any(f["type"] == "notebook_state" for f in frames)
    cells = rest.http.get(f"/v1/notebooks/{sid}/cells", headers=AUTH).json()["cells"]
    assert cells == []
