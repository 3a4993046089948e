"""The agent's routes and WebSocket frames (API.md §10), and the edits' broadcasts.

``POST …/ai/agent`` starts the notebook's agent (``notebooks.ai``) and answers
at once; its progress goes to the session's sockets as ``agent_*`` frames
(``seq`` 0), and ``agent_done`` is followed by a ``notebook_state``.
``POST …/ai/agent/reset`` cancels it. A socket answers a confirm request with
``agent_confirm_response {request_id, approved}``. The tools' edits are
broadcast as a REST edit's are (``notebook_state`` and ``dag_update``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from foundation import Conflict, NotFound, Settings, Unavailable
from notebooks import (
    Agents,
    NotebookManager,
    NotebookTools,
    Session,
    ai_config,
    dag_update,
)
from rest.notebook_ws import Conversation, Handler
from rest.openapi import raises
from rest.ws_hub import Hub


class AgentBody(BaseModel):
    message: str = Field(max_length=10_000)
    auto_approve: bool = False


def broadcaster(hub: Hub) -> Callable[[Session], None]:
    """What a REST edit sends: the notebook's state and its DAG, to the session's sockets."""

    def changed(session: Session) -> None:
        if hub.has_clients(session.id):
            hub.publish_state(session)
            hub.publish(session.id, "dag_update", dag_update(session))

    return changed


def agent_emitter(hub: Hub, session: Session) -> Callable[[str, dict[str, Any]], None]:
    def emit(kind: str, payload: dict[str, Any]) -> None:
        ts = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        frame = {"type": kind, "seq": 0, "ts": ts, "payload": payload}
        for client in hub.members(session.id):
            client.put(frame)
        if kind == "agent_done":
            hub.publish_state(session)

    return emit


def agent_parts(
    manager: NotebookManager,
    settings: Settings,
    hub: Hub,
    agents: Agents,
    tools: NotebookTools,
) -> tuple[Callable[[APIRouter], None], dict[str, Handler]]:
    """The agent's routes (declared on the router given: the notebook router) and its
    WebSocket handlers."""

    def routes(router: APIRouter) -> None:
        @router.post("/{session_id}/ai/agent", responses=raises(NotFound, Unavailable, Conflict))
        def start_agent(session_id: str, body: AgentBody) -> dict[str, Any]:
            """Start the notebook's agent; progress goes over the WebSocket. 409: one is running."""
            session = manager.get(session_id)
            config = ai_config(settings, session)
            job = agents.start(
                session, config, tools, agent_emitter(hub, session), body.message,
                auto_approve=body.auto_approve,
            )  # fmt: skip
            return {"job_id": job.id, "status": "started"}

        @router.post("/{session_id}/ai/agent/reset", responses=raises(NotFound))
        def reset_agent(session_id: str) -> dict[str, Any]:
            """Cancel the notebook's agent, if one runs."""
            session = manager.get(session_id)
            agents.reset(session.id)
            return {"status": "ok"}

    def confirm(talk: Conversation, payload: dict[str, Any]) -> None:
        job = agents.get(talk.session.id)
        request_id = str(payload.get("request_id") or "")
        if job is None or not job.resolve(request_id, bool(payload.get("approved"))):
            talk.error("No agent confirmation is pending with that request_id")

    return routes, {"agent_confirm_response": confirm}
