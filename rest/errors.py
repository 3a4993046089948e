"""Map domain errors to HTTP, once. Statuses come from the error classes."""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from quiver.errors import QuiverError

log = logging.getLogger(__name__)


def quiver_error_response(exc: QuiverError) -> JSONResponse:
    """The response of a domain error: its status and ``{"detail": ...}``."""
    return JSONResponse(
        {
            "detail": exc.detail
            if isinstance(exc.detail, dict) and exc.detail.get("message")
            else exc.message
        },
        status_code=exc.http_status,
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


def install(app: FastAPI) -> None:
    app.add_exception_handler(QuiverError, _quiver_error)
    app.add_exception_handler(Exception, _unexpected)
