"""Who is on a notebook session, on which cell, and who last changed each cell.

Presence is one entry per identity (a socket's user, or the author an edit
names; ``local`` when nobody says). Each socket contributes the cell it last
focused; an edit made without a socket (REST) shows its author on that cell
for :data:`API_PRESENCE_S`, since no disconnect will end it.

Soft locks: the identity that last changed a cell holds it for a short window
(``notebook_cell_lock_s``); another identity's edit inside the window is
refused unless it is forced. An identity never contends with itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

LOCAL = "local"
"""The identity of a client that names none."""
API_PRESENCE_S = 60.0


def identity(*candidates: object) -> str:
    """The first non-empty string of ``candidates`` (trimmed, at most 200 chars), else local."""
    for value in candidates:
        if isinstance(value, str) and value.strip():
            return value.strip()[:200]
    return LOCAL


@dataclass(frozen=True)
class _Seat:
    principal: str
    cell_id: str | None
    since: float  # wall clock, shown
    at: float  # monotonic: which seat is newer, and when an API seat expires


class Presence:
    """The presence and edit-lock tables of one session. Thread-safe."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time
    ) -> None:
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._sockets: dict[Hashable, _Seat] = {}
        self._api: dict[str, _Seat] = {}
        self._editors: dict[str, tuple[str, float]] = {}

    def join(self, key: Hashable, principal: str) -> None:
        with self._lock:
            self._sockets[key] = _Seat(principal, None, self._wall(), self._clock())

    def leave(self, key: Hashable) -> bool:
        with self._lock:
            return self._sockets.pop(key, None) is not None

    def principal_of(self, key: Hashable) -> str | None:
        with self._lock:
            seat = self._sockets.get(key)
        return seat.principal if seat is not None else None

    def focus(self, key: Hashable, principal: str, cell_id: str | None) -> bool:
        """Socket ``key`` is on ``cell_id`` (None: on no cell); whether presence changed."""
        with self._lock:
            seat = self._sockets.get(key)
            if seat is None or (seat.principal, seat.cell_id) == (principal, cell_id):
                return False
            self._sockets[key] = _Seat(principal, cell_id, self._wall(), self._clock())
            return True

    def snapshot(self) -> list[dict[str, object]]:
        """``[{principal, focused_cell_id, since}]``: one per identity, its latest seat."""
        now = self._clock()
        with self._lock:
            for name, seat in list(self._api.items()):
                if now - seat.at >= API_PRESENCE_S:
                    del self._api[name]
            seats = [*self._sockets.values(), *self._api.values()]
        latest: dict[str, _Seat] = {}
        for seat in seats:
            held = latest.get(seat.principal)
            if held is None or seat.at >= held.at:
                latest[seat.principal] = seat
        return [
            {"principal": s.principal, "focused_cell_id": s.cell_id, "since": s.since}
            for s in sorted(latest.values(), key=lambda s: s.principal)
        ]

    def holder(self, cell_id: str, principal: str, window_s: float) -> str | None:
        """Another identity that changed ``cell_id`` less than ``window_s`` ago, if any."""
        with self._lock:
            editor = self._editors.get(cell_id)
        if editor is None or editor[0] == principal or self._clock() - editor[1] >= window_s:
            return None
        return editor[0]

    def last_editor(self, cell_id: str) -> str | None:
        with self._lock:
            editor = self._editors.get(cell_id)
        return editor[0] if editor is not None else None

    def edited(self, cell_id: str, principal: str, *, socket: Hashable | None = None) -> bool:
        """Record an edit of ``cell_id``: the editor holds it, and is shown on it (its
        socket's seat, or an API seat). Whether presence changed."""
        now = self._clock()
        with self._lock:
            self._editors[cell_id] = (principal, now)
            if socket is None:
                self._api[principal] = _Seat(principal, cell_id, self._wall(), now)
                return True
        return self.focus(socket, principal, cell_id)

    def forget(self, cell_id: str) -> None:
        with self._lock:
            self._editors.pop(cell_id, None)
