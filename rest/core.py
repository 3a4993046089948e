"""The core data routes (API.md §12) over a Flight client: materialize, streams, artifacts.

Thin by design: validate, run one Flight action (or DoGet/DoPut), shape the
JSON the Strata protocol and strata-client 0.11 expect. Nothing here opens an
artifact file or the store. docs/rest.md documents every route.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal, TypeVar

import pyarrow as pa
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from catalog.uris import ARTIFACT_ID_PATTERN
from flight.client import LocalActions, QuiverClient
from flight.protocol import MAX_COMMAND_BYTES, check_command_size
from flight.uploads import BLOB_COLUMN, BLOB_MARKER, check_provenance_hash
from quiver.errors import (
    BuildFailed,
    Busy,
    Conflict,
    InvalidArgument,
    NotFound,
    QuiverError,
    TooLarge,
    Unavailable,
)
from quiver.materialize import MaterializeRequest, Transform
from rest import errors
from rest.middleware import UPLOAD_ROUTE, ASGIApp, Message, Metrics, Receive, Scope, Send
from rest.openapi import (
    DATA,
    VALIDATION,
    ArtifactId,
    DataFormat,
    Name,
    ProvenanceHash,
    Version,
    name_field,
    raises,
)
from rest.streaming import ARROW_STREAM, StreamingResponse, check_format, stream_response

ARTIFACT_URI_HEADER = "X-Strata-Artifact-Uri"
ROW_COUNT_HEADER = "X-Arrow-Row-Count"
PROVENANCE_MISS_HEADER = "X-Strata-Provenance-Miss"
"""Set on the 404 of ``GET /v1/artifacts/by-provenance/{hash}`` when nothing has that
provenance: strata-client reads only such a 404 as "no" (any other 404 raises)."""
MAX_PAGE = 10_000
"""Most artifacts one ``GET /v1/artifacts`` lists; a bigger ``limit`` is capped to it."""
MAX_LINEAGE_DEPTH = 100
"""Deepest lineage walk; a bigger ``max_depth`` is capped to it."""
MAX_BLOB_BYTES = 2**31 - 64
"""The largest value ``PUT /v1/artifacts/by-provenance`` takes: the value is one row, sent
to Flight as one record batch, and Flight sends no batch over 2 GiB. (The request body
limit, ``QUIVER_REST_MAX_BODY_BYTES``, may be set higher.)"""


def json_response(body: Any, status_code: int = 200) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")).encode(),
        status_code=status_code,
        media_type="application/json",
    )


class FlightLink:
    """The REST side of the Flight connection: actions and DoGets with REST errors."""

    def __init__(self, client: QuiverClient, *, in_process: bool = True) -> None:
        self.client = client
        self._actions = LocalActions(client, enabled=in_process)

    def _unreachable(self, exc: Unavailable) -> Unavailable:
        if isinstance(exc, Busy):  # the server answered: it is at capacity
            return exc
        return Unavailable(
            f"the Flight server at {self.client.location} is unavailable: {exc.message}",
            detail=exc.detail,
        )

    def act(self, name: str, body: dict[str, Any] | None = None) -> Any:
        try:
            return self._actions.action(name, body or {})
        except Unavailable as exc:
            raise self._unreachable(exc) from None

    def act_raw(self, name: str, raw: bytes) -> Any:
        """:meth:`act` on a body already JSON-encoded."""
        try:
            return self._actions.action_raw(name, raw)
        except Unavailable as exc:
            raise self._unreachable(exc) from None

    def put(self, data: pa.Table | pa.RecordBatchReader, **kwargs: Any) -> dict[str, Any]:
        """:meth:`QuiverClient.put` (a DoPut), with an unreachable server as a 503."""
        try:
            return self.client.put(data, **kwargs)
        except Unavailable as exc:
            raise self._unreachable(exc) from None

    def cached_hit(self, request: MaterializeRequest) -> dict[str, Any] | None:
        """A cache hit answered in-process without blocking, or None (then :meth:`act_raw`)."""
        return self._actions.cached_hit(request)

    def stream(
        self,
        uri: str,
        fmt: str | None,
        *,
        filename: str,
        headers: dict[str, str],
    ) -> StreamingResponse:
        checked = check_format(fmt)
        local = self._actions.open_ready(uri)
        if local is not None:  # the producer thread closes it when the response ends
            return stream_response(local, checked, filename=filename, headers=headers)
        try:
            flight_stream = self.client.open_stream(uri)
        except Unavailable as exc:
            raise self._unreachable(exc) from None
        return stream_response(
            flight_stream.reader(),
            checked,
            filename=filename,
            headers=headers,
            on_close=flight_stream.cancel,
        )


class NameBody(BaseModel):
    name: str = name_field()
    artifact_id: str = Field(json_schema_extra={"pattern": ARTIFACT_ID_PATTERN})
    version: int = Field(json_schema_extra={"minimum": 1})


class ExplainBody(BaseModel):
    inputs: list[str]
    transform: Transform
    name: str | None = name_field(default=None)


class UploadMetadata(BaseModel):
    """The ``metadata`` part of ``PUT /v1/artifacts`` (strata-client's ``put``)."""

    model_config = ConfigDict(extra="allow")

    inputs: list[str] = []
    transform: dict[str, Any] | None = None
    name: str | None = name_field(default=None)


class JsonUpload(UploadMetadata):
    """A JSON upload: the metadata fields plus ``data`` (columns, or any JSON document)."""

    data: Any


class BlobMetadata(BaseModel):
    """The ``metadata`` part of ``PUT /v1/artifacts/by-provenance/{hash}``."""

    content_type: str = Field(min_length=1, max_length=1000, pattern=r"\S")
    variable_name: str | None = Field(default=None, max_length=1000)


def _multipart_body(metadata: type[BaseModel], data: str, *others: dict[str, Any]) -> Any:
    """``openapi_extra`` of a route that reads its body itself: multipart ``metadata``
    (JSON, as ``metadata``) and ``data`` (bytes of media type ``data``), or ``others``."""
    parts = {
        "type": "object",
        "required": ["metadata", "data"],
        "properties": {
            "metadata": metadata.model_json_schema(),
            "data": {"type": "string", "format": "binary", "contentMediaType": data},
        },
    }
    encoding = {"data": {"contentType": data}}  # an object part is JSON
    content = {"multipart/form-data": {"schema": parts, "encoding": encoding}}
    for other in others:
        content.update(other)
    return {"requestBody": {"required": True, "content": content}, UPLOAD_ROUTE: True}


UPLOAD_BODY = _multipart_body(
    UploadMetadata,
    ARROW_STREAM,
    {"application/json": {"schema": JsonUpload.model_json_schema()}},
)
BLOB_BODY = _multipart_body(BlobMetadata, "application/octet-stream")


def blob_table(blob: bytes, content_type: str) -> pa.Table:
    """An opaque value as the one-row table the store keeps: column ``blob`` (large_binary,
    the bytes as given, not copied) and ``content_type`` in the schema metadata."""
    offsets = pa.array([0, len(blob)], pa.int64()).buffers()[1]
    column = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), 1, [None, offsets, pa.py_buffer(blob)]
    )
    schema = pa.schema(
        [pa.field(BLOB_COLUMN, pa.large_binary(), nullable=False)],
        metadata={BLOB_MARKER: b"1", b"content_type": content_type.encode()},
    )
    return pa.Table.from_arrays([column], schema=schema)


