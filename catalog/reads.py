"""Reading published versions: leases that keep them from gc, and memory-mapped files
(small ones are read into memory instead).

A read takes a lease before it checks its version: gc and eviction plan and
delete under the store's lock and spare leased versions, so between the check
and the open a concurrent gc cannot delete the file. Once mapped (or read), a
file's data stays readable even if its version is deleted later. A damaged file (size or
IPC footer) is marked failed and reported as :class:`CorruptArtifact`, so the
caller rebuilds it instead of serving it.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from catalog.database import Database
from catalog.files import Files
from catalog.index import Index
from catalog.partitioned import Parts, rows_of
from catalog.parts import PartInfo
from catalog.records import ArtifactInfo, CorruptArtifact
from foundation import Conflict, Unavailable

Key = tuple[str, int]

SMALL_FILE_BYTES = 1 << 20
"""A file up to this size is read into memory rather than mapped: for a small answer
(a repeated query's few rows) mapping and unmapping cost more than the read, and
each unmap interrupts the process's other threads to flush their TLBs."""


class ReadLease:
    """Keeps one version from gc and eviction while it is read (:meth:`Leases.take`).

    Released by :meth:`release`, or when it is dropped unreleased: a reader that is
    closed or dropped before its first batch never runs its generator's ``finally``,
    and its lease must not pin the version for the life of the process.
    """

    __slots__ = ("__weakref__", "_release")

    def __init__(self, leases: Leases, key: Key) -> None:
        self._release = weakref.finalize(self, leases.give_back, key)
        self._release.atexit = False

    def release(self) -> None:
        self._release()  # once: a finalizer runs at most once


class Leases:
    """The versions being read, counted; guarded by the store's lock."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._held: Counter[Key] = Counter()

    def take(self, artifact_id: str, version: int) -> ReadLease:
        with self._lock:
            self._held[(artifact_id, version)] += 1
        return ReadLease(self, (artifact_id, version))

    def give_back(self, key: Key) -> None:
        with self._lock:
            self._held[key] -= 1
            if self._held[key] <= 0:
                del self._held[key]

    def count(self, artifact_id: str, version: int) -> int:
        with self._lock:
            return self._held.get((artifact_id, version), 0)

    def held(self) -> set[Key]:
        with self._lock:
            return set(self._held)


class Reads:
    """Opens ready versions for reading, leased and memory-mapped."""

    def __init__(
        self, db: Database, index: Index, files: Files, leases: Leases, parts: Parts
    ) -> None:
        self.db = db
        self.index = index
        self.files = files
        self.leases = leases
        self.parts = parts

    def parts_of(self, artifact_id: str, version: int) -> list[PartInfo]:
        """A version's parts in order; [] for a one-file version."""
        with self.db.reading() as db:
            return rows_of(db, artifact_id, version)

    def intact(self, info: ArtifactInfo) -> bool:
        """Whether a version's file (or every part) is there with its recorded size; no write.

        A part storage that does not answer is :class:`Unavailable`, not a missing part:
        an outage must not fail the versions it holds."""
        if info.parts:
            try:
                return self.parts.whole(self.parts_of(info.artifact_id, info.version))
            except OSError as exc:
                raise Unavailable(
                    f"the part storage does not answer: {str(exc).splitlines()[0]}"
                ) from None
        try:
            path = self.files.path_of(info.artifact_id, info.version)
            return path.stat().st_size == info.byte_size
        except OSError:
            return False

    def _readable(self, artifact_id: str, version: int) -> tuple[ArtifactInfo, Path]:
        info = self.index.get(artifact_id, version)
        return info, self._checked(info)

    def _checked(self, info: ArtifactInfo) -> Path:
        """The file of a version that is ready and whole (else an error); its read noted."""
        artifact_id, version = info.artifact_id, info.version
        if info.state not in ("ready", "superseded"):
            raise Conflict(
                f"artifact {info.uri} is not ready (state={info.state})",
                detail={"state": info.state, "error": info.error},
            )
        path = self.files.path_of(artifact_id, version)
        if info.parts:
            if not self.intact(info):
                self._mark_corrupt(info, "part missing or truncated")
        else:
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                size = -1
            if size != info.byte_size:
                self._mark_corrupt(info, "file missing or truncated")
        self.db.execute(
            "UPDATE artifacts SET last_read_at=? WHERE artifact_id=? AND version=?",
            (time.time(), artifact_id, version),
        )
        return path

    def verify(self, info: ArtifactInfo) -> bool:
        """Cheap check that a ready artifact's file is whole; marks it failed if not."""
        ok = self.intact(info)
        if not ok:
            with contextlib.suppress(CorruptArtifact):
                what = "part" if info.parts else "file"
                self._mark_corrupt(info, f"{what} missing or truncated")
        return ok

    def _mark_corrupt(self, info: ArtifactInfo, why: str) -> None:
        with self.db.tx() as db:
            db.execute(
                "UPDATE artifacts SET state='failed', error=? WHERE artifact_id=? AND version=?",
                (f"integrity check failed: {why}", info.artifact_id, info.version),
            )
        raise CorruptArtifact(f"artifact {info.uri} failed its integrity check ({why})")

    def _open_file(self, info: ArtifactInfo, path: Path) -> pa.ipc.RecordBatchFileReader:
        try:
            if info.byte_size is not None and info.byte_size <= SMALL_FILE_BYTES:
                return pa.ipc.open_file(pa.py_buffer(path.read_bytes()))
            return pa.ipc.open_file(pa.memory_map(str(path), "r"))
        except (pa.ArrowInvalid, OSError) as exc:
            self._mark_corrupt(info, str(exc).splitlines()[0])
            raise  # unreachable: _mark_corrupt raises

    def _open_leased(
        self, artifact_id: str, version: int
    ) -> tuple[pa.ipc.RecordBatchFileReader, ReadLease]:
        """The memory-mapped file of a readable version, and the lease that keeps it."""
        lease = self.leases.take(artifact_id, version)
        try:
            info, path = self._readable(artifact_id, version)
            if info.parts and not path.exists():
                assert info.schema is not None
                self.parts.join(info.schema, self.parts_of(artifact_id, version), path)
            return self._open_file(info, path), lease
        except BaseException:
            lease.release()
            raise

    def open_file(self, artifact_id: str, version: int) -> pa.ipc.RecordBatchFileReader:
        """The memory-mapped IPC file reader of a ready artifact (random access)."""
        file_reader, lease = self._open_leased(artifact_id, version)
        lease.release()  # mapped: a later delete cannot take the data away
        return file_reader

    def read_small(self, artifact_id: str, version: int, max_bytes: int) -> pa.Table | None:
        """A ready one-file version of at most ``max_bytes``, read whole into memory (its
        lease is given back at once); None for a larger or partitioned one, or one whose
        size is not known yet (building)."""
        lease = self.leases.take(artifact_id, version)
        try:
            info = self.index.get(artifact_id, version)
            # Decided before the checks: a partitioned version's check asks its part
            # storage, which the streaming read (the caller's next step) does again.
            if info.parts or info.byte_size is None or info.byte_size > max_bytes:
                return None
            return self._open_file(info, self._checked(info)).read_all()
        finally:
            lease.release()

    def lease(self, artifact_id: str, version: int) -> ReadLease:
        """The lease :meth:`open` holds, with the same checks and the read noted, but no
        batch reader opened: for a reader of a file kept beside the version (a rendition)."""
        lease = self.leases.take(artifact_id, version)
        try:
            self._readable(artifact_id, version)
        except BaseException:
            lease.release()
            raise
        return lease

    def open(
        self, artifact_id: str, version: int, *, start: int = 0, stop: int | None = None
    ) -> pa.RecordBatchReader:
        """Stream batches ``[start, stop)`` of a ready artifact, memory-mapped, zero-copy
        (a partitioned one: its parts' batches in order, counted across the parts).

        The artifact is leased (never evicted) until the reader is exhausted or
        closed.
        """
        lease = self.leases.take(artifact_id, version)
        try:
            info, path = self._readable(artifact_id, version)
            if info.parts:
                assert info.schema is not None
                parts = self.parts_of(artifact_id, version)
                chained = self.parts.chain(info.schema, parts, start, stop)
                return pa.RecordBatchReader.from_batches(info.schema, _leased(chained, lease))
            file_reader = self._open_file(info, path)
        except BaseException:
            lease.release()
            raise
        n = file_reader.num_record_batches
        stop = n if stop is None else min(stop, n)
        batches = (file_reader.get_batch(i) for i in range(start, stop))
        return pa.RecordBatchReader.from_batches(file_reader.schema, _leased(batches, lease))

    def open_table(self, artifact_id: str, version: int) -> pa.Table:
        """The whole artifact as a table backed by the memory map (no copy); a partitioned
        one backed by its parts' maps when they are local."""
        reader = self.open(artifact_id, version)
        return pa.Table.from_batches(list(reader), schema=reader.schema)


def _leased(batches: Iterator[pa.RecordBatch], lease: ReadLease) -> Iterator[pa.RecordBatch]:
    try:
        yield from batches
    finally:
        lease.release()
