"""One artifact version being written, and the readers that follow it.

See :mod:`catalog.store` for the guarantees; a :class:`Build` is made by
:meth:`catalog.publish.Publisher.begin_build` and reports to it through the
:class:`Ledger` protocol: it publishes, fails or discards there, and leases the
version for its followers.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from catalog.growing import GrowingFile
from catalog.parts import PartInfo
from catalog.records import ArtifactInfo
from catalog.uris import artifact_uri
from catalog.version_file import VersionFile
from foundation import BuildFailed


class Lease(Protocol):
    def release(self) -> None: ...


class Ledger(Protocol):
    """What a build needs of its store (:class:`catalog.publish.Publisher` is one)."""

    fsync_derived: bool

    def find_ready(self, provenance: str) -> ArtifactInfo | None: ...

    def verify(self, info: ArtifactInfo) -> bool: ...

    def publish(self, build: Build, size: int, provenance: str | None) -> ArtifactInfo:
        """Rename the file into place and mark the row ready (or answer the ready artifact
        that already has ``provenance``; the build's row and file are then gone)."""
        ...

    def discard(self, build: Build) -> None: ...

    def fail(self, build: Build, message: str) -> bool:
        """Mark the row failed; False when it was no longer building."""
        ...

    def lease(self, artifact_id: str, version: int) -> Lease: ...

    def open(self, artifact_id: str, version: int) -> pa.RecordBatchReader: ...

    def publish_parts(
        self,
        build: Build,
        schema: pa.Schema,
        parts: Sequence[PartInfo],
        provenance: str | None,
    ) -> ArtifactInfo:
        """Check the parts, record them and mark the row ready (or answer the ready artifact
        that already has ``provenance``, as :meth:`publish` does)."""
        ...

    def drop_parts(self, prefix: str) -> None: ...


class Build:
    """One artifact version being written. Made by :meth:`ArtifactStore.begin_build`.

    The builder calls :meth:`write` for each batch (the first call fixes the
    schema), then :meth:`publish`, :meth:`fail` or :meth:`discard`. Any number
    of readers may :meth:`follow` it meanwhile: each gets every batch from the
    first, as soon as it is written, and the stream ends when the build does
    (a discarded build ends its followers with :class:`BuildFailed`).

    A build begun with a provisional provenance must be given its provenance
    at :meth:`publish`; with ``hash_content`` it hashes the bytes of its file
    as they are written, and :meth:`seal` returns that digest
    (:class:`ChunkedSha256`) once the file is complete.
    """

    def __init__(
        self,
        ledger: Ledger,
        artifact_id: str,
        version: int,
        tmp_path: Path,
        final_path: Path,
        durable: bool,
        *,
        provisional: bool = False,
        hash_content: bool = False,
    ) -> None:
        self.ledger = ledger
        self.artifact_id = artifact_id
        self.version = version
        self.tmp_path = tmp_path
        self.final_path = final_path
        self.durable = durable
        self.provisional = provisional
        self.deduplicated = False
        self.schema: pa.Schema | None = None
        self.rows = 0
        self.batches = 0
        self.error: BaseException | None = None
        self.info: ArtifactInfo | None = None
        self._cond = threading.Condition()
        self._file = VersionFile(tmp_path, hash_content=hash_content)
        self._written = 0
        self._done = False
        self._schema_known = threading.Event()
        self.parts: list[PartInfo] = []
        self._part_token = uuid.uuid4().hex[:12]
        self._parts_written = False

    @property
    def uri(self) -> str:
        return artifact_uri(self.artifact_id, self.version)

    @property
    def done(self) -> bool:
        return self._done

    @property
    def part_prefix(self) -> str:
        """Where this build's parts go in the part storage, unique to it
        (``<artifact_id>/v<n>-<token>/``). A build whose prefix was asked for deletes what is
        under it when it fails or is discarded."""
        self._parts_written = True
        return f"{self.artifact_id}/v{self.version}-{self._part_token}/"

    # --- writer side -------------------------------------------------------
    def start(self, schema: pa.Schema) -> None:
        """Fix the schema before the first batch (followers learn it at once)."""
        if not self._file.started:
            self.schema = schema
            self._file.start(schema)
            self._schema_known.set()

    def write(self, batch: pa.RecordBatch) -> None:
        if not self._file.started:
            self.start(batch.schema)
        written = self._file.write(batch)
        with self._cond:
            self.rows += batch.num_rows
            self.batches += 1
            self._written = written
            self._cond.notify_all()

    def write_reader(self, reader: pa.RecordBatchReader) -> None:
        self.start(reader.schema)
        for batch in reader:
            if batch.num_rows:
                self.write(batch)

    def seal(self) -> str | None:
        """Complete the file (IPC footer); the :class:`ChunkedSha256` hex of its bytes if hashed.

        The digest covers the whole file as it will be published: magic,
        schema, every batch, footer. Idempotent; :meth:`publish` seals too.
        """
        return self._file.seal()

    def publish(
        self,
        before_notify: Callable[[], None] | None = None,
        *,
        provenance: str | None = None,
    ) -> ArtifactInfo:
        """Close the file, make it visible, mark the row ready; returns its info.

        ``before_notify`` runs after the row is ready and before waiters wake.

        With ``provenance`` (required when the build began with a provisional
        one) the artifact is published under it, unless a ready artifact whose
        file is whole already has it: then this build is discarded, the
        existing artifact is returned and ``deduplicated`` is set. Such a
        publish never supersedes anything.
        """
        if self.provisional and provenance is None:
            raise RuntimeError("a build with a provisional provenance needs publish(provenance=)")
        self.seal()
        if provenance is not None:
            existing = self.ledger.find_ready(provenance)
            if existing is not None and self.ledger.verify(existing):
                return self._deduplicate(existing)  # no fsync, no rename
        if self.durable or self.ledger.fsync_derived:
            self._file.fsync()
        size = self._file.close()
        info = self.ledger.publish(self, size, provenance)
        if info.artifact_id != self.artifact_id or info.version != self.version:
            # Another build published the same provenance first; ours is gone.
            return self._deduplicate(info)
        if before_notify is not None:
            before_notify()
        with self._cond:
            self.info = info
            self._written = size
            self._done = True
            self._cond.notify_all()
        return info

    def publish_parts(
        self,
        schema: pa.Schema,
        parts: Sequence[PartInfo],
        provenance: str | None = None,
        before_notify: Callable[[], None] | None = None,
    ) -> ArtifactInfo:
        """Publish the ordered ``parts`` (written to the part storage under
        :attr:`part_prefix`) instead of a file of this build's own: the parts are checked
        (there, whole, with ``schema``), recorded and the row marked ready in one
        transaction. ``provenance`` and deduplication as in :meth:`publish`. A part that is
        wrong fails the build (its parts deleted) and raises BuildFailed: never a ready
        row whose parts are missing. Not after :meth:`write`."""
        if self._file.started:
            raise RuntimeError("publish_parts() of a build that wrote batches itself")
        if self.provisional and provenance is None:
            raise RuntimeError("a build with a provisional provenance needs provenance=")
        self._close_quietly()
        with contextlib.suppress(FileNotFoundError):
            self.tmp_path.unlink()
        try:
            info = self.ledger.publish_parts(self, schema, parts, provenance)
        except BaseException as exc:
            self.fail(exc)
            raise
        if info.artifact_id != self.artifact_id or info.version != self.version:
            self.deduplicated = True
            with self._cond:
                self.error = BuildFailed(f"build of {self.uri} was deduplicated")
                self._done = True
                self._schema_known.set()
                self._cond.notify_all()
            return info
        if before_notify is not None:
            before_notify()
        with self._cond:
            self.info = info
            self._done = True
            self._cond.notify_all()
        self._schema_known.set()
        return info

    def _drop_parts(self) -> None:
        if self._parts_written:
            with contextlib.suppress(Exception):
                self.ledger.drop_parts(self.part_prefix)

    def _deduplicate(self, existing: ArtifactInfo) -> ArtifactInfo:
        self.discard()
        self.deduplicated = True
        return existing

    def discard(self) -> None:
        """Drop this build: its temp file and its row go, no failure is recorded.

        For a build that is not needed after all (its data already exists) or
        whose upload was cut short. Followers end with :class:`BuildFailed`.
        A build already published or failed is left alone.
        """
        if self._done:
            return
        self._close_quietly()
        self.ledger.discard(self)
        self._drop_parts()
        with self._cond:
            self.error = BuildFailed(f"build of {self.uri} was discarded")
            self._done = True
            self._schema_known.set()
            self._cond.notify_all()

    def _close_quietly(self) -> None:
        self._file.close_quietly()

    def abandon(self, error: BaseException) -> None:
        """End the build now while its writer may still be running in another thread.

        For a writer that does not stop (an executor that ignores its cancel).
        Unlike :meth:`fail` it leaves the writer's file alone, which that thread
        may be using: the row is marked failed and the temporary file unlinked,
        so whatever the writer still writes is never visible and its publish
        finds nothing to publish; followers wake with ``error`` at once. The
        writer's own thread closes its file when it ends.
        """
        if self._done:
            return
        if not self.ledger.fail(self, str(error) or type(error).__name__):
            return  # it published just now: its writer marks it done
        with self._cond:
            self.error = error
            self._done = True
            self._schema_known.set()
            self._cond.notify_all()

    def fail(self, error: BaseException, before_notify: Callable[[], None] | None = None) -> None:
        if self._done:  # abandoned meanwhile: only the file is left to close
            self._close_quietly()
            return
        self._close_quietly()
        message = str(error) or type(error).__name__
        self.ledger.fail(self, message)
        self._drop_parts()
        if before_notify is not None:
            before_notify()
        with self._cond:
            self.error = error
            self._done = True
            self._schema_known.set()
            self._cond.notify_all()

    # --- reader side -------------------------------------------------------
    def wait_schema(self, timeout: float | None = None) -> pa.Schema:
        """Block until the schema is known (or the build failed)."""
        self._schema_known.wait(timeout)
        if self.schema is None:
            self._raise_failure()
        assert self.schema is not None
        return self.schema

    def wait(self, timeout: float | None = None) -> ArtifactInfo:
        """Block until the build ends; its info, or the failure as BuildFailed."""
        with self._cond:
            self._cond.wait_for(lambda: self._done, timeout)
        if self.info is None:
            self._raise_failure()
        assert self.info is not None
        return self.info

    def _raise_failure(self) -> None:
        if self.error is None:
            raise BuildFailed(f"build of {self.uri} did not finish")
        if isinstance(self.error, BuildFailed):
            raise self.error
        raise BuildFailed(
            f"build of {self.uri} failed: {self.error}", detail={"error": str(self.error)}
        ) from None

    def _wait_for(self, offset: int | None) -> None:
        with self._cond:
            if offset is None:
                self._cond.wait_for(lambda: self._done)
            else:
                self._cond.wait_for(lambda: self._done or self._written >= offset)
            if self._done and self.info is None:
                self._raise_failure()

    def follow(self) -> pa.RecordBatchReader:
        """Stream every batch of this build, from the first, as it is written."""
        schema = self.wait_schema()
        if self.parts and self._done and self.info is not None:  # published as parts
            return self.ledger.open(self.artifact_id, self.version)
        with self._cond:
            path = self.final_path if self._done else self.tmp_path
            if self._done and self.info is None:
                self._raise_failure()
            try:
                source = GrowingFile(self._wait_for, path)
            except FileNotFoundError:
                # publish() (or fail()) moved the temp file away but has not
                # marked the build done yet: wait for that, then read the result.
                self._cond.wait_for(lambda: self._done)
                if self.info is None:
                    self._raise_failure()
                source = GrowingFile(self._wait_for, self.final_path)
        lease = self.ledger.lease(self.artifact_id, self.version)

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                with pa.ipc.open_stream(pa.PythonFile(source, mode="r")) as reader:
                    yield from reader
            except (pa.ArrowException, OSError):
                if self.error is not None:
                    self._raise_failure()
                raise
            finally:
                source.close()
                lease.release()

        gen = batches()
        # A follower dropped before its first batch never runs the finally above:
        # close its file when the generator goes (its lease releases itself).
        weakref.finalize(gen, source.close)
        return pa.RecordBatchReader.from_batches(schema, gen)