def provenance_found_json(found: dict[str, Any]) -> dict[str, Any]:
    """``GET /v1/artifacts/by-provenance/{hash}`` from the Flight ``by-provenance`` answer."""
    body = {k: found[k] for k in _PROVENANCE_KEYS}
    body["data_url"] = data_url(found["artifact_id"], found["version"])
    return body


_PROVENANCE_KEYS = (
    *("artifact_id", "version", "artifact_uri", "provenance_hash", "content_type"),
    *("variable_name", "state", "byte_size", "row_count", "blob", "blob_bytes", "kind"),
    *("schema", "created_at", "finished_at"),
)


def _is_blob(status: dict[str, Any]) -> bool:
    """Whether a ``status`` answer describes a value put by provenance (one ``blob`` column)."""
    schema = status.get("schema") or []
    meta = status.get("metadata") or {}
    return [f["name"] for f in schema] == [BLOB_COLUMN] and "provenance_hash" in meta


MetaT = TypeVar("MetaT", bound=BaseModel)


@contextlib.asynccontextmanager
async def _multipart(request: Request, model: type[MetaT]) -> AsyncIterator[tuple[BinaryIO, MetaT]]:
    """A multipart upload's ``data`` file and its ``metadata`` part validated as ``model``
    (422 naming what is missing or wrong); the form's files are closed afterwards."""
    form = await request.form(max_files=4, max_fields=16)
    try:
        _missing_parts(form)
        data = form["data"]
        assert not isinstance(data, str)
        try:
            meta = model.model_validate_json(await _text_part(form["metadata"]))
        except ValidationError as exc:
            raise _validation_error(exc, "metadata") from None
        yield data.file, meta
    finally:
        await form.close()


