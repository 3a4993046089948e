"""The notebook WebSocket's fan-out: sockets by session, one ``seq`` counter per session.

Runs and REST handlers publish from any thread; each socket has a queue drained
by one sender task, so every socket sees frames in the order they were made and
a slow socket never blocks a run. ``notebook_state`` is always ``seq: 0``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from fastapi import WebSocket

from notebooks import LOCAL, Session, dag_dict, state_dict


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

    def members(self, session_id: str) -> list[Client]:
        with self._lock:
            return list(self._clients.get(session_id, ()))

    def publish(
        self,
        session_id: str,
        kind: str,
        payload: dict[str, Any],
        *,
        sender: Client | None = None,
        to_others: dict[str, Any] | None = None,
    ) -> None:
        """Send a frame to every socket of the session (none: nothing to do). With
        ``to_others``, every socket but ``sender`` gets that payload instead (same seq)."""
        if not self._clients.get(session_id):
            return
        frame = self.frame(session_id, kind, payload)
        other = frame if to_others is None else {**frame, "payload": to_others}
        for client in self.members(session_id):
            client.put(frame if client is sender else other)

    def publish_presence(self, session: Session) -> None:
        """``presence`` to each socket of the session, naming the receiver's own identity."""
        members = self.members(session.id)
        if not members:
            return
        principals = session.presence.snapshot()
        frame = self.frame(session.id, "presence", {})
        for client in members:
            you = session.presence.principal_of(client) or LOCAL
            client.put({**frame, "payload": {"principals": principals, "you": you}})

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


async def send_loop(client: Client) -> None:
    """Drain the client's queue into its socket until ``None`` (it left) or a failed send."""
    while True:
        frame = await client.queue.get()
        if frame is None:
            return
        try:
            await client.socket.send_text(json.dumps(frame, default=str))
        except Exception:  # the peer went away; the receive loop ends the socket
            return
