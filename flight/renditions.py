"""Renditions over Flight: an artifact version as a file, read by byte range.

``rendition`` (a JSON action) writes the rendition once if need be and answers
its size and strong ETag. ``rendition-read`` answers the bytes of one range as
a series of raw results (not JSON), at most :data:`CHUNK_BYTES` each, read from
the file as they are sent. A file removed with its version after it was opened
stays readable until the read ends (it is immutable; the open handle keeps it).

:class:`RenditionReader` is what a caller uses: the REST app beside the server
reads the file in-process, any other goes over gRPC.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.flight as fl
from pydantic import Field

from catalog import ReadLease, Rendition, SharedRendition, ipc_stream_span
from flight.args import ArtifactArg
from flight.core import Core
from flight.dispatch import action
from flight.errors import from_flight_error, guarded_iter, to_flight_error
from flight.protocol import encode_json, load_json, parse_model
from foundation import InvalidArgument, NotFound, Unavailable

CHUNK_BYTES = 1 << 20
"""Most bytes in one result of ``rendition-read`` (and one piece handed to a socket)."""
MAPPED_CHUNK_BYTES = 1 << 20
"""Bytes in one view of a mapped read (one piece handed to the socket)."""
READ = "rendition-read"


class RenditionArg(ArtifactArg):
    format: str = "parquet"
    shared: bool = False
    """Asked by a data node: the copy in the part storage (its ``key`` is answered)."""


class RangeArg(RenditionArg):
    offset: int = Field(default=0, ge=0)
    length: int | None = Field(default=None, ge=0)


def rendition_json(found: Rendition | SharedRendition) -> dict[str, Any]:
    """What ``rendition`` answers; for the Arrow IPC file also where its IPC stream
    lies (``stream_offset``, ``stream_length``): a stream read raw, never decoded. For
    a data node (``"shared": true``) also the ``key`` of the copy in the part storage."""
    body: dict[str, Any] = {
        "artifact_id": found.artifact_id,
        "version": found.version,
        "format": found.format,
        "size": found.size,
        "etag": found.etag,
    }
    if isinstance(found, SharedRendition):
        body["key"] = found.key
        stream = found.stream
    else:
        stream = ipc_stream_span(found.path, found.size) if found.format == "arrow-file" else None
    if stream is not None:
        body["stream_offset"], body["stream_length"] = stream
    return body


def span_of(arg: RangeArg, size: int) -> tuple[int, int]:
    """The ``[start, end)`` a range request asks of a ``size``-byte rendition."""
    if arg.offset > size or (arg.offset == size and size > 0):
        raise InvalidArgument(
            f"offset {arg.offset} is past the end of the {size}-byte rendition",
            detail={"offset": arg.offset, "size": size},
        )
    return arg.offset, size if arg.length is None else min(size, arg.offset + arg.length)


def _rendition(core: Core, body: Any, what: str, model: type[RenditionArg]) -> Any:
    arg = parse_model(model, body, what)
    return arg, _found(core, arg, shared=False)


def _found(core: Core, arg: RenditionArg, *, shared: bool) -> Rendition | SharedRendition:
    """The rendition ``arg`` asks for (its copy in the part storage when ``shared``), the
    version's use noted."""
    aid, version = arg.resolve(core)
    renditions = core.store.renditions
    found = (renditions.shared if shared else renditions.get)(aid, version, arg.format)
    core.store.note_use(aid, version)
    return found


@action(
    "rendition",
    "Write once and describe a file rendition of an artifact version "
    '({"artifact_uri"} or {"artifact_id", "version"}, "format": "parquet" | "arrow-file"): '
    'its size and strong ETag; with "shared": true (a data node asks) the copy in the part '
    'storage, and its "key".',
)
def _describe(core: Core, body: Any) -> Any:
    arg = parse_model(RenditionArg, body, "rendition request")
    return rendition_json(_found(core, arg, shared=arg.shared))


@action(
    READ,
    'The bytes of a file rendition: the rendition request with an "offset" and a '
    '"length"; answered as raw results (not JSON), up to 1 MiB each.',
)
def _read_listed(core: Core, body: Any) -> Any:
    # Listed with the actions; DoAction answers it (do_read), never as one JSON answer.
    raise InvalidArgument(f"{READ!r} answers raw bytes: call it with DoAction")