def _missing_parts(form: Any, parts: tuple[str, ...] = ("metadata", "data")) -> None:
    """422 (FastAPI's shape) naming each missing part; ``data`` must be a file part."""
    missing = [
        part
        for part in parts
        if form.get(part) is None or (part == "data" and isinstance(form.get(part), str))
    ]
    if missing:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body", part), "msg": "Field required", "input": None}
             for part in missing]
        )  # fmt: skip


async def _text_part(part: Any) -> str:
    """A text part; one sent as a file is read only if it is no bigger than a Flight
    command (it becomes the DoPut command's metadata), so it is never read whole, decoded
    and parsed on the event loop at any size."""
    if isinstance(part, str):
        return part  # a field: the form parser caps it
    size = part.size if part.size is not None else part.file.seek(0, os.SEEK_END)
    if size > MAX_COMMAND_BYTES:
        raise TooLarge(
            f"the metadata part is {size} bytes; the limit is {MAX_COMMAND_BYTES}",
            detail={"bytes": size, "limit": MAX_COMMAND_BYTES},
        )
    await part.seek(0)
    return (await part.read()).decode("utf-8", "replace")


def stored_json(answer: dict[str, Any]) -> dict[str, Any]:
    """What every upload route answers about the stored artifact, from the DoPut answer."""
    return {
        "artifact_uri": answer["artifact_uri"],
        "artifact_id": answer["artifact_id"],
        "version": answer["version"],
        "hit": answer["deduplicated"],
        "byte_size": answer["byte_size"],
    }


def data_url(artifact_id: str, version: int) -> str:
    return f"/v1/artifacts/{artifact_id}/v/{version}/data"


def materialize_json(answer: dict[str, Any], mode: str) -> dict[str, Any]:
    """The §12.1 response from the Flight ``materialize`` answer."""
    stream = mode == "stream"
    body: dict[str, Any] = {
        "hit": answer["hit"],
        "artifact_uri": answer["artifact_uri"],
        "state": answer["state"],
        "build_spec": None,
        "build_id": None,
        "stream_id": None,
        "stream_url": None,
    }
    if answer["state"] == "building":
        if stream:
            body["stream_id"] = answer["stream_id"]
            body["stream_url"] = f"/v1/streams/{answer['stream_id']}"
        else:
            body["state"] = "pending"
            body["build_id"] = answer["build_id"]
    elif stream:
        body["stream_url"] = data_url(answer["artifact_id"], answer["version"])
    return body


def info_json(status: dict[str, Any]) -> dict[str, Any]:
    """``GET /v1/artifacts/{id}/v/{n}`` (§12.3, with the 0.11 additions)."""
    return {
        "artifact_id": status["artifact_id"],
        "version": status["version"],
        "artifact_uri": status["artifact_uri"],
        "state": status["state"],
        "arrow_schema": status.get("arrow_schema"),
        "schema": status["schema"],
        "row_count": status["row_count"],
        "byte_size": status["byte_size"],
        "created_at": status["created_at"],
        "finished_at": status["finished_at"],
        "provenance_hash": status["provenance_hash"],
        "transform_spec": json.dumps({"executor": status["executor"], "params": status["params"]}),
        "input_versions": json.dumps(status.get("input_versions", {})),
        "kind": status["kind"],
        "build_id": status["build_id"],
        "error_message": status["error"],
    }


