"""Map domain errors to HTTP, once. Statuses come from the error classes."""

from __future__ import annotations

import json
import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.routing import Match

from foundation import Busy, QuiverError

log = logging.getLogger(__name__)


def quiver_error_response(exc: QuiverError) -> JSONResponse:
    """The response of a domain error: its status and ``{"detail": ...}`` (and, for
    :class:`Busy`, ``Retry-After``)."""
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, Busy) else None
    return JSONResponse(
        {
            "detail": exc.detail
            if isinstance(exc.detail, dict) and exc.detail.get("message")
            else exc.message
        },
        status_code=exc.http_status,
        headers=headers,
    )


def unexpected_response(method: str, path: str, exc: BaseException) -> JSONResponse:
    """A 500 with an error id; the traceback goes to the log only."""
    error_id = uuid.uuid4().hex[:12]
    log.error("internal error %s on %s %s", error_id, method, path, exc_info=exc)
    return JSONResponse({"detail": f"internal error (id {error_id})"}, status_code=500)


async def _quiver_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, QuiverError)
    return quiver_error_response(exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    return unexpected_response(request.method, request.url.path, exc)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


async def _invalid_request(request: Request, exc: Exception) -> Response:
    # FastAPI's own 422 echoes each bad input; JSON may carry text that is not
    # Unicode (a lone surrogate such as "\ud800"), which cannot be encoded as
    # UTF-8 and turned the 422 into a 500. ASCII-escaped JSON can hold it.
    assert isinstance(exc, RequestValidationError)
    # A body that is not UTF-8 comes back as bytes in "input": shown with replacements.
    shown = jsonable_encoder(exc.errors(), custom_encoder={bytes: _text})
    body = json.dumps({"detail": shown}, ensure_ascii=True)
    return Response(body, status_code=422, media_type="application/json")


def allowed_methods(request: Request) -> list[str]:
    """The methods of this path, for the ``Allow`` of a 405.

    Starlette's 405 names only the first route's methods, while a path such as
    ``/v1/artifacts`` has a GET route and a PUT route: this takes every route that
    matches the path, and of those the most literal template, as OpenAPI resolves
    a path (``/v1/notebooks/config`` is that route, not ``/v1/notebooks/{session_id}``).
    """
    found: dict[str, set[str]] = {}
    for route in iter_route_contexts(request.app.router.routes):  # included routers' too
        if route.methods and route.matches(request.scope)[0] is not Match.NONE:
            found.setdefault(route.path, set()).update(route.methods)
    if not found:
        return []
    best = max(_literal_segments(path) for path in found)
    return sorted(set().union(*(m for p, m in found.items() if _literal_segments(p) == best)))


def _literal_segments(template: str) -> int:
    return sum(1 for part in template.split("/") if part and "{" not in part)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        exc.headers = {**(exc.headers or {}), "Allow": ", ".join(allowed_methods(request))}
    return await http_exception_handler(request, exc)


def install(app: FastAPI) -> None:
    app.add_exception_handler(QuiverError, _quiver_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _unexpected)
