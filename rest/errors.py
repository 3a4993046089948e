"""Map domain errors to HTTP, once. Statuses come from the error classes."""

from __future__ import annotations

import json
import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

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


async def _invalid_request(request: Request, exc: Exception) -> Response:
    # FastAPI's own 422 echoes each bad input; JSON may carry text that is not
    # Unicode (a lone surrogate such as "\ud800"), which cannot be encoded as
    # UTF-8 and turned the 422 into a 500. ASCII-escaped JSON can hold it.
    assert isinstance(exc, RequestValidationError)
    body = json.dumps({"detail": jsonable_encoder(exc.errors())}, ensure_ascii=True)
    return Response(body, status_code=422, media_type="application/json")


def install(app: FastAPI) -> None:
    app.add_exception_handler(QuiverError, _quiver_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _unexpected)