def _table_from_json(data: Any) -> pa.Table:
    """strata-client's encoding: equal-length list values are columns, anything else a blob."""
    columns = isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values())
    if columns and len({len(v) for v in data.values()}) == 1:
        try:
            table = pa.Table.from_pydict(data)
            return table.replace_schema_metadata({b"strata.json.blob": b"0"})
        except (pa.ArrowException, TypeError, ValueError):
            pass
    table = pa.Table.from_pydict({"data": [json.dumps(data)]})
    return table.replace_schema_metadata({b"strata.json.blob": b"1"})


def _validation_error(exc: ValidationError, where: str) -> RequestValidationError:
    return RequestValidationError(
        [{**e, "loc": ("body", where, *e["loc"])} for e in exc.errors(include_url=False)]
    )


async def materialize_response(
    link: FlightLink, metrics: Metrics, body: MaterializeRequest
) -> Response:
    """``POST /v1/materialize`` once the body is valid: one Flight action, shaped for §12.1."""
    # The action blocks (a miss starts its executor in the caller's thread): one hop
    # to a worker thread, unless the server in this process can answer a hit from
    # memory (the hop is a fifth of the hit's latency). The body goes as JSON
    # bytes; the server validates it again.
    answer = link.cached_hit(body)  # a hit the server beside us answers from memory
    if answer is None:
        raw = body.model_dump_json(exclude_defaults=True).encode()
        answer = await run_in_threadpool(link.act_raw, "materialize", raw)
    metrics.record_materialize(answer["hit"])
    return json_response(materialize_json(answer, body.mode))


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


