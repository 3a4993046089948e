"""The hottest routes answered before FastAPI's routing: ``POST /v1/materialize`` and
``GET``/``HEAD`` of an artifact's file renditions (``data.parquet``, ``data.arrow``).

A cache hit takes well under a millisecond in the server; FastAPI's layers
(routing, body parsing, dependency solving, exception middleware) cost about as
much again. :class:`MaterializeFastPath` runs the same :func:`materialize_response`
on a body ``MaterializeRequest`` accepts and maps errors with the app's own
handlers; anything else goes to the FastAPI app unchanged (the body replayed), so
422s, OpenAPI and docs stay FastAPI's. :class:`RenditionFastPath` does the same for
the renditions, which an engine reading by URL asks for several times per file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.datastructures import Headers

from flight import MaterializeRequest, check_command_size
from foundation import QuiverError
from rest import errors
from rest.core import materialize_response
from rest.link import FlightLink
from rest.metrics import Metrics
from rest.middleware import ASGIApp, Message, Receive, Scope, Send
from rest.renditions import RenditionResponder


@dataclass(frozen=True, slots=True)
class _Route:
    """What the metrics middleware reads of a matched route."""

    path: str


def _is_json(scope: Scope) -> bool:
    for key, value in scope.get("headers", ()):
        if key == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"application/json"
    return False


class MaterializeFastPath:
    """``POST /v1/materialize`` answered before FastAPI's routing and dependency machinery.

    The hottest route: FastAPI's layers (routing, body parsing, dependency
    solving, exception middleware) cost about as much as the cache hit itself.
    This runs the same :func:`materialize_response` on a body that
    ``MaterializeRequest`` accepts, and maps errors with the app's own handlers
    (:mod:`rest.errors`). Anything else — another route, another content type,
    a body that does not validate — goes to the FastAPI app unchanged (the body
    replayed), so 422s, OpenAPI and docs stay FastAPI's. Sits inside the
    request-id, metrics, auth and body-limit middleware.
    """

    ROUTE = _Route("/v1/materialize")

    def __init__(self, app: ASGIApp, link: FlightLink, metrics: Metrics) -> None:
        self.app = app
        self.link = link
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != "/v1/materialize"
            or scope["method"] != "POST"
            or not _is_json(scope)
        ):
            await self.app(scope, receive, send)
            return
        scope["route"] = self.ROUTE
        try:
            raw = await _read_command(scope, receive)
            if raw is None:  # the client left
                return
            body = await _validated(raw)
        except QuiverError as exc:
            await errors.quiver_error_response(exc)(scope, receive, send)
            return
        if body is None:
            await self.app(scope, _replay(raw, receive), send)
            return
        response: Response
        try:
            response = await materialize_response(self.link, self.metrics, body)
        except QuiverError as exc:
            response = errors.quiver_error_response(exc)
        except Exception as exc:
            response = errors.unexpected_response("POST", scope["path"], exc)
        await response(scope, receive, send)


WHAT = "body of action 'materialize'"
INLINE_PARSE_BYTES = 64 * 1024
"""A materialize body up to this size is validated on the event loop (a cache hit's body
is a few hundred bytes, and a thread hop costs more than parsing it); a bigger one on a
worker thread, so a large body never holds the loop."""


async def _read_command(scope: Scope, receive: Receive) -> bytes | None:
    """The whole body, or None if the client left. A body Flight would refuse (over
    ``MAX_COMMAND_BYTES``) is refused as it would be, before it is read whole."""
    declared = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), None)
    if declared is not None and declared.isdigit():
        check_command_size(int(declared), WHAT)
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        check_command_size(size, WHAT)
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


async def _validated(raw: bytes) -> MaterializeRequest | None:
    """``raw`` as a request, or None when it does not validate (FastAPI then answers)."""

    def validate() -> MaterializeRequest | None:
        try:
            return MaterializeRequest.model_validate_json(raw)
        except ValidationError:
            return None

    if len(raw) <= INLINE_PARSE_BYTES:
        return validate()
    return await run_in_threadpool(validate)


def _replay(raw: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands out ``raw`` as the whole body, then defers to ``receive``."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": raw, "more_body": False}

    return replay


_RENDITION = re.compile(r"^/v1/artifacts/([^/]+)/v/([0-9]{1,18})/data\.(parquet|arrow)$")
"""The rendition routes' paths (a version FastAPI would refuse, e.g. too long, goes on to it)."""
_FORMATS = {"parquet": "parquet", "arrow": "arrow-file"}


class RenditionFastPath:
    """``GET``/``HEAD`` of ``/v1/artifacts/{id}/v/{n}/data.parquet`` and ``data.arrow``
    answered before FastAPI's routing and dependency machinery.

    An engine reading by URL asks for the footer first and waits for it, then for the
    row groups in parallel: five requests for one file, each paying FastAPI's layers
    (more server CPU than the lookups of the rendition itself). The same
    :meth:`RenditionResponder.respond_async` the route calls, with the same error
    mapping; the FastAPI routes stay for OpenAPI and any other method.
    """

    ROUTES: ClassVar[dict[str, _Route]] = {
        suffix: _Route(f"/v1/artifacts/{{artifact_id}}/v/{{version}}/data.{suffix}")
        for suffix in _FORMATS
    }

    def __init__(self, app: ASGIApp, responder: RenditionResponder) -> None:
        self.app = app
        self.responder = responder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = None
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            found = _RENDITION.match(scope["path"])
        if found is None:
            await self.app(scope, receive, send)
            return
        artifact_id, version, suffix = found.group(1), int(found.group(2)), found.group(3)
        scope["route"] = self.ROUTES[suffix]
        response: Response
        try:
            response = await self.responder.respond_async(
                scope["method"],
                Headers(scope=scope),
                artifact_id,
                version,
                _FORMATS[suffix],
                filename=f"{artifact_id}-v{version}.{suffix}",
            )
        except QuiverError as exc:
            response = errors.quiver_error_response(exc)
        except Exception as exc:
            response = errors.unexpected_response(scope["method"], scope["path"], exc)
        await response(scope, receive, send)
