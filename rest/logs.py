"""The server's recent log records, for the browser client's Logs page (API.md §16).

A :class:`LogRing` is a logging handler keeping the last records in memory,
each with a ``cursor`` (1, 2, …); ``GET /v1/logs?since=`` pages forward from a
cursor, ``GET /v1/logs/stream`` tails them as Server-Sent Events.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import json
import logging
import re
import threading
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from foundation import InvalidArgument
from rest.openapi import content, raises

CAPACITY = 2000
POLL_S = 0.5
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


class LogRing(logging.Handler):
    """The last ``capacity`` log records as JSON-able entries. Thread-safe."""

    def __init__(self, capacity: int = CAPACITY, level: int = logging.INFO) -> None:
        super().__init__(level)
        self._entries: collections.deque[dict[str, Any]] = collections.deque(maxlen=capacity)
        self._cursor = 0
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not break logging
            message = str(record.msg)
        entry: dict[str, Any] = {
            "timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message,
        }
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
        with self._guard:
            self._cursor += 1
            entry["cursor"] = self._cursor
            self._entries.append(entry)

    def read(
        self,
        *,
        since: int = 0,
        level: str | None = None,
        regex: str | None = None,
        limit: int = 200,
    ) -> dict[str, Any]:
        """Entries after cursor ``since`` at ``level`` or above whose message matches
        ``regex``: the newest ``limit``, oldest first; and the latest cursor."""
        floor = _LEVELS.get((level or "").lower(), 0)
        try:
            pattern = re.compile(regex) if regex else None
        except re.error as exc:
            raise InvalidArgument(f"invalid regex: {exc}") from None
        with self._guard:
            entries = list(self._entries)
            latest = self._cursor
        kept = [
            e
            for e in entries
            if e["cursor"] > since
            and _LEVELS.get(e["level"], 0) >= floor
            and (pattern is None or pattern.search(e["message"]))
        ]
        return {"entries": kept[-limit:], "cursor": latest}


def logs_router(ring: LogRing) -> APIRouter:
    router = APIRouter(tags=["ops"])

    @router.get("/v1/logs", responses=raises(InvalidArgument))
    def logs(
        since: Annotated[int, Query(ge=0)] = 0,
        level: str | None = None,
        notebook: str | None = None,
        regex: Annotated[str | None, Query(max_length=1000)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> dict[str, Any]:
        """Recent log entries after ``since``, oldest first; pass ``cursor`` back as
        ``since`` to page forward. (``notebook`` is accepted; entries name none.)"""
        return ring.read(since=since, level=level, regex=regex, limit=limit)

    @router.get(
        "/v1/logs/stream",
        response_model=None,
        response_class=StreamingResponse,
        responses={
            **content("text/event-stream", description="The entries as Server-Sent Events."),
            **raises(InvalidArgument),
        },
    )
    def stream(
        since: Annotated[int, Query(ge=0)] = 0,
        level: str | None = None,
        regex: Annotated[str | None, Query(max_length=1000)] = None,
    ) -> StreamingResponse:
        """The entries as Server-Sent Events (``data: <entry>``), as they come."""
        ring.read(since=0, regex=regex, limit=1)  # a bad regex is a 400, before streaming

        async def events() -> AsyncIterator[str]:
            cursor = since
            while True:
                got = ring.read(since=cursor, level=level, regex=regex, limit=1000)
                for entry in got["entries"]:
                    yield f"data: {json.dumps(entry)}\n\n"
                cursor = got["cursor"]
                await asyncio.sleep(POLL_S)

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    return router
