"""Renditions: an artifact version as a file another engine reads by byte range.

An artifact is immutable, so each rendition of it is written once and then
served like a file on an object store. Two formats:

- ``arrow-file``: the Arrow IPC *file* the store keeps anyway
  (``artifacts/<id>/v<n>.arrow``); nothing is written.
- ``parquet``: written on first request beside it (``artifacts/<id>/v<n>.parquet``),
  from the memory-mapped artifact, batch by batch, into a temporary file that is
  renamed into place under the store's lock, only while the version still exists.
  It goes away with the version (:func:`catalog.files.remove_published`), and
  recovery removes one whose version is gone.

Concurrent first requests of one rendition write it once (a lock per version).
For data nodes, :meth:`Renditions.shared` copies a rendition into the part storage
(:mod:`catalog.shared_renditions`), once, the same way.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from catalog.parts import PartStore
from catalog.records import ArtifactInfo
from catalog.shared_renditions import SharedRendition, key_of, stream_span, tail_of
from foundation import ARTIFACT_ID_PATTERN, InvalidArgument, NotFound, Unavailable

RenditionFormat = Literal["parquet", "arrow-file"]
RENDITION_FORMATS: tuple[RenditionFormat, ...] = ("parquet", "arrow-file")
SUFFIXES: dict[str, str] = {"parquet": ".parquet", "arrow-file": ".arrow"}
SERVABLE = ("ready", "superseded")
PARQUET_ROW_GROUP_ROWS = 256 * 1024
"""Rows per Parquet row group: small enough that a reader with a filter or a slice
skips most of a big artifact, big enough that a column chunk is one long read."""


@dataclass(frozen=True, slots=True)
class Rendition:
    """One written rendition: where it is, how big, and its strong ETag."""

    artifact_id: str
    version: int
    format: RenditionFormat
    path: Path
    size: int
    etag: str


def etag_of(info: ArtifactInfo, fmt: str) -> str:
    """A strong ETag: the version, when it was made (a version number freed by a
    delete and taken again gets another tag) and the format."""
    made = int(info.created_at * 1_000_000)
    return f'"{info.artifact_id}.v{info.version}.{made:x}.{fmt}"'


def ipc_stream_span(path: Path, size: int) -> tuple[int, int]:
    """Where the IPC *stream* lies inside the Arrow IPC file at ``path``: ``(offset, length)``
    (:func:`catalog.shared_renditions.stream_span`)."""
    with open(path, "rb") as f:
        f.seek(max(size - 10, 0))
        tail = f.read(10)
    return stream_span(tail, size, path.name)


def check_rendition_format(fmt: str) -> RenditionFormat:
    if fmt not in RENDITION_FORMATS:
        known = ", ".join(RENDITION_FORMATS)
        raise InvalidArgument(f"unknown rendition {fmt!r}; renditions: {known}")
    return fmt  # type: ignore[return-value]


class Store(Protocol):
    """What renditions use of :class:`catalog.store.ArtifactStore`."""

    @property
    def tmp_dir(self) -> Path: ...
    @property
    def owner(self) -> str: ...
    @property
    def lock(self) -> threading.RLock: ...
    @property
    def parts(self) -> PartStore: ...
    def get(self, artifact_id: str, version: int) -> ArtifactInfo: ...
    def path_of(self, artifact_id: str, version: int) -> Path: ...
    def open_file(self, artifact_id: str, version: int) -> pa.ipc.RecordBatchFileReader: ...


class Renditions:
    """Writes and finds the renditions of one store's versions."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._guard = threading.Lock()
        self._writing: dict[object, threading.Lock] = {}
        self._spans: dict[str, tuple[int, int]] = {}  # shared key -> IPC stream (immutable)

    def get(self, artifact_id: str, version: int, fmt: str) -> Rendition:
        """The rendition ``fmt`` of a finished version, written first if need be."""
        checked = check_rendition_format(fmt)
        info = self._servable(artifact_id, version)
        path = self.store.path_of(artifact_id, version).with_suffix(SUFFIXES[checked])
        if checked == "parquet" and not path.exists():
            self._once((artifact_id, version), path.exists, lambda: self._write(info, path))
        elif info.parts and not path.exists():  # a partitioned version: its parts, joined once
            self.store.open_file(artifact_id, version)
        try:
            size = path.stat().st_size
        except FileNotFoundError:  # removed with its version since
            raise NotFound(f"artifact {info.uri} was removed") from None
        return Rendition(artifact_id, version, checked, path, size, etag_of(info, checked))

    def shared(self, artifact_id: str, version: int, fmt: str) -> SharedRendition:
        """The rendition ``fmt`` in the part storage, for data nodes
        (:mod:`catalog.shared_renditions`): this store's rendition, copied there once
        (again when the copy is missing or not of the rendition's size)."""
        checked = check_rendition_format(fmt)
        info = self._servable(artifact_id, version)
        parts = self.store.parts
        key = key_of(artifact_id, version, info.created_at, checked)
        local = self.get(artifact_id, version, checked)  # the bytes the copy must be
        size = local.size
        stream = None
        try:
            # Not there yet, or not the rendition's size (damaged): copied (again).
            self._once(key, lambda: parts.size(key) == size, lambda: self._copy(info, key, local))
            if checked == "arrow-file":
                stream = self._spans.get(key)
                if stream is None:
                    stream = self._spans[key] = stream_span(tail_of(parts, key, size), size, key)
        except (OSError, pa.ArrowException) as exc:
            said = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise Unavailable(
                f"the part storage ({parts.uri}) cannot take the {checked} rendition of "
                f"{info.uri}: {said}"
            ) from None
        etag = etag_of(info, checked)
        return SharedRendition(artifact_id, version, checked, key, size, etag, stream)

    def _copy(self, info: ArtifactInfo, key: str, local: Rendition) -> None:
        parts = self.store.parts
        parts.copy_in(key, local.path)
        try:  # a delete of the version since removed its prefix before this copy landed
            with self.store.lock:
                if self._servable(info.artifact_id, info.version).created_at != info.created_at:
                    raise NotFound(f"artifact {info.uri} was removed")
        except BaseException:
            parts.delete_prefix(key.rpartition("/")[0] + "/")
            raise

    def written(self, artifact_id: str, version: int, fmt: str) -> bool:
        """Whether the rendition is on disk, so that :meth:`get` writes nothing (a stat, no
        index lookup: :meth:`get` still says whether the version may be served)."""
        if fmt not in RENDITION_FORMATS or not re.fullmatch(ARTIFACT_ID_PATTERN, artifact_id):
            return False
        path = self.store.path_of(artifact_id, version).with_suffix(SUFFIXES[fmt])
        return path.exists()

    def _servable(self, artifact_id: str, version: int) -> ArtifactInfo:
        info = self.store.get(artifact_id, version)
        if info.state not in SERVABLE:
            raise InvalidArgument(f"Artifact is not ready (state={info.state})")
        return info

    def _once(self, key: object, done: Callable[[], bool], write: Callable[[], None]) -> None:
        """``write`` unless ``done``, one caller at a time per ``key``: concurrent first
        requests write once."""
        with self._guard:
            lock = self._writing.setdefault(key, threading.Lock())
        try:
            with lock:
                if not done():
                    write()
        finally:
            with self._guard:
                if self._writing.get(key) is lock and not lock.locked():
                    del self._writing[key]

    def _write(self, info: ArtifactInfo, path: Path) -> None:
        # Named as a build's temp file is, so recovery knows when its writer is gone;
        # one writer per version in this process (the lock in _once).
        tmp = self.store.tmp_dir / f"{info.artifact_id}.v{info.version}.{self.store.owner}.parquet"
        try:
            source = self.store.open_file(info.artifact_id, info.version)
            with pq.ParquetWriter(tmp, source.schema) as writer:
                # The mapped table, not copied: the writer cuts row groups across batches.
                writer.write_table(source.read_all(), row_group_size=PARQUET_ROW_GROUP_ROWS)
            with open(tmp, "rb+") as done:
                os.fsync(done.fileno())
            with self.store.lock:  # a delete of the version removes under this lock too
                self._servable(info.artifact_id, info.version)
                os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
