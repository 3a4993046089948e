"""The agent end to end against a scripted provider: it adds a cell, runs it and reports,
with its frames on the WebSocket; destructive tools wait for approval; one agent per
notebook; reset cancels; both provider protocols carry tool calls."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from foundation import Settings
from tests.ai_notebook import open_ai_nb
from tests.ai_provider import Answer, Provider
from tests.fixtures_execution import Nb

KEY = "sk-agent-SECRET-abcdef0123456789"


def _nb(settings: Settings, location: str, **ai: Any) -> tuple[Nb, Any]:
    return open_ai_nb(settings.model_copy(update=ai), location)


@pytest.fixture
def ai_nb(settings: Settings, flight_server: Any, provider: Provider) -> Iterator[Nb]:
    nb, close = _nb(settings, flight_server.location, ai_base_url=provider.openai_url,
                    ai_api_key=SecretStr(KEY), ai_model="m1")  # fmt: skip
    yield nb
    close()


def _last_tool_result(body: dict[str, Any]) -> dict[str, Any]:
    messages = body["messages"]
    for m in reversed(messages):  # OpenAI: role tool; Anthropic: a user tool_result block
        if m["role"] == "tool":
            return json.loads(m["content"])
        if m["role"] == "user" and isinstance(m["content"], list):
            return json.loads(m["content"][-1]["content"])
    raise AssertionError(f"no tool result in {messages}")


def _run_added(body: dict[str, Any]) -> Answer:
    cell_id = _last_tool_result(body)["cell_id"]
    return Answer(text=["Running it."], tool_calls=[("run_cell", {"cell_id": cell_id})])


def _report(body: dict[str, Any]) -> Answer:
    result = _last_tool_result(body)
    value = result["outputs"]["answer"]["value"]
    return Answer(text=["Added a cell; it ran: answer = ", str(value), "."])


def test_agent_adds_a_cell_runs_it_and_reports(ai_nb: Nb, provider: Provider) -> None:
    nb = ai_nb
    provider.script(
        Answer(text=["I'll add a cell."],
               tool_calls=[("add_cell", {"source": "answer = 6 * 7", "language": "python"})]),
        _run_added,
        _report,
    )  # fmt: skip
    with nb.socket() as ws:
        r = nb.client.post(f"{nb.base}/ai/agent", json={"message": "compute 6*7"})
        assert r.status_code == 200, r.text
        job = r.json()
        assert job["status"] == "started" and len(job["job_id"]) == 8
        frames = ws.recv_until(lambda f: f["type"] == "agent_done", timeout=60)
        state = ws.recv_until(lambda f: f["type"] == "notebook_state")
    done = frames[-1]["payload"]
    assert frames[-1]["seq"] == 0
    assert done["content"] == "Added a cell; it ran: answer = 42."
    assert done["iterations"] == 3 and done["cancelled"] is False and done["error"] is None
    assert [c["tool"] for c in done["tool_calls"]] == ["add_cell", "run_cell"]
    assert done["tokens"] == {"input": 33, "output": 21} and done["job_id"] == job["job_id"]
    kinds = [f["type"] for f in frames]
    assert "agent_text_delta" in kinds and "dag_update" in kinds and "cell_output" in kinds
    progress = [f["payload"] for f in frames if f["type"] == "agent_progress"]
    assert [(p["event"], p["detail"]) for p in progress] == [
        ("tool_start", "add_cell"), ("tool_done", "add_cell"),
        ("tool_start", "run_cell"), ("tool_done", "run_cell"),
    ]  # fmt: skip
    cells = state[-1]["payload"]["cells"]
    assert len(cells) == 1 and cells[0]["source"] == "answer = 6 * 7"
    assert cells[0]["status"] == "ready"
    first = provider.requests[0]["body"]
    assert {t["function"]["name"] for t in first["tools"]} >= {"add_cell", "run_cell", "get_dag"}
    assert first["stream"] is True


def test_destructive_tools_wait_for_approval(
    settings: Settings, flight_server: Any, provider: Provider
) -> None:
    nb, close = _nb(settings, flight_server.location, ai_base_url=provider.url)
    try:
        nb.client.put(f"{nb.base}/env", json={"env": {"ANTHROPIC_API_KEY": KEY}})
        keep = nb.add("x = 1")
        provider.script(
            Answer(text=["Deleting."], tool_calls=[("delete_cell", {"cell_id": keep})]),
            lambda body: Answer(text=[_last_tool_result(body)["error"]]),
        )
        with nb.socket() as ws:
            r = nb.client.post(f"{nb.base}/ai/agent", json={"message": "delete it"})
            assert r.status_code == 200, r.text
            asked = ws.recv_until(lambda f: f["type"] == "agent_confirm_request")[-1]
            assert asked["payload"]["tool"] == "delete_cell"
            again = nb.client.post(f"{nb.base}/ai/agent", json={"message": "another"})
            assert again.status_code == 409
            assert again.json()["detail"] == "An agent is already running for this notebook."
            ws.send("agent_confirm_response", request_id=asked["payload"]["request_id"],
                    approved=False)  # fmt: skip
            done = ws.recv_until(lambda f: f["type"] == "agent_done")[-1]["payload"]
        assert done["content"] == "The user declined this action."
        assert keep in nb.cells()
        assert provider.requests[0]["path"] == "/v1/messages"
    finally:
        close()


def test_reset_cancels_a_waiting_agent(ai_nb: Nb, provider: Provider) -> None:
    nb = ai_nb
    cid = nb.add("y = 2")
    provider.script(Answer(text=["Deleting."], tool_calls=[("delete_cell", {"cell_id": cid})]))
    with nb.socket() as ws:
        assert nb.client.post(f"{nb.base}/ai/agent", json={"message": "go"}).status_code == 200
        ws.recv_until(lambda f: f["type"] == "agent_confirm_request")
        assert nb.client.post(f"{nb.base}/ai/agent/reset").json() == {"status": "ok"}
        done = ws.recv_until(lambda f: f["type"] == "agent_done")[-1]["payload"]
    assert done["cancelled"] is True and done["error"] is None
    assert cid in nb.cells()
    provider.script(Answer(text=["Fine."]))
    assert nb.client.post(f"{nb.base}/ai/agent", json={"message": "again"}).status_code == 200


def test_provider_failure_ends_the_agent_with_its_error(ai_nb: Nb, provider: Provider) -> None:
    nb = ai_nb
    provider.script(Answer(status=429, error="slow down"))
    with nb.socket() as ws:
        nb.client.post(f"{nb.base}/ai/agent", json={"message": "go", "auto_approve": True})
        done = ws.recv_until(lambda f: f["type"] == "agent_done")[-1]["payload"]
    assert "rate-limiting" in done["error"] and done["content"] == ""


def test_agent_needs_a_model(settings: Settings, flight_server: Any) -> None:
    nb, close = _nb(settings, flight_server.location)
    try:
        r = nb.client.post(f"{nb.base}/ai/agent", json={"message": "go"})
        assert r.status_code == 503 and "QUIVER_AI_API_KEY" in r.json()["detail"]
    finally:
        close()