def core_router(link: FlightLink, metrics: Metrics) -> APIRouter:
    """The ``/v1/materialize``, ``/v1/streams``, ``/v1/artifacts`` and ``/v1/names`` routes."""
    router = APIRouter(tags=["core"], responses=raises(Unavailable))
    found = raises(InvalidArgument, NotFound)
    act = link.act

    # --- materialize & streams -------------------------------------------------
    @router.post(
        "/v1/materialize",
        response_model=None,
        responses=raises(InvalidArgument, NotFound, Conflict),
    )
    async def materialize(body: MaterializeRequest) -> Response:
        """Find or build an artifact (§12.1); a miss in stream mode answers a stream_url."""
        return await materialize_response(link, metrics, body)

    @router.get(
        "/v1/streams/{stream_id}",
        response_class=Response,
        responses={**DATA, **raises(InvalidArgument, NotFound, BuildFailed)},
    )
    def stream(stream_id: str, format: DataFormat = None) -> Response:
        """The result of a build as it is written (Arrow IPC by default)."""
        check_format(format)
        try:
            build = act("build-status", {"build_id": stream_id})
        except NotFound:
            raise NotFound(f"Stream {stream_id} not found") from None
        if build["state"] == "failed":
            raise BuildFailed(
                f"build {stream_id} failed: {build['error_message']}",
                detail={"error": "scan_build_failed", "detail": build["error_message"]},
            )
        headers = {ARTIFACT_URI_HEADER: build["artifact_uri"]}
        if build["state"] in ("ready", "superseded") and build["row_count"] is not None:
            headers[ROW_COUNT_HEADER] = str(build["row_count"])
        return link.stream(
            build["artifact_uri"], format, filename=build["artifact_id"], headers=headers
        )

    # --- artifacts -----------------------------------------------------------------
    @router.get("/v1/artifacts", response_model=None)
    def list_artifacts(
        since: float | None = None,
        sort: Literal["created_at", "byte_size", "row_count", "last_read_at"] = "created_at",
        order: Literal["asc", "desc"] = "desc",
        limit: int = Query(100, ge=1),
        offset: int = Query(0, ge=0),
        state: Literal["building", "ready", "failed", "superseded"] | None = None,
        name_prefix: str | None = None,
    ) -> Response:
        # strata-client sends any limit: a page is at most MAX_PAGE; the answer's limit says so
        body = {"sort": sort, "order": order, "limit": min(limit, MAX_PAGE), "offset": offset}
        extra = {"since": since, "state": state, "name_prefix": name_prefix}
        body.update({k: v for k, v in extra.items() if v is not None})
        answer = act("list", body)
        answer["artifacts"] = [info_json(a) | {"names": a["names"]} for a in answer["artifacts"]]
        return json_response(answer)

    @router.get("/v1/artifacts/stats", response_model=None)
    def stats() -> Response:
        return json_response(act("stats"))

    @router.get("/v1/artifacts/usage", response_model=None)
    def usage() -> Response:
        """Stored bytes and versions, and how much gc could collect (strata-client's
        ``get_artifact_usage``)."""
        return json_response(act("usage"))

    @router.post(
        "/v1/artifacts/builds/{build_id}/cancel", response_model=None, responses=raises(NotFound)
    )
    @router.post("/v1/builds/{build_id}/cancel", response_model=None, include_in_schema=False)
    def cancel_build(
        build_id: str, wait_seconds: float = Query(5.0, ge=0, le=60, allow_inf_nan=False)
    ) -> Response:
        """Stop a running build; its version ends ``failed`` and nothing is published."""
        return json_response(act("cancel", {"build_id": build_id, "wait_seconds": wait_seconds}))

    @router.get("/v1/artifacts/builds/{build_id}", response_model=None, responses=raises(NotFound))
    @router.get("/v1/builds/{build_id}", response_model=None, include_in_schema=False)
    def build_status(build_id: str) -> Response:
        return json_response(act("build-status", {"build_id": build_id}))

    @router.put(
        "/v1/artifacts",
        response_model=None,
        responses={**raises(InvalidArgument, NotFound, Conflict, TooLarge), **VALIDATION},
        openapi_extra=UPLOAD_BODY,
    )
    async def upload(request: Request) -> Response:
        """Upload a result: multipart ``metadata`` (JSON) + ``data`` (Arrow IPC), or JSON."""
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            async with _multipart(request, UploadMetadata) as (data, meta):
                return await run_in_threadpool(_put_ipc, data, meta)
        if ctype.startswith("application/json"):
            # Parsing a large JSON body and building its table would hold the event
            # loop for as long: they run on a worker thread like the store write.
            return await run_in_threadpool(_put_json, await request.body())
        raise InvalidArgument(
            "PUT /v1/artifacts takes multipart/form-data (metadata + data) or application/json"
        )

    def _put_json(raw: bytes) -> Response:
        try:
            upload = JsonUpload.model_validate_json(raw)
        except ValidationError as exc:  # located in the body, as FastAPI's own 422s are
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
            ) from None
        return _put(_table_from_json(upload.data), upload)

    def _put_ipc(file: Any, meta: UploadMetadata) -> Response:
        try:
            reader = pa.ipc.open_stream(pa.PythonFile(file, mode="r"))
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidArgument(f"data is not an Arrow IPC stream: {exc}") from None
        return _put(reader, meta)

    def _put(data: pa.Table | pa.RecordBatchReader, meta: UploadMetadata) -> Response:
        metadata = meta.model_dump(exclude={"name", "data"}, exclude_none=True)
        try:
            answer = link.put(data, name=meta.name, metadata=metadata)
        except pa.ArrowInvalid as exc:
            raise InvalidArgument(f"data is not a valid Arrow IPC stream: {exc}") from None
        return json_response(stored_json(answer) | {"name_uri": answer["name_uri"]})

    # --- by provenance ---------------------------------------------------------------
    @router.get(
        "/v1/artifacts/by-provenance/{provenance_hash}", response_model=None, responses=found
    )
    def find_by_provenance(provenance_hash: ProvenanceHash) -> Response:
        """The ready artifact with this provenance (strata-client's ``find_by_provenance``);
        a miss is a 404 with ``X-Strata-Provenance-Miss``."""
        check_provenance_hash(provenance_hash)
        try:
            found = act("by-provenance", {"provenance_hash": provenance_hash})
        except NotFound as exc:
            if not (isinstance(exc.detail, dict) and exc.detail.get("miss")):
                raise
            response = json_response({"detail": exc.message}, 404)
            response.headers[PROVENANCE_MISS_HEADER] = "true"
            return response
        return json_response(provenance_found_json(found))

    @router.put(
        "/v1/artifacts/by-provenance/{provenance_hash}",
        response_model=None,
        responses={**raises(InvalidArgument, Conflict, TooLarge), **VALIDATION},
        openapi_extra=BLOB_BODY,
    )
    async def put_by_provenance(provenance_hash: ProvenanceHash, request: Request) -> Response:
        """Store an opaque value under a provenance key the client computed
        (strata-client's ``put_by_provenance``); the first writer wins."""
        check_provenance_hash(provenance_hash)
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise InvalidArgument(
                "PUT /v1/artifacts/by-provenance/{hash} takes multipart/form-data: a metadata "
                "part (JSON {content_type, variable_name?}) and a data part (the bytes)"
            )
        async with _multipart(request, BlobMetadata) as (data, meta):
            return await run_in_threadpool(_put_blob, provenance_hash, meta, data)

    def _put_blob(key: str, meta: BlobMetadata, file: Any) -> Response:
        size = file.seek(0, os.SEEK_END)  # the part is spooled: measured before it is read
        file.seek(0)
        if size > MAX_BLOB_BYTES:
            raise TooLarge(
                f"the value is {size} bytes; a value put by provenance is at most "
                f"{MAX_BLOB_BYTES} bytes (it is stored as one row, and Flight sends a row "
                "as one message of at most 2 GiB)",
                detail={"bytes": size, "limit": MAX_BLOB_BYTES},
            )
        blob = file.read()
        metadata: dict[str, Any] = {
            "provenance_hash": key,
            "content_type": meta.content_type,
            "blob_bytes": len(blob),
        }
        if meta.variable_name:
            metadata["variable_name"] = meta.variable_name
        answer = link.put(blob_table(blob, meta.content_type), metadata=metadata)
        stored = answer.get("metadata") or {}
        keyed = stored.get("provenance_hash") == key  # else a server-computed incumbent
        return json_response(
            stored_json(answer)
            | {"blob_bytes": stored.get("blob_bytes") if keyed else None, "provenance_hash": key}
        )

    # --- caches ------------------------------------------------------------------------
    @router.post("/v1/cache/clear", response_model=None)
    def clear_cache() -> Response:
        """Drop the server's in-memory caches (strata-client's ``clear_cache``). Artifacts
        are versioned results, not a disk cache: none is deleted (gc does that)."""
        return json_response(act("cache-clear"))

    @router.post(
        "/v1/artifacts/explain-materialize",
        response_model=None,
        responses=raises(InvalidArgument, NotFound, Conflict),
    )
    def explain(body: ExplainBody) -> Response:
        """Would this materialize hit? And is the named result stale?"""
        answer = act("explain", {"inputs": body.inputs, "transform": body.transform.model_dump()})
        out = {
            "cache_hit": answer["would_hit"],
            "artifact_uri": answer["artifact_uri"],
            "provenance_hash": answer["provenance_hash"],
            "building": answer["building"],
            "input_versions": answer["input_versions"],
            "execution": "cache" if answer["would_hit"] else "server",
            "is_stale": False,
            "stale_reason": None,
            "changed_inputs": [],
        }
        if body.name is not None:
            try:
                status = act("name-status", {"name": body.name})
            except NotFound:
                status = None
            if status is not None:
                out["is_stale"] = status["is_stale"]
                out["stale_reason"] = status["stale_reason"]
                out["changed_inputs"] = status["changed_inputs"]
        return json_response(out)

    @router.post("/v1/artifacts/gc", response_model=None)
    def gc(
        max_idle_days: float | None = Query(None, ge=0, allow_inf_nan=False),
        max_bytes: int | None = Query(None, ge=0),
        min_idle_seconds: float | None = Query(None, ge=0, allow_inf_nan=False),
        collect_latest: bool = False,
        dry_run: bool = False,
    ) -> Response:
        """Collect the versions nothing needs, least recently used first (strata-client's
        ``garbage_collect``); omitted limits take the configured retention."""
        limits = {
            "max_idle_days": max_idle_days,
            "max_bytes": max_bytes,
            "min_idle_seconds": min_idle_seconds,
        }
        body: dict[str, Any] = {k: v for k, v in limits.items() if v is not None}
        body |= {"collect_latest": collect_latest, "dry_run": dry_run}
        return json_response(act("gc", body))

    @router.get("/v1/artifacts/names/{name:path}/status", response_model=None, responses=found)
    def name_status(name: Name) -> Response:
        """Is the artifact a name points at stale (an input has a newer version)?"""
        return json_response(act("name-status", {"name": name}))

    @router.get("/v1/artifacts/{artifact_id}/v/{version}", response_model=None, responses=found)
    def artifact(artifact_id: ArtifactId, version: Version) -> Response:
        status = act("status", {"artifact_id": artifact_id, "version": version})
        return json_response(info_json(status))

    @router.get(
        "/v1/artifacts/{artifact_id}/v/{version}/data",
        response_class=Response,
        responses={**DATA, **raises(InvalidArgument, NotFound, BuildFailed)},
    )
    def artifact_data(
        artifact_id: ArtifactId, version: Version, format: DataFormat = None
    ) -> Response:
        """The artifact's rows, streamed: Arrow IPC (default), ``?format=csv|parquet``."""
        check_format(format)
        status = act("status", {"artifact_id": artifact_id, "version": version})
        if status["state"] not in ("ready", "superseded"):
            raise InvalidArgument(f"Artifact is not ready (state={status['state']})")
        if format is not None and format.lower() == "csv" and _is_blob(status):
            raise InvalidArgument(
                f"{status['artifact_uri']} is an opaque value put by provenance "
                f"(content_type {status['metadata'].get('content_type')!r}): CSV cannot carry "
                "its bytes; read it as Arrow IPC (the default) or ?format=parquet"
            )
        headers = {
            ARTIFACT_URI_HEADER: status["artifact_uri"],
            ROW_COUNT_HEADER: str(status["row_count"]),
        }
        return link.stream(
            status["artifact_uri"], format, filename=f"{artifact_id}-v{version}", headers=headers
        )

    @router.get(
        "/v1/artifacts/{artifact_id}/v/{version}/lineage", response_model=None, responses=found
    )
    def lineage(
        artifact_id: ArtifactId, version: Version, max_depth: int = Query(10, ge=1)
    ) -> Response:
        """The lineage graph; a deeper walk than MAX_LINEAGE_DEPTH is capped (nodes say depth)."""
        depth = min(max_depth, MAX_LINEAGE_DEPTH)
        body = {"artifact_id": artifact_id, "version": version, "max_depth": depth}
        return json_response(act("lineage-graph", body))

    @router.get(
        "/v1/artifacts/{artifact_id}/v/{version}/dependents", response_model=None, responses=found
    )
    def dependents(
        artifact_id: ArtifactId, version: Version, limit: int = Query(100, ge=1)
    ) -> Response:
        body = {"artifact_id": artifact_id, "version": version, "limit": limit}
        return json_response(act("dependents", body))

    @router.delete(
        "/v1/artifacts/{artifact_id}/v/{version}",
        response_model=None,
        responses=raises(InvalidArgument, NotFound, Conflict),
    )
    def delete(artifact_id: ArtifactId, version: Version) -> Response:
        answer = act("delete", {"artifact_id": artifact_id, "version": version})
        return json_response(answer | {"artifact_id": artifact_id, "version": version})

    # --- names -----------------------------------------------------------------------
    @router.post(
        "/v1/names", response_model=None, responses=raises(InvalidArgument, NotFound, Conflict)
    )
    def set_name(body: NameBody) -> Response:
        answer = act(
            "name-set",
            {"name": body.name, "artifact_id": body.artifact_id, "version": body.version},
        )
        keys = ("name", "name_uri", "artifact_uri")
        return json_response({k: answer[k] for k in keys})

    @router.get("/v1/names", response_model=None)
    def list_names(prefix: str | None = None) -> Response:
        answer = act("name-list", {"prefix": prefix} if prefix else {})
        return json_response(answer)

    @router.get("/v1/names/{name:path}", response_model=None, responses=found)
    def get_name(name: Name) -> Response:
        return json_response(act("name-get", {"name": name}))

    @router.delete("/v1/names/{name:path}", response_model=None, responses=found)
    def delete_name(name: Name) -> Response:
        return json_response(act("name-delete", {"name": name}))

    return router
