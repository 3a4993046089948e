"""Artifact renditions served like files on an object store (docs/rest.md, "Renditions").

``GET``/``HEAD /v1/artifacts/{id}/v/{n}/data.parquet`` (also ``/data?format=parquet``)
and ``/data.arrow`` (the Arrow IPC *file*) answer with ``Content-Length``, a strong
``ETag``, ``Accept-Ranges: bytes`` and ``Cache-Control: immutable`` (an artifact
version never changes); ``Range`` gives 206 (one range; several are answered
whole, as RFC 9110 allows), an unsatisfiable or malformed one 416 with a detail;
``If-None-Match`` gives 304, ``If-Range`` with another tag the whole file. The
bytes come from the Flight service (:mod:`flight.renditions`); this module only
speaks HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from flight import LocalActions
from foundation import InvalidArgument, NotFound, QuiverError, Unavailable
from rest.errors import quiver_error_response
from rest.openapi import ArtifactId, Version, content, raises
from rest.streaming import ARROW_STREAM, ReadAheadResponse

MEDIA_TYPES: dict[str, str] = {
    "parquet": "application/vnd.apache.parquet",
    "arrow-file": "application/vnd.apache.arrow.file",
}
IMMUTABLE = "public, max-age=31536000, immutable"
PARTIAL: dict[int | str, dict[str, Any]] = {
    206: {"description": "The byte range asked for (`Range: bytes=a-b`)."},
    304: {"description": "The client's copy is current (`If-None-Match`)."},
}
FILE = {**content(*MEDIA_TYPES.values(), description="The whole file."), **PARTIAL}
RANGE_ERRORS: dict[int | str, dict[str, Any]] = {
    416: {
        "description": "The Range is outside the file or not a byte range; "
        "`Content-Range: bytes */size` gives the size."
    }
}
_RANGE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


class RangeNotSatisfiable(QuiverError):
    """416: the ``Range`` asked for is outside the file, or not a byte range at all."""

    code = "range_not_satisfiable"
    http_status = 416

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message, detail={"message": message, "size": size})
        self.size = size


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one range ``[start, end)`` a ``Range`` header asks of a ``size``-byte file;
    None for the whole file (no header, another unit, several ranges)."""
    if header is None:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes":
        return None
    if "," in spec:
        return None
    match = _RANGE.match(spec)
    if match is None or match.group(1) == match.group(2) == "":
        raise RangeNotSatisfiable(f"Range {header!r} is not a byte range (bytes=a-b)", size)
    first, last = match.group(1), match.group(2)
    if first == "":  # the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise RangeNotSatisfiable(f"Range {header!r} asks for no bytes", size)
        return max(0, size - n), size
    start = int(first)
    end = size if last == "" else min(size, int(last) + 1)
    if last != "" and int(last) < start:
        raise RangeNotSatisfiable(f"Range {header!r} ends before it starts", size)
    if start >= size:
        raise RangeNotSatisfiable(
            f"Range {header!r} starts at or past the end of the {size}-byte file", size
        )
    return start, end


def _tag_matches(header: str | None, etag: str) -> bool:
    if header is None:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


