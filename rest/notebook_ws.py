"""The notebook WebSocket (API.md §13): one socket's message loop, and running cells.

Frames are ``{type, seq, ts, payload}`` (``rest/ws_hub.py`` fans them out).
Messages are handled one at a time, in order, on a worker thread (an edit
writes a file); a run goes on in a thread of its own and reports through the
hub. The messages other than running cells (edits, presence, profiling,
impact previews, the inspect REPL, and the features Quiver answers
``unsupported``) are in ``rest/ws_messages.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketDisconnected

from foundation import Conflict, QuiverError, Settings
from notebooks import Executions, NotebookManager, Runner, Session, caller, identity
from rest.ws_hub import Client, Hub, notebook_state, send_loop

log = logging.getLogger(__name__)

READ_ONLY_TYPES = frozenset({"widget_update", "notebook_sync"})
PLAN_LIMIT = 32

Handler = Callable[["Conversation", dict[str, Any]], None]
"""A message type's handler: the conversation it arrived on, and its payload."""


class Conversation:
    """One socket's message loop."""

    def __init__(
        self,
        hub: Hub,
        manager: NotebookManager,
        executions: Executions | None,
        session: Session,
        client: Client,
        *,
        read_only: bool,
        settings: Settings,
        handlers: Mapping[str, Handler],
    ) -> None:
        self.hub = hub
        self.manager = manager
        self.executions = executions
        self.session = session
        self.client = client
        self.read_only = read_only
        self.settings = settings
        self.handlers = handlers
        self.caller = caller.get()
        self.principal = identity(self.caller)
        """Who this socket is: the user header's value, else ``local``."""

    def author(self, payload: dict[str, Any]) -> str:
        """Who a message comes from: the user header's value, else the ``author`` it
        names (agents name themselves), else ``local``."""
        return identity(self.caller, payload.get("author"))

    def error(self, message: str, **extra: Any) -> None:
        self.hub.send(self.client, "error", {"error": message, **extra})

    def reply(self, kind: str, payload: dict[str, Any]) -> None:
        self.hub.send(self.client, kind, payload)

    def handle(self, message: Any) -> None:
        if not isinstance(message, dict):
            self.error("Messages are JSON objects {type, payload}")
            return
        kind = message.get("type")
        payload = message.get("payload") or {}
        if not isinstance(payload, dict):
            payload = {}
        if self.read_only and kind not in READ_ONLY_TYPES:
            self.error("This socket is read-only", code="read_only")
            return
        handler = EXECUTION.get(str(kind)) or self.handlers.get(str(kind))
        if handler is None:
            self.error(f"Unknown message type: {kind}")
            return
        try:
            handler(self, payload)
        except QuiverError as exc:
            self.error(exc.message)
        except Exception as exc:  # never a traceback to the client, never a dead socket
            log.exception("notebook message %s failed", kind)
            self.error(f"{kind} failed: {type(exc).__name__}")

    # -- running cells -----------------------------------------------------------------------

    def runner(self) -> Runner | None:
        if self.executions is None:
            self.error("Cell execution is not configured on this server")
            return None
        return self.executions.runner(self.session)

    def start(self, what: Callable[[], Any]) -> None:
        def go() -> None:
            try:
                what()
            except Conflict as exc:
                detail = exc.detail if isinstance(exc.detail, dict) else {}
                if detail.get("code") == "ENVIRONMENT_BUSY":
                    self.error(exc.message, code="ENVIRONMENT_BUSY")
                else:
                    self.error(exc.message)
            except QuiverError as exc:
                self.error(exc.message)
            except Exception as exc:
                log.exception("notebook run failed")
                self.error(f"Execution failed: {type(exc).__name__}")

        threading.Thread(target=go, daemon=True, name="notebook-run").start()

    def precheck(self, runner: Runner, cell_id: Any) -> bool:
        if not cell_id:
            self.error("Missing cell_id")
            return False
        if runner.busy:
            self.error(f"Notebook is already executing cell {runner.current}")
            return False
        if self.session.env_busy:
            self.error("Environment operation in progress", code="ENVIRONMENT_BUSY")
            return False
        if self.session.derived.cell(str(cell_id)) is None:
            self.error(f"Cell {cell_id} not found")
            return False
        return True