def read_range(core: Core, raw: bytes, *, mapped: bool = False) -> Iterator[memoryview | bytes]:
    """The bytes ``rendition-read`` sends for its raw JSON body, in chunks.

    Checks the request and opens the file before the first chunk is asked for,
    so a bad request fails the call itself. ``mapped`` (a caller in this process):
    views of the memory-mapped file, no copy and no read call per chunk.
    """
    arg, found = _rendition(core, load_json(raw, f"body of action {READ!r}"), READ, RangeArg)
    _, end = span_of(arg, found.size)
    # Leased while read, as a DoGet is: gc and eviction leave a version being read.
    # A bare lease: opening the artifact's batch reader for it cost ~2 ms a request.
    lease = core.store.lease(found.artifact_id, found.version)
    try:
        try:
            fd = os.open(found.path, os.O_RDONLY)
        except FileNotFoundError:  # removed with its version before the lease was taken
            raise NotFound(f"artifact {found.artifact_id} v{found.version} was removed") from None
        if not mapped:
            return Held(_chunks(fd, arg.offset, end), lease, fd)
        try:  # the file is immutable: its pages are handed out as views, never copied
            view = memoryview(mmap.mmap(fd, 0, access=mmap.ACCESS_READ))
        finally:
            os.close(fd)
    except BaseException:
        lease.release()
        raise
    step = MAPPED_CHUNK_BYTES
    return Held((view[i : min(end, i + step)] for i in range(arg.offset, end, step)), lease)


class Held(Iterator[Any]):
    """Chunks that hold the version's read lease until they end or are closed."""

    def __init__(self, chunks: Iterator[Any], lease: ReadLease, fd: int | None = None) -> None:
        self._chunks = chunks
        self._lease: ReadLease | None = lease
        self._fd = fd

    def __next__(self) -> Any:
        try:
            return next(self._chunks)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            if self._fd is not None:
                os.close(self._fd)
            lease.release()

    def __del__(self) -> None:
        self.close()


def _chunks(fd: int, start: int, end: int) -> Iterator[bytes]:
    offset = start
    while offset < end:
        chunk = os.pread(fd, min(CHUNK_BYTES, end - offset), offset)
        if not chunk:
            raise Unavailable("the rendition file ended early")
        offset += len(chunk)
        yield chunk


def do_read(core: Core, raw: bytes) -> Iterator[fl.Result]:
    """``DoAction`` of ``rendition-read``: raw results, errors as clean Flight errors."""
    try:
        chunks = read_range(core, raw)
    except Exception as exc:
        raise to_flight_error(exc) from None
    return guarded_iter(fl.Result(pa.py_buffer(chunk)) for chunk in chunks)


class ActionClient(Protocol):
    """What a reader uses of :class:`flight.client.QuiverClient`."""

    def action(self, name: str, body: dict[str, Any] | None = None) -> Any: ...
    def raw_action(self, name: str, raw: bytes) -> Iterator[Any]: ...


class RenditionReader:
    """Renditions for a caller: in-process beside the server, else over gRPC."""

    def __init__(self, client: ActionClient, local: Any) -> None:
        self.client = client
        self._local = local  # () -> Core | None

    @property
    def local(self) -> bool:
        """Whether reads are views of a file in this process (cheap: no thread needed)."""
        return self._local() is not None

    def written(self, artifact_id: str, version: int, fmt: str) -> bool:
        """Whether the rendition is on disk beside a server in this process, so describing
        and reading it is cheap (False over gRPC: not known here)."""
        core = self._local()
        return core is not None and core.store.renditions.written(artifact_id, version, fmt)

    def describe(self, artifact_id: str, version: int, fmt: str) -> dict[str, Any]:
        body = {"artifact_id": artifact_id, "version": version, "format": fmt}
        core = self._local()
        if core is None:
            return self.client.action("rendition", body)
        try:
            return _describe(core, body)
        except Exception as exc:
            raise from_flight_error(to_flight_error(exc)) from None

    def read(
        self, artifact_id: str, version: int, fmt: str, offset: int, length: int
    ) -> Iterator[memoryview | bytes]:
        """The ``length`` bytes at ``offset``; errors before the first byte as QuiverErrors."""
        raw = encode_json(
            {
                "artifact_id": artifact_id,
                "version": version,
                "format": fmt,
                "offset": offset,
                "length": length,
            }
        )
        core = self._local()
        try:
            if core is not None:
                return read_range(core, raw, mapped=True)
            results = self.client.raw_action(READ, raw)
        except fl.FlightError as exc:
            raise from_flight_error(exc) from None
        except Exception as exc:
            raise from_flight_error(to_flight_error(exc)) from None
        return _bodies(results)


def _bodies(results: Iterator[Any]) -> Iterator[memoryview]:
    # Each result's body is a pyarrow Buffer: handed on as a view, not copied.
    try:
        for result in results:
            yield memoryview(result.body)
    except fl.FlightError as exc:
        raise from_flight_error(exc) from None