class RenditionResponder:
    """Builds the responses of renditions for one Flight link's actions."""

    CHUNK_DEPTH: ClassVar[int] = 8

    def __init__(self, actions: LocalActions) -> None:
        self.actions = actions

    async def respond_async(
        self,
        method: str,
        headers: Mapping[str, str],
        artifact_id: str,
        version: int,
        fmt: str,
        *,
        filename: str,
    ) -> Response:
        """:meth:`respond` on the event loop when the rendition is on disk beside a server
        in this process (a few index lookups and a mapped view: no thread hop, which an
        engine's footer request waits on before it asks for the rest); in a worker thread
        when it must be written first or the bytes come over gRPC."""
        if self.actions.renditions.written(artifact_id, version, fmt):
            return self.respond(method, headers, artifact_id, version, fmt, filename=filename)
        return await run_in_threadpool(
            self.respond, method, headers, artifact_id, version, fmt, filename=filename
        )

    def respond(
        self,
        method: str,
        headers: Mapping[str, str],
        artifact_id: str,
        version: int,
        fmt: str,
        *,
        filename: str,
    ) -> Response:
        renditions = self.actions.renditions
        found: dict[str, Any] = renditions.describe(artifact_id, version, fmt)
        size, etag = int(found["size"]), str(found["etag"])
        out = {
            "ETag": etag,
            "Accept-Ranges": "bytes",
            "Cache-Control": IMMUTABLE,
            "Content-Disposition": f'attachment; filename="{filename}"',
        }
        if _tag_matches(headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=out)
        wanted = headers.get("range")
        if_range = headers.get("if-range")
        if if_range is not None and if_range.strip() != etag:
            wanted = None  # the file changed for the client: the whole of it
        try:
            span = byte_range(wanted, size)
        except RangeNotSatisfiable as exc:
            refused = quiver_error_response(exc)
            refused.headers["Content-Range"] = f"bytes */{size}"
            return refused
        start, end = span if span is not None else (0, size)
        out["Content-Length"] = str(end - start)
        status = 200
        if span is not None:
            status = 206
            out["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        media_type = MEDIA_TYPES[fmt]
        if method == "HEAD" or end == start:
            return Response(status_code=status, headers=out, media_type=media_type)
        chunks = renditions.read(artifact_id, version, fmt, start, end - start)
        if renditions.local:  # views of a mapped file: sent from the event loop as they are
            return MappedResponse(chunks, status_code=status, media_type=media_type, headers=out)
        response = ReadAheadResponse(
            chunks, media_type=media_type, headers=out, depth=self.CHUNK_DEPTH
        )
        response.status_code = status
        return response

    def ipc_stream(
        self, artifact_id: str, version: int, headers: Mapping[str, str]
    ) -> ReadAheadResponse:
        """The artifact as an Arrow IPC stream: the stream inside its stored IPC file,
        forwarded as the Flight service sends it (raw results), never decoded and
        re-encoded. The read holds the version's lease; a client that leaves ends it."""
        renditions = self.actions.renditions
        found = renditions.describe(artifact_id, version, "arrow-file")
        start, length = int(found["stream_offset"]), int(found["stream_length"])
        chunks = renditions.read(artifact_id, version, "arrow-file", start, length)
        return ReadAheadResponse(
            chunks,
            media_type=ARROW_STREAM,
            headers={**headers, "Content-Length": str(length)},
            depth=self.CHUNK_DEPTH,
        )


class MappedResponse(Response):
    """A body of views of a memory-mapped file, sent one by one without a thread hop."""

    def __init__(
        self,
        chunks: Iterator[memoryview | bytes],
        *,
        status_code: int,
        media_type: str,
        headers: Mapping[str, str],
    ) -> None:
        super().__init__(status_code=status_code, media_type=media_type, headers=dict(headers))
        self._chunks = chunks

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        for chunk in self._chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def rendition_router(responder: RenditionResponder) -> APIRouter:
    """``/v1/artifacts/{id}/v/{n}/data.parquet`` and ``/data.arrow``, GET and HEAD."""
    router = APIRouter(tags=["core"], responses=raises(Unavailable))
    found = {**FILE, **raises(InvalidArgument, NotFound), **RANGE_ERRORS}

    def route(suffix: str, fmt: str, doc: str) -> None:
        async def rendition(
            request: Request, artifact_id: ArtifactId, version: Version
        ) -> Response:
            return await responder.respond_async(
                request.method,
                request.headers,
                artifact_id,
                version,
                fmt,
                filename=f"{artifact_id}-v{version}.{suffix}",
            )

        path = f"/v1/artifacts/{{artifact_id}}/v/{{version}}/data.{suffix}"
        for method in ("GET", "HEAD"):
            router.add_api_route(
                path,
                rendition,
                methods=[method],
                response_class=Response,
                responses=found,
                name=f"artifact_data_{suffix}",
                operation_id=f"artifact_data_{suffix}_{method.lower()}",
                description=doc,
            )

    route("parquet", "parquet", "The artifact as a Parquet file, written once, read by range.")
    route("arrow", "arrow-file", "The artifact as an Arrow IPC file, read by range.")
    return router
