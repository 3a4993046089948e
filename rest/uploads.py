"""Uploads: ``PUT /v1/artifacts`` (multipart or JSON) and values put and found by
provenance (``/v1/artifacts/by-provenance/{hash}``), strata-client's ``put``,
``put_by_provenance`` and ``find_by_provenance``.

Every body is read on a worker thread or spooled by the form parser; the store write
is a Flight ``DoPut`` (:meth:`FlightLink.put`). These routes are marked as uploads
(``UPLOAD_ROUTE``): their bodies may reach ``QUIVER_REST_MAX_BODY_BYTES``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from typing import Any, BinaryIO, TypeVar

import pyarrow as pa
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flight import BLOB_COLUMN, BLOB_MARKER, MAX_COMMAND_BYTES, check_provenance_hash
from foundation import Conflict, InvalidArgument, NotFound, TooLarge, Unavailable
from rest.link import FlightLink, data_url, json_response
from rest.middleware import UPLOAD_ROUTE
from rest.openapi import VALIDATION, ProvenanceHash, name_field, raises
from rest.streaming import ARROW_STREAM

PROVENANCE_MISS_HEADER = "X-Strata-Provenance-Miss"
"""Set on the 404 of ``GET /v1/artifacts/by-provenance/{hash}`` when nothing has that
provenance: strata-client reads only such a 404 as "no" (any other 404 raises)."""
MAX_BLOB_BYTES = 2**31 - 64
"""The largest value ``PUT /v1/artifacts/by-provenance`` takes: the value is one row, sent
to Flight as one record batch, and Flight sends no batch over 2 GiB. (The request body
limit, ``QUIVER_REST_MAX_BODY_BYTES``, may be set higher.)"""


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


def upload_router(link: FlightLink) -> APIRouter:
    """``PUT /v1/artifacts`` and the ``/v1/artifacts/by-provenance/{hash}`` routes."""
    router = APIRouter(tags=["core"], responses=raises(Unavailable))
    found = raises(InvalidArgument, NotFound)
    act = link.act

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

    return router