def _execute(talk: Conversation, payload: dict[str, Any]) -> None:
    runner = talk.runner()
    cell_id = payload.get("cell_id")
    if runner is None or not talk.precheck(runner, cell_id):
        return
    plan = runner.plan(str(cell_id))
    if len(plan) > 1:
        plan_id = uuid.uuid4().hex[:8]
        plans = talk.hub.plans.setdefault(talk.session.id, {})
        plans[plan_id] = (str(cell_id), plan)
        while len(plans) > PLAN_LIMIT:
            plans.pop(next(iter(plans)))
        results = talk.session.derived.results
        estimate = sum(r.duration_ms for cid in plan if (r := results.get(cid)) is not None)
        talk.reply(
            "cascade_prompt",
            {
                "cell_id": cell_id,
                "plan_id": plan_id,
                "cells_to_run": plan,
                "estimated_duration_ms": int(estimate),
            },
        )
        return
    talk.start(lambda: runner.execute(str(cell_id), "normal"))


def _cascade(talk: Conversation, payload: dict[str, Any]) -> None:
    runner = talk.runner()
    cell_id, plan_id = payload.get("cell_id"), payload.get("plan_id")
    if runner is None or not talk.precheck(runner, cell_id):
        return
    plans = talk.hub.plans.get(talk.session.id, {})
    pending = plans.get(str(plan_id))
    if pending is None or pending[0] != cell_id:
        talk.error("Cascade plan not found or expired")
        return
    plans.pop(str(plan_id), None)
    talk.start(lambda: runner.execute(str(cell_id), "normal", plan_id=str(plan_id)))


def _direct(mode: str) -> Handler:
    def run(talk: Conversation, payload: dict[str, Any]) -> None:
        runner = talk.runner()
        cell_id = payload.get("cell_id")
        if runner is None or not talk.precheck(runner, cell_id):
            return
        talk.start(lambda: runner.execute(str(cell_id), mode))

    return run


def _cancel(talk: Conversation, payload: dict[str, Any]) -> None:
    runner = talk.executions.get(talk.session.id) if talk.executions else None
    if runner is None or not runner.cancel(payload.get("cell_id")):
        talk.error("No running cell to cancel")


def _run_all(rerun: bool) -> Handler:
    def run(talk: Conversation, payload: dict[str, Any]) -> None:
        runner = talk.runner()
        if runner is None:
            return
        if runner.busy:
            talk.error(f"Notebook is already executing cell {runner.current}")
            return
        go_on = bool(payload.get("continue_on_error", True))
        talk.start(lambda: runner.run_all(rerun=rerun, continue_on_error=go_on))

    return run


def _sync(talk: Conversation, payload: dict[str, Any]) -> None:
    talk.reply("notebook_state", notebook_state(talk.session))


EXECUTION: dict[str, Handler] = {
    "cell_execute": _execute,
    "cell_execute_cascade": _cascade,
    "cell_execute_force": _direct("force"),
    "cell_execute_rerun": _direct("rerun"),
    "cell_cancel": _cancel,
    "notebook_run_all": _run_all(False),
    "notebook_rerun_all": _run_all(True),
    "notebook_sync": _sync,
}


def _warm_up(executions: Executions, session: Session) -> None:
    def start() -> None:
        with contextlib.suppress(Exception):  # a failed start shows at the first run
            executions.runner(session).start_kernel()

    threading.Thread(target=start, name="quiver-kernel-warm-up", daemon=True).start()


async def serve_socket(
    websocket: WebSocket,
    session_id: str,
    hub: Hub,
    manager: NotebookManager,
    executions: Executions | None,
    *,
    settings: Settings,
    handlers: Mapping[str, Handler],
    on_leave: Callable[[Session, Client], None] | None = None,
) -> None:
    try:
        session = manager.get(session_id)
    except QuiverError:
        await websocket.close(code=1008, reason="Notebook not found")
        return
    await websocket.accept()
    viewer = websocket.query_params.get("role") == "viewer"
    client = Client(websocket, session_id, asyncio.get_running_loop())
    talk = Conversation(
        hub, manager, executions, session, client,
        read_only=viewer, settings=settings, handlers=handlers,
    )  # fmt: skip
    hub.join(client)
    session.presence.join(client, talk.principal)
    hub.publish_presence(session)
    if executions is not None and not viewer:
        # An editor is here to run cells: start the kernel now, so the first run
        # finds it warm instead of paying the interpreter's start-up.
        _warm_up(executions, session)
    sender = asyncio.create_task(send_loop(client))
    try:
        while True:
            text = await websocket.receive_text()
            try:
                message = json.loads(text)
            except ValueError:
                talk.error("Messages are JSON objects {type, payload}")
                continue
            session.touch()
            await asyncio.to_thread(talk.handle, message)
    except (WebSocketDisconnect, WebSocketDisconnected):
        # WebSocketDisconnected: the send loop's write failed first (the peer
        # reset the connection), which marks the socket closed before the
        # receive side has seen the disconnect message.
        pass
    finally:
        hub.leave(client)
        if session.presence.leave(client):
            hub.publish_presence(session)
        if on_leave is not None:
            on_leave(session, client)
        with contextlib.suppress(Exception):
            await sender
