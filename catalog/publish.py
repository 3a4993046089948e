"""Builds: reserve a version, write its file, publish it (or fail or discard it).

Publishing is write-to-temp, (fsync), rename, then one transaction marks the
row ``ready``. A build whose provenance is known only once its data is written
(an upload, content-addressed) starts with a *provisional* provenance
(``begin_build(provenance=None)``), may hash the file it writes
(``hash_content=True``: :meth:`Build.seal` returns the :class:`ChunkedSha256`
of the file's bytes, computed on other cores while the file is written) and
names its provenance at :meth:`Build.publish` time. That publish is also the
deduplication point: if a ready artifact (whose file is whole) already has the
provenance, the new build is discarded — its temp file and row removed, no
failure recorded — and the existing artifact is returned (``build.deduplicated``).
The check and the ``ready`` mark are one transaction, so two identical builds
publishing at the same moment end as one artifact, never as two ready rows and
never as an error.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from catalog.build import Build
from catalog.collect import Collector
from catalog.database import Database, delete_version
from catalog.files import Files, fsync_dir, remove_published
from catalog.index import Index
from catalog.partitioned import Parts, record, rows_of
from catalog.parts import PartInfo
from catalog.reads import Leases, ReadLease, Reads
from catalog.records import PROVISIONAL_PREFIX, ArtifactInfo, InputVersion
from foundation import BuildFailed

_ENDED = ("", 0)
"""What ``_mark_ready`` answers for a build that was failed before it could publish."""


class Publisher:
    """Begins builds and settles them: the :class:`~catalog.build.Ledger` of each build."""

    def __init__(
        self,
        db: Database,
        index: Index,
        files: Files,
        reads: Reads,
        leases: Leases,
        collector: Collector,
        owner: str,
        parts: Parts,
        *,
        fsync_derived: bool = False,
    ) -> None:
        self.db = db
        self.index = index
        self.files = files
        self.reads = reads
        self.leases = leases
        self.collector = collector
        self.owner = owner
        self.parts = parts
        self.fsync_derived = fsync_derived

    # --- what a build asks of its store ----------------------------------------
    def find_ready(self, provenance: str) -> ArtifactInfo | None:
        return self.index.find_ready(provenance)

    def verify(self, info: ArtifactInfo) -> bool:
        return self.reads.verify(info)

    def lease(self, artifact_id: str, version: int) -> ReadLease:
        return self.leases.take(artifact_id, version)

    def open(self, artifact_id: str, version: int) -> pa.RecordBatchReader:
        return self.reads.open(artifact_id, version)

    def drop_parts(self, prefix: str) -> None:
        self.parts.store.delete_prefix(prefix)

    # --- builds ----------------------------------------------------------------
    def begin_build(
        self,
        *,
        provenance: str | None,
        executor: str | None,
        params: Any,
        inputs: Sequence[InputVersion],
        artifact_id: str | None = None,
        kind: str = "derived",
        metadata: dict[str, Any] | None = None,
        hash_content: bool = False,
    ) -> Build:
        """Reserve the next version (a new id unless ``artifact_id``) in state ``building``.

        ``kind="upload"`` makes the build durable: fsynced before it is published.
        ``provenance=None`` reserves it under a provisional provenance
        (``pending:<uuid>``, never shared); the build then gets its real one at
        ``publish(provenance=...)``. ``hash_content`` makes the build hash its
        file as it writes it (:meth:`Build.seal`).
        """
        artifact_id = artifact_id or uuid.uuid4().hex
        provisional = provenance is None
        if provenance is None:
            provenance = f"{PROVISIONAL_PREFIX}{uuid.uuid4().hex}"
        now = time.time()
        with self.db.tx() as db:
            row = db.execute(
                "SELECT MAX(version) FROM artifacts WHERE artifact_id=?", (artifact_id,)
            ).fetchone()
            version = (row[0] or 0) + 1
            db.execute(
                "INSERT INTO artifacts (artifact_id, version, provenance, state, kind, executor, "
                "params, created_at, build_pid, build_owner, metadata) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    artifact_id,
                    version,
                    provenance,
                    "building",
                    kind,
                    executor,
                    json.dumps(params, sort_keys=True),
                    now,
                    os.getpid(),
                    self.owner,
                    json.dumps(metadata or {}, sort_keys=True),
                ),
            )
            db.executemany(
                "INSERT INTO artifact_inputs VALUES (?,?,?,?,?,?,?)",
                [
                    (
                        artifact_id,
                        version,
                        i,
                        inp.uri,
                        inp.version,
                        inp.artifact_id,
                        inp.artifact_version,
                    )
                    for i, inp in enumerate(inputs)
                ],
            )
        return Build(
            self,
            artifact_id,
            version,
            self.files.temp_path(artifact_id, version, self.owner),
            self.files.path_of(artifact_id, version),
            kind == "upload",
            provisional=provisional,
            hash_content=hash_content,
        )

    def publish(self, build: Build, size: int, provenance: str | None = None) -> ArtifactInfo:
        """Rename the temp file into place and mark the row ready; its info.

        With ``provenance`` the row takes it, unless a ready artifact already has
        it: then the build's row and file are removed and that artifact's info is
        returned instead (the caller tells by the id).
        """
        assert build.schema is not None
        with self.db.lock:  # a removal of the artifact's last file removes its directory
            build.final_path.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(build.tmp_path, build.final_path)
            except FileNotFoundError:  # Build.abandon took it away: nothing to publish
                raise BuildFailed(f"build of {build.uri} was abandoned") from None
        if build.durable:
            fsync_dir(build.final_path.parent)
        now = time.time()
        with self.db.lock:
            if build.durable:
                self.db.execute("PRAGMA synchronous=FULL")
            try:
                winner = self._mark_ready(build, size, now, provenance)
            finally:
                if build.durable:
                    self.db.execute("PRAGMA synchronous=NORMAL")
        if winner == _ENDED:  # abandoned between the rename and the commit
            remove_published(build.final_path)
            raise BuildFailed(f"build of {build.uri} was abandoned")
        if winner is not None:
            # Our row is gone (committed): the file is an orphan now. A crash
            # before this unlink leaves it for recovery, which deletes it.
            remove_published(build.final_path)
            return self.index.get(*winner)
        info = self.index.get(build.artifact_id, build.version)
        self.collector.evict(keep={(build.artifact_id, build.version)})
        return info

    def publish_parts(
        self,
        build: Build,
        schema: pa.Schema,
        parts: Sequence[PartInfo],
        provenance: str | None = None,
    ) -> ArtifactInfo:
        """Check the parts (each there, whole, with ``schema``), then record them in order and
        mark the row ready in one transaction; deduplicates as :meth:`publish` does (the
        build's parts are then deleted). BuildFailed when a part is wrong."""
        try:
            batches = self.parts.check(schema, parts)
        except (ValueError, OSError, pa.ArrowException) as exc:
            raise BuildFailed(f"build of {build.uri} cannot publish its parts: {exc}") from None
        build.schema = schema
        build.rows = sum(p.rows for p in parts)
        build.batches = batches
        build.parts = list(parts)
        with self.db.lock:
            winner = self._mark_ready(build, sum(p.bytes for p in parts), time.time(), provenance)
        if winner == _ENDED:
            raise BuildFailed(f"build of {build.uri} was abandoned")
        if winner is not None:
            self.parts.delete(parts)
            return self.index.get(*winner)
        info = self.index.get(build.artifact_id, build.version)
        self.collector.evict(keep={(build.artifact_id, build.version)})
        return info

    def _whole(self, db: Any, key: tuple[str, int], byte_size: int, part_count: int) -> bool:
        """Whether a ready version's file (or every part) is stored whole."""
        if part_count:
            return self.parts.whole(rows_of(db, *key))
        try:
            return self.files.path_of(*key).stat().st_size == byte_size
        except FileNotFoundError:
            return False

    def _mark_ready(
        self, build: Build, size: int, now: float, provenance: str | None = None
    ) -> tuple[str, int] | None:
        """One transaction: ``None`` once the row is ready, or the ready artifact
        that already has ``provenance`` (then the build's row is deleted), or
        ``_ENDED`` when the row is no longer building (nothing changes)."""
        assert build.schema is not None
        with self.db.tx() as db:
            state = db.execute(
                "SELECT state FROM artifacts WHERE artifact_id=? AND version=?",
                (build.artifact_id, build.version),
            ).fetchone()
            if state is None or state["state"] != "building":
                return _ENDED  # failed meanwhile (Build.abandon): it must stay so
            if provenance is None:
                row = db.execute(
                    "SELECT provenance FROM artifacts WHERE artifact_id=? AND version=?",
                    (build.artifact_id, build.version),
                ).fetchone()
                # A refresh supersedes the earlier ready version of the same provenance.
                db.execute(
                    "UPDATE artifacts SET state='superseded' WHERE provenance=? AND state='ready'",
                    (row["provenance"],),
                )
            else:
                other = db.execute(
                    "SELECT artifact_id, version, byte_size, part_count FROM artifacts "
                    "WHERE provenance=? AND state='ready'",
                    (provenance,),
                ).fetchone()
                if other is not None:
                    key = (other["artifact_id"], other["version"])
                    if self._whole(db, key, other["byte_size"], other["part_count"]):
                        delete_version(db, build.artifact_id, build.version)
                        return key
                    db.execute(
                        "UPDATE artifacts SET state='failed', error=? "
                        "WHERE artifact_id=? AND version=?",
                        ("integrity check failed: file missing or truncated", *key),
                    )
                db.execute(
                    "UPDATE artifacts SET provenance=? WHERE artifact_id=? AND version=?",
                    (provenance, build.artifact_id, build.version),
                )
            db.execute(
                "UPDATE artifacts SET state='ready', arrow_schema=?, row_count=?, byte_size=?, "
                "num_batches=?, finished_at=?, last_read_at=?, build_pid=NULL, "
                "build_owner=NULL, part_count=? "
                "WHERE artifact_id=? AND version=?",
                (
                    build.schema.serialize().to_pybytes(),
                    build.rows,
                    size,
                    build.batches,
                    now,
                    now,
                    len(build.parts),
                    build.artifact_id,
                    build.version,
                ),
            )
            record(db, build.artifact_id, build.version, build.parts)
        return None

    def discard(self, build: Build) -> None:
        """Remove a build's row (while it is still building) and its files."""
        with self.db.lock:  # files too: see Collector.remove
            with self.db.tx() as db:
                still_building = db.execute(
                    "SELECT 1 FROM artifacts WHERE artifact_id=? AND version=? "
                    "AND state='building'",
                    (build.artifact_id, build.version),
                ).fetchone()
                if still_building:
                    delete_version(db, build.artifact_id, build.version)
            build.tmp_path.unlink(missing_ok=True)
            if still_building:
                # publish() may have renamed the file before it failed to commit.
                remove_published(build.final_path)

    def fail(self, build: Build, message: str) -> bool:
        """Mark a build's row failed and remove its temp file; False if it was no longer
        building (published meanwhile: the row stays as it is)."""
        with contextlib.suppress(FileNotFoundError):
            build.tmp_path.unlink()
        with self.db.tx() as db:
            changed = db.execute(
                "UPDATE artifacts SET state='failed', error=?, finished_at=?, build_pid=NULL, "
                "build_owner=NULL WHERE artifact_id=? AND version=? AND state='building'",
                (message, time.time(), build.artifact_id, build.version),
            ).rowcount
        return changed > 0

    def put(
        self,
        reader: pa.RecordBatchReader,
        *,
        provenance: str,
        executor: str | None = None,
        params: Any = None,
        inputs: Sequence[InputVersion] = (),
        kind: str = "upload",
        metadata: dict[str, Any] | None = None,
    ) -> ArtifactInfo:
        """Store a whole stream as a new artifact (durable for uploads)."""
        build = self.begin_build(
            provenance=provenance,
            executor=executor,
            params=params,
            inputs=inputs,
            kind=kind,
            metadata=metadata,
        )
        try:
            build.write_reader(reader)
            return build.publish()
        except BaseException as exc:
            build.fail(exc)
            raise
