"""The notebook WebSocket (API.md §13): a broadcast hub per session and the message loop.

Frames are ``{type, seq, ts, payload}``. ``seq`` is one counter per session,
shared by every socket and by REST-triggered runs (``notebook_state`` is
always ``seq: 0``). Runs happen in threads; their frames reach each socket
through that socket's queue, drained by one sender task, so every socket sees
frames in the order they were emitted and a slow socket never blocks a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

from notebooks.execution import Executions, Runner
from notebooks.manager import NotebookManager
from notebooks.serialize import dag_dict, state_dict
from notebooks.session import Session
from quiver.errors import Conflict, QuiverError

log = logging.getLogger(__name__)

READ_ONLY_TYPES = frozenset({"widget_update", "notebook_sync"})
PLAN_LIMIT = 32


def _ts() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(eq=False)
class Client:
    socket: WebSocket
    session_id: str
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)

    def put(self, frame: dict[str, Any] | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: the socket too
            self.loop.call_soon_threadsafe(self.queue.put_nowait, frame)


class Hub:
    """Sockets by session; thread-safe ``publish`` from runs and REST handlers."""

    def __init__(self) -> None:
        self._clients: dict[str, set[Client]] = {}
        self._seq: dict[str, int] = {}
        self._lock = threading.Lock()
        self.plans: dict[str, dict[str, tuple[str, list[str]]]] = {}
        """Pending cascade plans per session: plan id -> (cell id, cells to run)."""

    def has_clients(self, session_id: str) -> bool:
        return bool(self._clients.get(session_id))

    def join(self, client: Client) -> None:
        with self._lock:
            self._clients.setdefault(client.session_id, set()).add(client)

    def leave(self, client: Client) -> None:
        with self._lock:
            members = self._clients.get(client.session_id)
            if members is not None:
                members.discard(client)
                if not members:
                    del self._clients[client.session_id]
        client.put(None)

    def frame(self, session_id: str, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if kind == "notebook_state":
                seq = 0
            else:
                seq = self._seq.get(session_id, 0) + 1
                self._seq[session_id] = seq
        return {"type": kind, "seq": seq, "ts": _ts(), "payload": payload}

    def publish(self, session_id: str, kind: str, payload: dict[str, Any]) -> None:
        """Send a frame to every socket of the session (none: nothing to do)."""
        if not self._clients.get(session_id):
            return
        frame = self.frame(session_id, kind, payload)
        with self._lock:
            members = list(self._clients.get(session_id, ()))
        for client in members:
            client.put(frame)

    def send(self, client: Client, kind: str, payload: dict[str, Any]) -> None:
        """A frame for one socket only (errors, prompts, sync replies)."""
        client.put(self.frame(client.session_id, kind, payload))

    def publish_state(self, session: Session) -> None:
        if self.has_clients(session.id):
            self.publish(session.id, "notebook_state", notebook_state(session))


def notebook_state(session: Session) -> dict[str, Any]:
    with session.lock:
        body = state_dict(session)
        body["dag"] = dag_dict(session.derived.dag, producers=False)
    body["session_id"] = session.id
    return body


async def _sender(client: Client) -> None:
    while True:
        frame = await client.queue.get()
        if frame is None:
            return
        try:
            await client.socket.send_text(json.dumps(frame, default=str))
        except Exception:  # the peer went away; the receive loop ends the socket
            return


class Conversation:
    """One socket's message loop."""

    def __init__(
        self,
        hub: Hub,
        manager: NotebookManager,
        executions: Executions | None,
        session: Session,
        client: Client,
        read_only: bool,
    ) -> None:
        self.hub = hub
        self.manager = manager
        self.executions = executions
        self.session = session
        self.client = client
        self.read_only = read_only

    def error(self, message: str, **extra: Any) -> None:
        self.hub.send(self.client, "error", {"error": message, **extra})

    def _runner(self) -> Runner | None:
        if self.executions is None:
            self.error("Cell execution is not configured on this server")
            return None
        return self.executions.runner(self.session)

    def _start(self, what: Callable[[], Any]) -> None:
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

    def _precheck(self, runner: Runner, cell_id: Any) -> bool:
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
        if kind == "notebook_sync":
            self.hub.send(self.client, "notebook_state", notebook_state(self.session))
            return
        handler = {
            "cell_execute": self._execute,
            "cell_execute_cascade": self._cascade,
            "cell_execute_force": lambda p: self._direct(p, "force"),
            "cell_execute_rerun": lambda p: self._direct(p, "rerun"),
            "cell_cancel": self._cancel,
            "notebook_run_all": lambda p: self._run_all(p, rerun=False),
            "notebook_rerun_all": lambda p: self._run_all(p, rerun=True),
        }.get(str(kind))
        if handler is None:
            self.error(f"Unknown message type: {kind}")
            return
        handler(payload)

    def _execute(self, payload: dict[str, Any]) -> None:
        runner = self._runner()
        cell_id = payload.get("cell_id")
        if runner is None or not self._precheck(runner, cell_id):
            return
        plan = runner.plan(str(cell_id))
        if len(plan) > 1:
            plan_id = uuid.uuid4().hex[:8]
            plans = self.hub.plans.setdefault(self.session.id, {})
            plans[plan_id] = (str(cell_id), plan)
            while len(plans) > PLAN_LIMIT:
                plans.pop(next(iter(plans)))
            estimate = sum(
                r.duration_ms
                for cid in plan
                if (r := self.session.derived.results.get(cid)) is not None
            )
            self.hub.send(
                self.client,
                "cascade_prompt",
                {
                    "cell_id": cell_id,
                    "plan_id": plan_id,
                    "cells_to_run": plan,
                    "estimated_duration_ms": int(estimate),
                },
            )
            return
        self._start(lambda: runner.execute(str(cell_id), "normal"))

    def _cascade(self, payload: dict[str, Any]) -> None:
        runner = self._runner()
        cell_id, plan_id = payload.get("cell_id"), payload.get("plan_id")
        if runner is None or not self._precheck(runner, cell_id):
            return
        plans = self.hub.plans.get(self.session.id, {})
        pending = plans.get(str(plan_id))
        if pending is None or pending[0] != cell_id:
            self.error("Cascade plan not found or expired")
            return
        plans.pop(str(plan_id), None)
        self._start(lambda: runner.execute(str(cell_id), "normal", plan_id=str(plan_id)))

    def _direct(self, payload: dict[str, Any], mode: str) -> None:
        runner = self._runner()
        cell_id = payload.get("cell_id")
        if runner is None or not self._precheck(runner, cell_id):
            return
        self._start(lambda: runner.execute(str(cell_id), mode))

    def _cancel(self, payload: dict[str, Any]) -> None:
        runner = self.executions.get(self.session.id) if self.executions else None
        if runner is None or not runner.cancel(payload.get("cell_id")):
            self.error("No running cell to cancel")

    def _run_all(self, payload: dict[str, Any], *, rerun: bool) -> None:
        runner = self._runner()
        if runner is None:
            return
        if runner.busy:
            self.error(f"Notebook is already executing cell {runner.current}")
            return
        go_on = bool(payload.get("continue_on_error", True))
        self._start(lambda: runner.run_all(rerun=rerun, continue_on_error=go_on))


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
) -> None:
    try:
        session = manager.get(session_id)
    except QuiverError:
        await websocket.close(code=1008, reason="Notebook not found")
        return
    await websocket.accept()
    client = Client(websocket, session_id, asyncio.get_running_loop())
    hub.join(client)
    if executions is not None and websocket.query_params.get("role") != "viewer":
        # An editor is here to run cells: start the kernel now, so the first run
        # finds it warm instead of paying the interpreter's start-up.
        _warm_up(executions, session)
    sender = asyncio.create_task(_sender(client))
    talk = Conversation(
        hub, manager, executions, session, client, websocket.query_params.get("role") == "viewer"
    )
    try:
        while True:
            text = await websocket.receive_text()
            try:
                message = json.loads(text)
            except ValueError:
                talk.error("Messages are JSON objects {type, payload}")
                continue
            session.touch()
            talk.handle(message)
    except WebSocketDisconnect:
        pass
    finally:
        hub.leave(client)
        with contextlib.suppress(Exception):
            await sender
