"""Renditions on a data node: the head says where, the node reads the bytes.

A data node answers the two rendition actions (:mod:`flight.renditions`) so that a
rendition URL can point at any node (``quiver rest --flight grpc://<node>``):

- ``rendition``: the node asks its head (``"shared": true``); the head, the one
  writer, puts its rendition into the part storage once
  (:mod:`catalog.shared_renditions`) and answers its key, size, ETag and, for the
  Arrow IPC file, where its IPC stream lies. The node hands that answer on.
- ``rendition-read``: the node asks its head the same (so a version deleted
  meanwhile is a ``not_found`` at once, and the head's metadata is the only truth),
  checks the stored size against the head's, and reads the byte range itself from
  the part storage, as raw results of at most :data:`flight.renditions.CHUNK_BYTES`.

A copy missing or not of the head's size when the node looks is asked for again (the
head copies it again, or answers ``not_found``: its version went meanwhile); still
missing, it is ``unavailable`` (the node does not read the storage its head writes to),
as is a storage that does not answer. Nothing is sent before these checks; a read that
fails midway ends with a clean Flight error, never as a shorter stream.
:class:`Served` counts what the node sent, for ``node-status``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.flight as fl

from catalog import PartStore, artifact_uri
from flight.errors import guarded_iter, one_line
from flight.protocol import load_json, parse_model
from flight.renditions import CHUNK_BYTES, READ, RangeArg, RenditionArg, span_of
from foundation import Unavailable

Ask = Callable[[str, dict[str, Any]], Any]
"""Runs an action on the head and answers its decoded JSON."""


class Served:
    """What a node sent of renditions: reads and bytes. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reads = 0
        self.bytes = 0

    def add(self, n: int) -> None:
        with self._lock:
            self.bytes += n

    def started(self) -> None:
        with self._lock:
            self.reads += 1

    def json(self) -> dict[str, int]:
        with self._lock:
            return {"rendition_reads": self.reads, "rendition_bytes": self.bytes}


class NodeRenditions:
    """The rendition actions of a data node over its head (``ask``) and the part storage."""

    def __init__(self, parts: PartStore, ask: Ask) -> None:
        self.parts = parts
        self.ask = ask
        self.served = Served()

    def describe(self, raw: bytes) -> dict[str, Any]:
        """``rendition``: the head's answer about its copy in the part storage."""
        body = load_json(raw, "body of action 'rendition'")
        arg = parse_model(RenditionArg, body, "rendition request")
        return self._shared(arg)

    def _shared(self, arg: RenditionArg) -> dict[str, Any]:
        fields = arg.model_dump(exclude_none=True, include=set(RenditionArg.model_fields))
        answer: dict[str, Any] = self.ask("rendition", {**fields, "shared": True})
        return answer

    def read(self, raw: bytes) -> Iterator[fl.Result]:
        """``rendition-read``: the range's bytes, read here from the part storage."""
        arg = parse_model(RangeArg, load_json(raw, f"body of action {READ!r}"), READ)
        found = self._shared(arg)
        size, key = int(found["size"]), str(found["key"])
        start, end = span_of(arg, size)
        uri = artifact_uri(found["artifact_id"], found["version"])
        what = f"the {found['format']} rendition of {uri}"
        try:
            stored = self.parts.size(key)
            if stored != size:  # changed since the head answered: it is asked again
                self._shared(arg)  # its version went: the head's not_found; else copied again
                stored = self.parts.size(key)
            if stored is None:
                raise Unavailable(
                    f"{what} is not in the part storage this node reads ({self.parts.uri}), "
                    "though its head wrote it there: is that storage shared with the head?"
                )
            if stored != size:
                raise Unavailable(f"{what} cannot be read: {stored} bytes stored, {size} expected")
            pieces = self.parts.read_range(key, start, end, CHUNK_BYTES)
        except (OSError, pa.ArrowException) as exc:
            raise Unavailable(f"{what} cannot be read: {one_line(str(exc))}") from None
        self.served.started()
        return guarded_iter(self._results(pieces, what))

    def _results(self, pieces: Iterator[pa.Buffer], what: str) -> Iterator[fl.Result]:
        try:
            for piece in pieces:
                self.served.add(piece.size)
                yield fl.Result(piece)
        except (OSError, pa.ArrowException) as exc:
            raise Unavailable(f"{what} cannot be read: {one_line(str(exc))}") from None
