"""The OpenAPI document tells the truth, so generated clients work.

Three pieces, so a route states only what is its own:

- :func:`raises` — the domain errors a route can raise, as ``responses=`` of its
  decorator. The status comes from the error class (as it does at run time,
  :mod:`rest.errors`) and the body is the one error model, :class:`ErrorBody`.
- The parameter types below (:data:`ArtifactId`, :data:`Version`, :data:`Name`, ...)
  carry the constraints the domain checks, in the domain's own patterns. The
  domain keeps checking them (its 400 says exactly what is wrong); the document
  only states them, and property tests hold the patterns to the checks.
- :func:`install` completes the document with what every route shares: 500 (an
  error id) everywhere; for a request body, 400 (unparseable) and 413 (over the
  limit); with a token configured, 401 and the bearer scheme on ``/v1``.

The fuzz campaign (``tests/test_fuzz_rest.py``, ``bench/fuzz_rest.py``) fails on
any status, content type or constraint the document does not state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from flight import PROVENANCE_HASH_PATTERN
from foundation import (
    ALIAS_PATTERN,
    ARTIFACT_ID_PATTERN,
    NAME_MAX_CHARS,
    NAME_PATTERN,
    TAG_KEY_PATTERN,
    QuiverError,
)
from rest.middleware import UPLOAD_ROUTE

ARROW_STREAM = "application/vnd.apache.arrow.stream"


class ErrorDetail(BaseModel):
    """A structured detail: ``message`` plus fields that depend on the error."""

    model_config = ConfigDict(extra="allow")

    message: str


class ErrorBody(BaseModel):
    """Every error answer but a 422: ``{"detail": "what went wrong and why"}``."""

    detail: str | ErrorDetail = Field(description="What went wrong, in words.")


STATUS_TEXT: dict[int, str] = {
    400: "Invalid input: the detail says which value and why.",
    401: "No bearer token, or a wrong one (the server has QUIVER_TOKEN set).",
    403: "Not allowed in this deployment mode, or by the file system.",
    404: "The thing named does not exist (or is not visible to the caller).",
    409: "Conflicts with the current state (still building, already exists, busy...).",
    413: "Too large: the request body, or a value in it, is over its limit.",
    500: "An unexpected error; the detail carries an error id to find it in the server log.",
    429: "The AI provider is rate-limiting requests (its own 429); try again later.",
    502: "The AI provider failed or answered something that could not be read.",
    503: "The Flight service is unreachable or shutting down, a feature is not configured, "
    "or the build queue is full (then Retry-After says when to try again).",
    504: "A query ran past the time limit (QUIVER_QUERY_TIME_LIMIT_S), or the AI provider "
    "did not answer in time (QUIVER_AI_TIMEOUT_S).",
}


def _error_content() -> dict[str, Any]:
    """An error answer's body: the one :class:`ErrorBody`, which :func:`install` puts in
    the document's components. A fresh dict each time: documents never share one."""
    return {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}


def _error(status: int) -> dict[str, Any]:
    # A reference, not ``"model": ErrorBody``: FastAPI would build a validator per route and
    # status for a body it never checks (only the document shows it), on every app build.
    return {"description": STATUS_TEXT[status], "content": _error_content()}


def raises(*kinds: type[QuiverError]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that raises these domain errors."""
    return {kind.http_status: _error(kind.http_status) for kind in kinds}


VALIDATION: dict[int | str, dict[str, Any]] = {
    422: {
        "description": "A body or parameter that does not validate (FastAPI's shape).",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
        },
    }
}
"""422 for a route that validates a body it reads itself (FastAPI adds it to the others)."""


def content(*media_types: str, description: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route whose 200 is not JSON; use with ``response_class=Response``."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {200: {"description": description, "content": {m: binary for m in media_types}}}


DATA = content(
    ARROW_STREAM,
    "text/csv",
    "application/vnd.apache.parquet",
    description="The rows, streamed: Arrow IPC (default), CSV or Parquet (`?format=`).",
)


def _caseless(*words: str) -> str:
    """A pattern matching any of ``words`` in any letter case (JSON Schema has no flags),
    or nothing."""
    spelled = ("".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in w) for w in words)
    return f"^(?:{'|'.join(spelled)})?$"


FORMAT_PATTERN = _caseless("arrow", "arrows", "ipc", "csv", "parquet")
"""What ``rest.streaming.check_format`` accepts (in any case; empty means the default)."""

ArtifactId = Annotated[
    str,
    Path(description="An artifact id.", json_schema_extra={"pattern": ARTIFACT_ID_PATTERN}),
]
Version = Annotated[int, Path(description="A version, from 1.", json_schema_extra={"minimum": 1})]
Name = Annotated[
    str,
    Path(
        description="A name; it may contain '/'.",
        json_schema_extra={"pattern": NAME_PATTERN, "maxLength": NAME_MAX_CHARS},
    ),
]
Alias = Annotated[str, Path(description="An alias.", json_schema_extra={"pattern": ALIAS_PATTERN})]
TagKey = Annotated[
    str, Path(description="A tag key.", json_schema_extra={"pattern": TAG_KEY_PATTERN})
]
ProvenanceHash = Annotated[
    str,
    Path(
        description="A provenance key: a sha256 digest, 64 lowercase hex characters.",
        json_schema_extra={"pattern": PROVENANCE_HASH_PATTERN},
    ),
]
DataFormat = Annotated[
    str | None,
    Query(
        description="arrow (default; also ipc, arrows), csv or parquet, in any case.",
        json_schema_extra={"pattern": FORMAT_PATTERN},
    ),
]


def name_field(**kwargs: Any) -> Any:
    """A body field holding a name (:data:`Name`'s constraints, checked by the domain)."""
    return Field(json_schema_extra={"pattern": NAME_PATTERN, "maxLength": NAME_MAX_CHARS}, **kwargs)


def install(
    app: FastAPI, *, bearer: bool = False, body_limits: tuple[int, int] | None = None
) -> None:
    """Complete ``app``'s document (built once, on first use) with the shared statuses;
    ``body_limits`` (request, upload), in bytes, are stated on each request body."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _complete(build(), bearer=bearer, body_limits=body_limits)
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def _state_limit(operation: dict[str, Any], limits: tuple[int, int]) -> None:
    upload = bool(operation.get(UPLOAD_ROUTE))
    setting = "QUIVER_REST_MAX_BODY_BYTES" if upload else "QUIVER_REST_MAX_REQUEST_BYTES"
    limit = limits[1] if upload else limits[0]
    operation["requestBody"]["description"] = (
        f"At most {limit} bytes ({setting}); a bigger body answers 413 before it is read."
    )


def _complete(doc: dict[str, Any], *, bearer: bool, body_limits: tuple[int, int] | None) -> None:
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorBody, ErrorDetail):
        found = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(found.pop("$defs", {}))
        schemas[model.__name__] = found
    if bearer:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    error = _error_content()
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            shared = [500]
            if "requestBody" in operation:
                shared += [400, 413]
                if body_limits is not None:
                    _state_limit(operation, body_limits)
            if bearer and path.startswith("/v1/"):
                shared.append(401)
                operation["security"] = [{"bearer": []}]
            responses = operation.setdefault("responses", {})
            for status in shared:
                responses.setdefault(
                    str(status), {"description": STATUS_TEXT[status], "content": error}
                )
