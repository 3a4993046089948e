"""The AI assistant's routes (API.md §10) under ``/v1/notebooks/{session_id}/ai``.

``status``, ``models``, ``model``, ``complete`` and ``stream`` answer from
``notebooks.ai``; the agent's routes are added by :mod:`rest.notebook_agent`.
``stream`` is Server-Sent Events sent as the provider's tokens arrive
(:class:`EventStream`); a client that goes away cancels the provider's request
at once, whether or not a token is on its way.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from foundation import NotFound, Settings, Timeout, Unavailable
from notebooks import (
    Agents,
    Executions,
    NotebookManager,
    NotebookTools,
    PromptCells,
    ProviderFailed,
    RateLimited,
    ai_complete,
    ai_models,
    ai_status,
    ai_stream,
    set_ai_model,
)
from rest.mcp import McpEndpoint
from rest.notebook_agent import agent_parts, broadcaster
from rest.notebook_ws import Handler
from rest.openapi import raises
from rest.ws_hub import Hub

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: str = Field(pattern=r"^(user|assistant)$")
    content: str = Field(max_length=20_000)


class ChatRequest(BaseModel):
    message: str = Field(max_length=10_000)
    cell_id: str | None = None
    history: list[Turn] = Field(default_factory=list, max_length=20)


class ModelBody(BaseModel):
    model: str = Field(min_length=1, max_length=200)


def frame(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class EventStream(Response):
    """``text/event-stream`` from ``(event, data)`` pairs, stopped when the client leaves."""

    media_type = "text/event-stream"

    def __init__(self, events: AsyncIterator[tuple[str, dict[str, Any]]]) -> None:
        super().__init__(content=None, headers=SSE_HEADERS, media_type=self.media_type)
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})

        async def pump(done: anyio.CancelScope) -> None:
            try:
                async for event, data in self.events:
                    await send({"type": "http.response.body", "body": frame(event, data),
                                "more_body": True})  # fmt: skip
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            finally:
                done.cancel()
                with anyio.CancelScope(shield=True):
                    await self.events.aclose()  # type: ignore[attr-defined]

        async def listen(done: anyio.CancelScope) -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            done.cancel()

        async with anyio.create_task_group() as group:
            group.start_soon(pump, group.cancel_scope)
            group.start_soon(listen, group.cancel_scope)


def notebook_ai_router(
    manager: NotebookManager, settings: Settings, *, router: APIRouter
) -> APIRouter:
    """The assistant's chat routes, declared on ``router`` (the notebook router)."""

    @router.get("/{session_id}/ai/status", responses=raises(NotFound))
    def get_status(session_id: str) -> dict[str, Any]:
        """Whether an AI model is configured for this notebook, and which."""
        return ai_status(settings, manager.get(session_id))

    @router.get("/{session_id}/ai/models", responses=raises(NotFound))
    async def get_models(session_id: str) -> dict[str, Any]:
        """The provider's models (its failure: an empty list) and the current one."""
        return await ai_models(settings, manager.get(session_id))

    @router.put("/{session_id}/ai/model", responses=raises(NotFound))
    def put_model(session_id: str, body: ModelBody) -> dict[str, Any]:
        """Choose the notebook's model (written to ``[ai].model`` of notebook.toml)."""
        return set_ai_model(manager.get(session_id), body.model)

    errors = raises(NotFound, Unavailable, RateLimited, ProviderFailed, Timeout)

    @router.post("/{session_id}/ai/complete", responses=errors)
    async def post_complete(session_id: str, body: ChatRequest) -> dict[str, Any]:
        """One answer, whole. 503: no model configured; 429/502/504: the provider's failure."""
        session = manager.get(session_id)
        history = [t.model_dump() for t in body.history]
        return await ai_complete(settings, session, body.message, body.cell_id, history)

    @router.post(
        "/{session_id}/ai/stream",
        response_model=None,
        responses={**raises(NotFound, Unavailable),
                   200: {"content": {"text/event-stream": {}},
                         "description": "Events delta, then done or error."}},
    )  # fmt: skip
    def post_stream(session_id: str, body: ChatRequest) -> EventStream:
        """The answer as Server-Sent Events: ``delta {text}``..., then ``done {model, tokens}``
        or ``error {message}`` (the HTTP status stays 200 once the stream started)."""
        session = manager.get(session_id)
        history = [t.model_dump() for t in body.history]
        events = ai_stream(settings, session, body.message, body.cell_id, history)
        return EventStream(events)

    return router


@dataclass
class AIParts:
    """What the assistant adds to the app: notebook routes (each declares its own on the
    notebook router), WebSocket handlers, its tools (for MCP), and what stops its agents."""

    routes: list[Callable[[APIRouter], object]]
    ws: dict[str, Handler]
    tools: NotebookTools
    close: Callable[[], None]
    mcp: McpEndpoint


def ai_routes(
    manager: NotebookManager, settings: Settings, executions: Executions | None, hub: Hub
) -> AIParts:
    """The assistant over ``manager``: prompt cells run with ``executions``; the agent's
    frames and its edits' broadcasts go to ``hub`` (the notebook router's)."""
    if executions is not None:
        executions.prompts = PromptCells(settings)
    agents = Agents()
    runner_for = executions.runner if executions is not None else None
    tools = NotebookTools(settings, runner_for, broadcaster(hub))
    agent_routes, ws = agent_parts(manager, settings, hub, agents, tools)

    def chat_routes(router: APIRouter) -> APIRouter:
        return notebook_ai_router(manager, settings, router=router)

    return AIParts(
        [chat_routes, agent_routes], ws, tools, agents.close, McpEndpoint(manager, tools)
    )
