"""The artifact store: immutable Arrow IPC files plus their metadata in SQLite.

Layout under ``root``::

    store.db                      SQLite (WAL): artifacts, inputs, names, and the
                                  registry's aliases, tags and audit (catalog.registry)
    artifacts/<id>/v<n>.arrow     published artifacts (Arrow IPC *file* format)
    tmp/<id>.v<n>.<owner>.arrow   builds in progress
    owners/<owner>.lock           one per open store, locked while it is open
                                  (catalog.owners: who is still alive)

Publishing is write-to-temp, (fsync), rename, then one transaction marks the
row ``ready``. Recovery on open restores the invariant "no ``ready`` row
without its complete file": rows of dead builds (their owner's lock is free,
:mod:`catalog.owners`) become ``failed``, their temp files and any orphan
published file are removed. A derived artifact that was
not fsynced is checked (size and IPC footer) when it is opened; a damaged one
is marked failed and reported as :class:`CorruptArtifact` so the caller
rebuilds it instead of serving it.

A build whose provenance is known only once its data is written (an upload,
content-addressed) starts with a *provisional* provenance
(``begin_build(provenance=None)``), may hash the file it writes
(``hash_content=True``: :meth:`Build.seal` returns the :class:`ChunkedSha256`
of the file's bytes, computed on other cores while the file is written) and
names its provenance at :meth:`Build.publish` time. That publish is also the
deduplication point: if a ready artifact (whose file is whole)
already has the provenance, the new build is discarded — its temp file and row
removed, no failure recorded — and the existing artifact is returned
(``build.deduplicated``). The check and the ``ready`` mark are one
transaction, so two identical builds publishing at the same moment end as one
artifact, never as two ready rows and never as an error.

The pieces: :mod:`catalog.records` (what the store hands out),
:mod:`catalog.build` (a version being written and its followers),
:mod:`catalog.hashing` (content hashing while writing); this module owns the
SQLite metadata, publishing, recovery, reading, names, lineage, eviction and gc.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
import uuid
import weakref
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from catalog import owners, registry
from catalog.build import Build, _fsync_dir, _pid_alive
from catalog.hashing import ChunkedSha256, chunked_sha256
from catalog.records import (
    PROVISIONAL_PREFIX,
    ArtifactInfo,
    CorruptArtifact,
    InputVersion,
    NameInfo,
    State,
)
from catalog.registry import is_text
from catalog.uris import artifact_uri, validate_name
from foundation import BuildFailed, Conflict, InvalidArgument, NotFound

__all__ = [
    "PROVISIONAL_PREFIX",
    "ArtifactInfo",
    "ArtifactStore",
    "Build",
    "ChunkedSha256",
    "CorruptArtifact",
    "InputVersion",
    "NameInfo",
    "State",
    "chunked_sha256",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS artifacts (
    artifact_id   TEXT NOT NULL,
    version       INTEGER NOT NULL,
    provenance    TEXT NOT NULL,
    state         TEXT NOT NULL,
    kind          TEXT NOT NULL,
    executor      TEXT,
    params        TEXT,
    arrow_schema  BLOB,
    row_count     INTEGER,
    byte_size     INTEGER,
    num_batches   INTEGER,
    created_at    REAL NOT NULL,
    finished_at   REAL,
    last_read_at  REAL,
    error         TEXT,
    build_pid     INTEGER,
    metadata      TEXT,
    build_owner   TEXT,
    PRIMARY KEY (artifact_id, version)
);
CREATE UNIQUE INDEX IF NOT EXISTS artifacts_ready_provenance
    ON artifacts (provenance) WHERE state = 'ready';
CREATE INDEX IF NOT EXISTS artifacts_provenance ON artifacts (provenance);
CREATE TABLE IF NOT EXISTS artifact_inputs (
    artifact_id   TEXT NOT NULL,
    version       INTEGER NOT NULL,
    position      INTEGER NOT NULL,
    input_uri     TEXT NOT NULL,
    input_version TEXT NOT NULL,
    ref_artifact  TEXT,
    ref_version   INTEGER,
    PRIMARY KEY (artifact_id, version, position)
);
CREATE INDEX IF NOT EXISTS artifact_inputs_ref ON artifact_inputs (ref_artifact, ref_version);
CREATE TABLE IF NOT EXISTS names (
    name        TEXT PRIMARY KEY,
    artifact_id TEXT NOT NULL,
    version     INTEGER NOT NULL,
    updated_at  REAL NOT NULL
);
"""


_ENDED = ("", 0)
"""What ``_mark_ready`` answers for a build that was failed before it could publish."""

GC_HEADROOM_PERCENT = 80
"""A gc given ``max_bytes`` collects until the store holds at most this percent of it."""

_NEEDED = """
WITH RECURSIVE
cells(artifact_id, version, notebook, cell, variable, rank) AS (
    SELECT artifact_id, version,
           json_extract(meta, '$.notebook_id'), json_extract(meta, '$.cell_id'),
           json_extract(meta, '$.variable'),
           ROW_NUMBER() OVER (
               PARTITION BY json_extract(meta, '$.notebook_id'), json_extract(meta, '$.cell_id'),
                            json_extract(meta, '$.variable')
               ORDER BY created_at DESC, rowid DESC)
    FROM (SELECT rowid, artifact_id, version, created_at,
                 CASE WHEN json_valid(metadata) THEN metadata END AS meta
          FROM artifacts WHERE state = 'ready')
    WHERE json_extract(meta, '$.cell_id') IS NOT NULL
),
roots(artifact_id, version) AS (
    SELECT artifact_id, version FROM names
    UNION SELECT artifact_id, version FROM aliases
    UNION SELECT artifact_id, version FROM alias_pending WHERE op = 'set'
    UNION SELECT artifact_id, version FROM artifacts WHERE state = 'building'
    UNION SELECT artifact_id, version FROM cells WHERE rank = 1 AND ?
),
needed(artifact_id, version) AS (
    SELECT artifact_id, version FROM roots
    UNION
    SELECT i.ref_artifact, i.ref_version FROM artifact_inputs i
    JOIN needed n ON i.artifact_id = n.artifact_id AND i.version = n.version
    WHERE i.ref_artifact IS NOT NULL
)
SELECT artifact_id, version FROM needed
"""
"""The versions gc never collects: the roots — named and aliased versions (and the
target of a pending change of a protected alias, see :mod:`catalog.registry`),
builds in progress (whose inputs are about to be read) and the current value of
each cell output — and everything they depend on through lineage, transitively.

A *cell output* is an upload whose metadata has a ``cell_id`` (what a notebook
kernel sends: ``notebook_id``, ``cell_id``, ``variable``, ``cell_provenance``,
``inputs``); its id is ``(notebook_id, cell_id, variable)`` and its current value
the newest ready version with that id. Older values of the same id are history.
The parameter is 1 to keep current cell outputs, 0 (``collect_latest``) not to.
"""

_REASONS = ("failed", "superseded", "idle", "bytes")
_MOST_ROWS = registry.SQLITE_INTEGERS[-1]
"""The largest LIMIT SQLite takes: a bigger one asks for every row."""


@dataclass(frozen=True, slots=True)
class Collected:
    """One version gc collects (or would, on a dry run), and why."""

    artifact_id: str
    version: int
    state: str
    byte_size: int
    created_at: float
    used_at: float
    """When it was last used: created or read, whichever is later."""
    reason: str = ""
    """failed | superseded | idle | bytes"""

    @property
    def key(self) -> tuple[str, int]:
        return (self.artifact_id, self.version)

    @property
    def uri(self) -> str:
        return artifact_uri(self.artifact_id, self.version)

    def because(self, reason: str) -> Collected:
        return replace(self, reason=reason)

    def json(self) -> dict[str, Any]:
        return {
            "artifact_uri": self.uri,
            "artifact_id": self.artifact_id,
            "version": self.version,
            "state": self.state,
            "byte_size": self.byte_size,
            "created_at": self.created_at,
            "last_used_at": self.used_at,
            "reason": self.reason,
        }


class _ReadLease:
    """Keeps one version from gc and eviction while it is read (:meth:`ArtifactStore.readers`).

    Released by :meth:`release`, or when it is dropped unreleased: a reader that is
    closed or dropped before its first batch never runs its generator's ``finally``,
    and its lease must not pin the version for the life of the process.
    """

    __slots__ = ("__weakref__", "_release")

    def __init__(self, store: ArtifactStore, key: tuple[str, int]) -> None:
        self._release = weakref.finalize(self, store._unlease, key)
        self._release.atexit = False

    def release(self) -> None:
        self._release()  # once: a finalizer runs at most once


class ArtifactStore:
    """Content-addressed, versioned, immutable artifacts. Thread-safe.

    One SQLite connection guarded by a lock; builds write files outside it.
    ``max_bytes`` caps the bytes of stored versions: past it, the
    least-recently-used versions that nothing needs (:meth:`needed`) are
    evicted. :meth:`gc` collects by age and size on request.
    """

    def __init__(self, root: Path, *, max_bytes: int = 0, fsync_derived: bool = False) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.fsync_derived = fsync_derived
        self.artifacts_dir = self.root / "artifacts"
        self.tmp_dir = self.root / "tmp"
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._leases: Counter[tuple[str, int]] = Counter()
        self._noted: dict[tuple[str, int], float] = {}  # note_use: last write per version
        self._schemas: dict[tuple[str, int], pa.Schema] = {}
        self._db = sqlite3.connect(
            self.root / "store.db", check_same_thread=False, isolation_level=None
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)
        self._migrate()
        self._db.executescript(registry.SCHEMA)  # aliases, tags, the registry audit
        self._owner = owners.Owner(self.root / "owners")
        self.recover()

    # --- lifecycle ---------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._owner.close()

    @property
    def lock(self) -> threading.RLock:
        """The store's one lock: every read of its index and every write takes it."""
        return self._lock

    @property
    def owner(self) -> str:
        """This open store's owner token: what its builds record (:mod:`catalog.owners`)."""
        return self._owner.token

    def _migrate(self) -> None:
        """Bring a store.db written by an earlier version up to this schema."""
        with self._tx() as db:  # one process at a time
            columns = {r["name"] for r in db.execute("PRAGMA table_info(artifacts)")}
            if "build_owner" not in columns:  # builds named their process by pid alone
                db.execute("ALTER TABLE artifacts ADD COLUMN build_owner TEXT")

    def _owner_alive(self, owner: str | None, pid: int | None) -> bool:
        """Whether the process writing a build (or a temp file) still runs."""
        if owner:
            return owners.alive(self.root / "owners", owner)
        # Written by an earlier version: only a pid to go by (a reused one fools it).
        return _pid_alive(pid) and pid != os.getpid()

    def __enter__(self) -> ArtifactStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def path_of(self, artifact_id: str, version: int) -> Path:
        return self.artifacts_dir / artifact_id / f"v{version}.arrow"

    def recover(self) -> dict[str, int]:
        """Restore consistency after a crash; returns what was repaired."""
        report = {"failed_builds": 0, "temp_removed": 0, "missing_files": 0, "orphans": 0}
        now = time.time()
        with self._tx() as db:
            rows = db.execute(
                "SELECT artifact_id, version, build_pid, build_owner FROM artifacts "
                "WHERE state='building'"
            ).fetchall()
            for r in rows:
                if self._owner_alive(r["build_owner"], r["build_pid"]):
                    continue
                db.execute(
                    "UPDATE artifacts SET state='failed', finished_at=?, error=? "
                    "WHERE artifact_id=? AND version=?",
                    (
                        now,
                        f"build interrupted: process {r['build_pid']} exited before publishing",
                        r["artifact_id"],
                        r["version"],
                    ),
                )
                report["failed_builds"] += 1
                with contextlib.suppress(FileNotFoundError):
                    self.path_of(r["artifact_id"], r["version"]).unlink()
            for r in db.execute(
                "SELECT artifact_id, version, byte_size FROM artifacts WHERE state IN "
                "('ready', 'superseded')"
            ).fetchall():
                path = self.path_of(r["artifact_id"], r["version"])
                try:
                    ok = path.stat().st_size == r["byte_size"]
                except FileNotFoundError:
                    ok = False
                if not ok:
                    db.execute(
                        "UPDATE artifacts SET state='failed', error=? "
                        "WHERE artifact_id=? AND version=?",
                        ("file missing or truncated", r["artifact_id"], r["version"]),
                    )
                    report["missing_files"] += 1
            known = {
                (r[0], r[1])
                for r in db.execute(
                    "SELECT artifact_id, version FROM artifacts WHERE state IN "
                    "('ready', 'superseded', 'building')"
                )
            }
        for tmp in self.tmp_dir.glob("*.arrow"):
            parts = tmp.name.rsplit(".", 2)
            writer = parts[-2] if len(parts) == 3 else ""
            if owners.is_token(writer):
                live = self._owner_alive(writer, None)
            else:
                live = writer.isdigit() and self._owner_alive(None, int(writer))
            if not live:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                report["temp_removed"] += 1
        for path in self.artifacts_dir.glob("*/v*.arrow"):
            try:
                key = (path.parent.name, int(path.stem[1:]))
            except ValueError:
                continue
            if key not in known:
                path.unlink(missing_ok=True)
                report["orphans"] += 1
        owners.sweep(self.root / "owners")
        return report

    # --- reading metadata -------------------------------------------------
    def _info(self, row: sqlite3.Row) -> ArtifactInfo:
        blob = row["arrow_schema"]
        schema = None
        if blob:
            # Artifacts are immutable: decode each schema once.
            key = (row["artifact_id"], row["version"])
            schema = self._schemas.get(key)
            if schema is None:
                schema = pa.ipc.read_schema(pa.py_buffer(blob))
                if len(self._schemas) > 10_000:
                    self._schemas.clear()
                self._schemas[key] = schema
        return ArtifactInfo(
            artifact_id=row["artifact_id"],
            version=row["version"],
            provenance=row["provenance"],
            state=row["state"],
            kind=row["kind"],
            executor=row["executor"],
            params=json.loads(row["params"]) if row["params"] else None,
            schema=schema,
            row_count=row["row_count"],
            byte_size=row["byte_size"],
            num_batches=row["num_batches"],
            created_at=row["created_at"],
            finished_at=row["finished_at"],
            last_read_at=row["last_read_at"],
            error=row["error"],
            metadata=json.loads(row["metadata"]) if row["metadata"] else {},
        )

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def clear_caches(self) -> dict[str, int]:
        """Forget the decoded schemas (decoded again when next needed); how many were held."""
        with self._lock:
            held = len(self._schemas)
            self._schemas.clear()
        return {"schemas": held}

    def find_ready(self, provenance: str) -> ArtifactInfo | None:
        rows = self._query(
            "SELECT * FROM artifacts WHERE provenance=? AND state='ready'", (provenance,)
        )
        return self._info(rows[0]) if rows else None

    def find_latest(self, provenance: str) -> ArtifactInfo | None:
        """The newest version with this provenance, whatever its state."""
        rows = self._query(
            "SELECT * FROM artifacts WHERE provenance=? ORDER BY created_at DESC, version DESC "
            "LIMIT 1",
            (provenance,),
        )
        return self._info(rows[0]) if rows else None

    def get(self, artifact_id: str, version: int) -> ArtifactInfo:
        rows: list[sqlite3.Row] = []
        if version in registry.SQLITE_INTEGERS:  # no stored row has any other version
            rows = self._query(
                "SELECT * FROM artifacts WHERE artifact_id=? AND version=?", (artifact_id, version)
            )
        if not rows:
            raise NotFound(
                f"artifact {artifact_uri(artifact_id, version)} not found",
                detail={"artifact_id": artifact_id, "version": version},
            )
        return self._info(rows[0])

    def versions(self, artifact_id: str) -> list[ArtifactInfo]:
        rows = self._query(
            "SELECT * FROM artifacts WHERE artifact_id=? ORDER BY version", (artifact_id,)
        )
        return [self._info(r) for r in rows]

    def list(
        self,
        *,
        state: str | None = None,
        since: float | None = None,
        sort: Literal["created_at", "byte_size", "row_count", "last_read_at"] = "created_at",
        order: Literal["asc", "desc"] = "desc",
        limit: int = 100,
        offset: int = 0,
    ) -> list[ArtifactInfo]:
        if sort not in ("created_at", "byte_size", "row_count", "last_read_at"):
            raise InvalidArgument(f"cannot sort by {sort!r}")
        if order not in ("asc", "desc"):
            raise InvalidArgument(f"order must be 'asc' or 'desc', not {order!r}")
        where, args = [], []
        if state is not None:
            where.append("state=?")
            args.append(state)
        if since is not None:
            where.append("created_at>=?")
            args.append(since)
        sql = "SELECT * FROM artifacts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if offset > registry.SQLITE_INTEGERS[-1]:
            return []  # past every row (and past what SQLite can bind)
        limit = min(limit, registry.SQLITE_INTEGERS[-1])
        sql += f" ORDER BY {sort} {order}, artifact_id, version LIMIT ? OFFSET ?"
        return [self._info(r) for r in self._query(sql, [*args, limit, offset])]

    def stats(self) -> dict[str, Any]:
        rows = self._query(
            "SELECT state, COUNT(*) AS n, COALESCE(SUM(byte_size), 0) AS bytes "
            "FROM artifacts GROUP BY state"
        )
        by_state = {r["state"]: {"count": r["n"], "bytes": r["bytes"]} for r in rows}
        names = self._query("SELECT COUNT(*) AS n FROM names")[0]["n"]
        ready = by_state.get("ready", {"count": 0, "bytes": 0})
        return {
            "artifacts": sum(v["count"] for v in by_state.values()),
            "by_state": by_state,
            "ready_bytes": ready["bytes"],
            "max_bytes": self.max_bytes,
            "names": names,
        }

    # --- building ----------------------------------------------------------
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
        with self._tx() as db:
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
                    self._owner.token,
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
        tmp = self.tmp_dir / f"{artifact_id}.v{version}.{self._owner.token}.arrow"
        return Build(
            self,
            artifact_id,
            version,
            tmp,
            self.path_of(artifact_id, version),
            kind == "upload",
            provisional=provisional,
            hash_content=hash_content,
        )

    def _publish(self, build: Build, size: int, provenance: str | None = None) -> ArtifactInfo:
        """Rename the temp file into place and mark the row ready; its info.

        With ``provenance`` the row takes it, unless a ready artifact already has
        it: then the build's row and file are removed and that artifact's info is
        returned instead (the caller tells by the id).
        """
        assert build.schema is not None
        with self._lock:  # a removal of the artifact's last file removes its directory
            build.final_path.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(build.tmp_path, build.final_path)
            except FileNotFoundError:  # Build.abandon took it away: nothing to publish
                raise BuildFailed(f"build of {build.uri} was abandoned") from None
        if build.durable:
            _fsync_dir(build.final_path.parent)
        now = time.time()
        with self._lock:
            if build.durable:
                self._db.execute("PRAGMA synchronous=FULL")
            try:
                winner = self._mark_ready(build, size, now, provenance)
            finally:
                if build.durable:
                    self._db.execute("PRAGMA synchronous=NORMAL")
        if winner == _ENDED:  # abandoned between the rename and the commit
            build.final_path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                build.final_path.parent.rmdir()
            raise BuildFailed(f"build of {build.uri} was abandoned")
        if winner is not None:
            # Our row is gone (committed): the file is an orphan now. A crash
            # before this unlink leaves it for recovery, which deletes it.
            build.final_path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                build.final_path.parent.rmdir()
            return self.get(*winner)
        info = self.get(build.artifact_id, build.version)
        self.evict(keep={(build.artifact_id, build.version)})
        return info

    def _mark_ready(
        self, build: Build, size: int, now: float, provenance: str | None = None
    ) -> tuple[str, int] | None:
        """One transaction: ``None`` once the row is ready, or the ready artifact
        that already has ``provenance`` (then the build's row is deleted), or
        ``_ENDED`` when the row is no longer building (nothing changes)."""
        assert build.schema is not None
        with self._tx() as db:
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
                    "SELECT artifact_id, version, byte_size FROM artifacts "
                    "WHERE provenance=? AND state='ready'",
                    (provenance,),
                ).fetchone()
                if other is not None:
                    key = (other["artifact_id"], other["version"])
                    try:
                        whole = self.path_of(*key).stat().st_size == other["byte_size"]
                    except FileNotFoundError:
                        whole = False
                    if whole:
                        self._delete_rows(db, build.artifact_id, build.version)
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
                "build_owner=NULL "
                "WHERE artifact_id=? AND version=?",
                (
                    build.schema.serialize().to_pybytes(),
                    build.rows,
                    size,
                    build.batches,
                    now,
                    now,
                    build.artifact_id,
                    build.version,
                ),
            )
        return None

    def _discard(self, build: Build) -> None:
        """Remove a build's row (while it is still building) and its files."""
        with self._lock:  # files too: see _remove
            with self._tx() as db:
                still_building = db.execute(
                    "SELECT 1 FROM artifacts WHERE artifact_id=? AND version=? "
                    "AND state='building'",
                    (build.artifact_id, build.version),
                ).fetchone()
                if still_building:
                    self._delete_rows(db, build.artifact_id, build.version)
            build.tmp_path.unlink(missing_ok=True)
            if still_building:
                # publish() may have renamed the file before it failed to commit.
                build.final_path.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    build.final_path.parent.rmdir()

    @staticmethod
    def _delete_rows(db: sqlite3.Connection, artifact_id: str, version: int) -> None:
        # Refuses an aliased version; audits the names and tags that go with it.
        registry.drop_version(db, artifact_id, version)
        db.execute(
            "DELETE FROM artifacts WHERE artifact_id=? AND version=?", (artifact_id, version)
        )
        db.execute(
            "DELETE FROM artifact_inputs WHERE artifact_id=? AND version=?",
            (artifact_id, version),
        )
        db.execute("DELETE FROM names WHERE artifact_id=? AND version=?", (artifact_id, version))

    def _fail(self, build: Build, message: str) -> bool:
        """Mark a build's row failed and remove its temp file; False if it was no longer
        building (published meanwhile: the row stays as it is)."""
        with contextlib.suppress(FileNotFoundError):
            build.tmp_path.unlink()
        with self._tx() as db:
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

    # --- reading data ------------------------------------------------------
    def _lease(self, artifact_id: str, version: int) -> _ReadLease:
        with self._lock:
            self._leases[(artifact_id, version)] += 1
        return _ReadLease(self, (artifact_id, version))

    def _unlease(self, key: tuple[str, int]) -> None:
        with self._lock:
            self._leases[key] -= 1
            if self._leases[key] <= 0:
                del self._leases[key]

    def readers(self, artifact_id: str, version: int) -> int:
        with self._lock:
            return self._leases.get((artifact_id, version), 0)

    def _readable(self, artifact_id: str, version: int) -> tuple[ArtifactInfo, Path]:
        info = self.get(artifact_id, version)
        if info.state not in ("ready", "superseded"):
            raise Conflict(
                f"artifact {info.uri} is not ready (state={info.state})",
                detail={"state": info.state, "error": info.error},
            )
        path = self.path_of(artifact_id, version)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = -1
        if size != info.byte_size:
            self._mark_corrupt(info, "file missing or truncated")
        with self._lock:
            self._db.execute(
                "UPDATE artifacts SET last_read_at=? WHERE artifact_id=? AND version=?",
                (time.time(), artifact_id, version),
            )
        return info, path

    def verify(self, info: ArtifactInfo) -> bool:
        """Cheap check that a ready artifact's file is whole; marks it failed if not."""
        try:
            ok = self.path_of(info.artifact_id, info.version).stat().st_size == info.byte_size
        except FileNotFoundError:
            ok = False
        if not ok:
            with contextlib.suppress(CorruptArtifact):
                self._mark_corrupt(info, "file missing or truncated")
        return ok

    def _mark_corrupt(self, info: ArtifactInfo, why: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE artifacts SET state='failed', error=? WHERE artifact_id=? AND version=?",
                (f"integrity check failed: {why}", info.artifact_id, info.version),
            )
        raise CorruptArtifact(f"artifact {info.uri} failed its integrity check ({why})")

    def _open_file(self, info: ArtifactInfo, path: Path) -> pa.ipc.RecordBatchFileReader:
        try:
            return pa.ipc.open_file(pa.memory_map(str(path), "r"))
        except (pa.ArrowInvalid, OSError) as exc:
            self._mark_corrupt(info, str(exc).splitlines()[0])
            raise  # unreachable: _mark_corrupt raises

    def _open_leased(
        self, artifact_id: str, version: int
    ) -> tuple[pa.ipc.RecordBatchFileReader, _ReadLease]:
        """The memory-mapped file of a readable version, and the lease that keeps it.

        The lease is taken before the version is checked: gc and eviction plan and
        delete under the store's lock and spare leased versions, so between the
        check and the open a concurrent gc cannot delete the file (that read would
        have been reported as a damaged artifact). Once mapped, the file's data
        stays readable even if the version is deleted later.
        """
        lease = self._lease(artifact_id, version)
        try:
            info, path = self._readable(artifact_id, version)
            return self._open_file(info, path), lease
        except BaseException:
            lease.release()
            raise

    def open_file(self, artifact_id: str, version: int) -> pa.ipc.RecordBatchFileReader:
        """The memory-mapped IPC file reader of a ready artifact (random access)."""
        file_reader, lease = self._open_leased(artifact_id, version)
        lease.release()  # mapped: a later delete cannot take the data away
        return file_reader

    def open(
        self, artifact_id: str, version: int, *, start: int = 0, stop: int | None = None
    ) -> pa.RecordBatchReader:
        """Stream batches ``[start, stop)`` of a ready artifact, memory-mapped, zero-copy.

        The artifact is leased (never evicted) until the reader is exhausted or
        closed.
        """
        file_reader, lease = self._open_leased(artifact_id, version)
        n = file_reader.num_record_batches
        stop = n if stop is None else min(stop, n)

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                for i in range(start, stop):
                    yield file_reader.get_batch(i)
            finally:
                lease.release()

        return pa.RecordBatchReader.from_batches(file_reader.schema, batches())

    def open_table(self, artifact_id: str, version: int) -> pa.Table:
        """The whole artifact as a table backed by the memory map (no copy)."""
        return self.open_file(artifact_id, version).read_all()

    # --- names --------------------------------------------------------------
    def set_name(self, name: str, artifact_id: str, version: int) -> NameInfo:
        validate_name(name)
        now = time.time()
        with self._tx() as db:
            # Checked in the transaction that writes the name: a gc or delete
            # between a check and the write would leave the name dangling.
            row = None
            if version in registry.SQLITE_INTEGERS:
                row = db.execute(
                    "SELECT state FROM artifacts WHERE artifact_id=? AND version=?",
                    (artifact_id, version),
                ).fetchone()
            uri = artifact_uri(artifact_id, version)
            if row is None:
                raise NotFound(
                    f"artifact {uri} not found",
                    detail={"artifact_id": artifact_id, "version": version},
                )
            if row["state"] != "ready":
                raise Conflict(f"cannot name {uri}: it is {row['state']}, not ready")
            old = db.execute("SELECT artifact_id, version FROM names WHERE name=?", (name,))
            before = old.fetchone()
            db.execute(
                "INSERT INTO names (name, artifact_id, version, updated_at) VALUES (?,?,?,?) "
                "ON CONFLICT(name) DO UPDATE SET artifact_id=excluded.artifact_id, "
                "version=excluded.version, updated_at=excluded.updated_at",
                (name, artifact_id, version, now),
            )
            before_key = (before[0], before[1]) if before else None
            registry.record_name_change(db, name, before_key, (artifact_id, version), at=now)
        return NameInfo(name, artifact_id, version, now)

    @staticmethod
    def _check_text_name(name: str) -> None:
        if not is_text(name):  # not echoed: an error message must be text too
            raise InvalidArgument("invalid name: it holds a lone UTF-16 surrogate")

    def get_name(self, name: str) -> NameInfo:
        self._check_text_name(name)
        rows = self._query("SELECT * FROM names WHERE name=?", (name,))
        if not rows:
            raise NotFound(f"Name '{name}' not found", detail={"name": name})
        r = rows[0]
        return NameInfo(r["name"], r["artifact_id"], r["version"], r["updated_at"])

    def list_names(self, prefix: str | None = None) -> list[NameInfo]:
        if prefix and not is_text(prefix):
            return []  # no name is anything but text
        if prefix:
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            rows = self._query(
                "SELECT * FROM names WHERE name LIKE ? ESCAPE '\\' ORDER BY name",
                (escaped + "%",),
            )
        else:
            rows = self._query("SELECT * FROM names ORDER BY name")
        return [NameInfo(r["name"], r["artifact_id"], r["version"], r["updated_at"]) for r in rows]

    def delete_name(self, name: str) -> None:
        self._check_text_name(name)
        with self._tx() as db:
            old = db.execute("SELECT artifact_id, version FROM names WHERE name=?", (name,))
            before = old.fetchone()
            if before is None:
                raise NotFound(f"Name '{name}' not found", detail={"name": name})
            db.execute("DELETE FROM names WHERE name=?", (name,))
            registry.record_name_change(db, name, (before[0], before[1]), None, at=time.time())

    def names_of(self, artifact_id: str, version: int) -> list[str]:
        if version not in registry.SQLITE_INTEGERS:
            return []
        rows = self._query(
            "SELECT name FROM names WHERE artifact_id=? AND version=? ORDER BY name",
            (artifact_id, version),
        )
        return [r["name"] for r in rows]

    # --- lineage ------------------------------------------------------------
    def inputs(self, artifact_id: str, version: int) -> list[InputVersion]:
        self.get(artifact_id, version)
        rows = self._query(
            "SELECT * FROM artifact_inputs WHERE artifact_id=? AND version=? ORDER BY position",
            (artifact_id, version),
        )
        return [
            InputVersion(r["input_uri"], r["input_version"], r["ref_artifact"], r["ref_version"])
            for r in rows
        ]

    def dependents(
        self, artifact_id: str, version: int, *, limit: int | None = None
    ) -> list[ArtifactInfo]:
        """The versions built from this one, oldest first; the first ``limit`` of them."""
        self.get(artifact_id, version)
        rows = self._query(
            "SELECT a.* FROM artifact_inputs i JOIN artifacts a "
            "ON a.artifact_id=i.artifact_id AND a.version=i.version "
            "WHERE i.ref_artifact=? AND i.ref_version=? ORDER BY a.created_at LIMIT ?",
            # a LIMIT past SQLite's integers would raise OverflowError: all rows it is
            (artifact_id, version, -1 if limit is None else min(max(0, limit), _MOST_ROWS)),
        )
        return [self._info(r) for r in rows]

    # --- deleting -----------------------------------------------------------
    def delete(self, artifact_id: str, version: int) -> None:
        """Delete one version (its file, row, inputs, tags and the names pointing at it).

        Conflict while it builds, or while an alias points at it (catalog.registry).
        """
        info = self.get(artifact_id, version)
        if info.state == "building":
            raise Conflict(f"artifact {info.uri} is still building")
        self._remove(artifact_id, version)

    def _remove(self, artifact_id: str, version: int) -> None:
        """Delete a version's rows, then its file (a crash between leaves an orphan file,
        which recovery removes).

        All under the store's lock: once the row is gone its version number is free,
        and a build of the same artifact that took it must not lose its file to this
        unlink; nor may a publish into the artifact's directory lose the directory
        to this rmdir (publish renames under the lock too).
        """
        path = self.path_of(artifact_id, version)
        with self._lock:
            with self._tx() as db:
                self._delete_rows(db, artifact_id, version)
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                path.parent.rmdir()

    def touch(self, artifact_id: str, version: int, *, at: float | None = None) -> None:
        """Record a use of a version at ``at`` (default: now); gc's idleness counts from it.

        Reads record their use themselves; a use is never moved back in time.
        """
        self.get(artifact_id, version)
        with self._lock:
            self._db.execute(
                "UPDATE artifacts SET last_read_at=MAX(COALESCE(last_read_at, 0), ?) "
                "WHERE artifact_id=? AND version=?",
                (time.time() if at is None else at, artifact_id, version),
            )

    def note_use(self, artifact_id: str, version: int, *, every_s: float = 60.0) -> None:
        """:meth:`touch` for the cache-hit path: at most one write per version per ``every_s``.

        A hit is a use (gc's ``max_idle_days`` must not collect what is only ever
        re-materialized), but a write per hit would cost more than the hit.
        """
        now = time.time()
        key = (artifact_id, version)
        last = self._noted.get(key)
        if last is not None and now - last < every_s:
            return
        if len(self._noted) > 10_000:
            self._noted.clear()
        self._noted[key] = now
        with contextlib.suppress(NotFound):
            self.touch(artifact_id, version, at=now)

    def usage(self) -> dict[str, Any]:
        """What the stored versions weigh, and how much of it gc could collect.

        ``needed`` versions are those gc never collects (:meth:`needed`: names and
        what they depend on, current cell outputs, reads in progress); the other
        stored (ready or superseded) versions are ``unreferenced``.
        """
        needed = self.needed()
        rows = self._query(
            "SELECT artifact_id, version, state, COALESCE(byte_size, 0) AS bytes FROM artifacts"
        )
        stored = [r for r in rows if r["state"] in ("ready", "superseded")]
        loose = [r for r in stored if (r["artifact_id"], r["version"]) not in needed]
        stats = self.stats()
        return {
            "total_bytes": sum(r["bytes"] for r in stored),
            "total_versions": len(rows),
            "stored_versions": len(stored),
            "artifacts": len({r["artifact_id"] for r in rows}),
            "needed_count": len(stored) - len(loose),
            "unreferenced_count": len(loose),
            "unreferenced_bytes": sum(r["bytes"] for r in loose),
            "names": stats["names"],
            "by_state": stats["by_state"],
            "max_bytes": self.max_bytes,
        }

    def needed(self, *, collect_latest: bool = False) -> set[tuple[str, int]]:
        """The versions gc and eviction never collect (see :data:`_NEEDED`), plus those
        being read; with ``collect_latest`` the current cell outputs are not roots."""
        with self._lock:
            rows = self._db.execute(_NEEDED, (0 if collect_latest else 1,)).fetchall()
            return {(r[0], r[1]) for r in rows} | set(self._leases)

    def _plan(
        self,
        *,
        now: float,
        target_bytes: int | None,
        max_idle_s: float | None = None,
        min_idle_s: float = 0.0,
        collect_latest: bool = False,
        failed_older_than_s: float | None = None,
        superseded: bool = False,
        keep: Collection[tuple[str, int]] = (),
    ) -> tuple[list[Collected], int]:
        """What gc (or eviction) would collect, in order, and the bytes the store holds.

        Passes, each least recently used first, over the versions that are not
        needed and were not used within ``min_idle_s``: failed versions older
        than ``failed_older_than_s``; superseded ones (``superseded``); ready
        ones idle for ``max_idle_s``; then any of them, superseded first, until
        the store holds at most ``target_bytes``. Call with the lock held.
        """
        rows = self._db.execute(
            "SELECT artifact_id, version, state, byte_size, created_at, last_read_at "
            "FROM artifacts WHERE state != 'building'"
        ).fetchall()
        store_bytes = sum(r["byte_size"] or 0 for r in rows)
        protected = self.needed(collect_latest=collect_latest) | set(keep)
        free: list[Collected] = []
        for r in rows:
            key = (r["artifact_id"], r["version"])
            used = max(r["created_at"], r["last_read_at"] or 0.0)
            if key in protected or now - used < min_idle_s:
                continue
            free.append(
                Collected(key[0], key[1], r["state"], r["byte_size"] or 0, r["created_at"], used)
            )
        free.sort(key=lambda c: (c.used_at, c.artifact_id, c.version))
        picked: dict[tuple[str, int], Collected] = {}
        for c in free:
            if c.state == "failed":
                old = failed_older_than_s is not None and now - c.created_at >= failed_older_than_s
                reason = "failed" if old else None
            elif c.state == "superseded":
                reason = "superseded" if superseded else None
            else:
                idle = max_idle_s is not None and now - c.used_at >= max_idle_s
                reason = "idle" if idle else None
            if reason is not None:
                picked[c.key] = c.because(reason)
        by_reason = sorted(picked.values(), key=lambda c: _REASONS.index(c.reason))
        left = store_bytes - sum(c.byte_size for c in by_reason)
        if target_bytes is not None and left > target_bytes:
            for c in sorted(free, key=lambda c: c.state != "superseded"):  # stable: LRU kept
                if left <= target_bytes:
                    break
                if c.key in picked or not c.byte_size:
                    continue
                by_reason.append(c.because("bytes"))
                left -= c.byte_size
        return by_reason, store_bytes

    def evict(
        self, *, keep: Collection[tuple[str, int]] = (), target_bytes: int | None = None
    ) -> list[str]:
        """Evict least-recently-used versions nothing needs until the store is under the cap.

        Superseded versions go first. What gc never collects is never evicted
        (:meth:`needed`), nor ``keep``. A cap of 0 means none.
        """
        cap = self.max_bytes if target_bytes is None else target_bytes
        if not cap:
            return []
        with self._lock:
            total = self._db.execute(
                "SELECT COALESCE(SUM(byte_size), 0) FROM artifacts WHERE state != 'building'"
            ).fetchone()[0]
            if total <= cap:
                return []
            victims, _ = self._plan(now=time.time(), target_bytes=cap, keep=keep)
            for c in victims:
                self._remove(c.artifact_id, c.version)
        return [c.uri for c in victims]

    def gc(
        self,
        *,
        max_bytes: int | None = None,
        max_idle_s: float | None = None,
        min_idle_s: float = 0.0,
        collect_latest: bool = False,
        dry_run: bool = False,
        failed_older_than_s: float = 3600.0,
        now: float | None = None,
    ) -> dict[str, Any]:
        """Collect the versions nothing needs, least recently used first.

        Never collected: a named version, anything a named version depends on
        through lineage (transitively), a version being read or built and the
        inputs of a build, and — unless ``collect_latest`` — the current value
        of every cell output (the newest ready upload per notebook, cell and
        variable, see :data:`_NEEDED`) and what it depends on; nor anything used
        (created or read) within ``min_idle_s``. Of the rest go: failed versions
        older than ``failed_older_than_s``, every superseded version, ready ones
        unused for ``max_idle_s`` (None: no idle limit), then the least recently
        used until the store holds at most 80% of ``max_bytes`` (None: the
        store's cap, where 0 means none; an explicit 0 collects all it may).
        ``dry_run`` reports the same list and deletes nothing. ``now`` is the
        clock gc measures idleness against.
        """
        limits = {
            "max_bytes": max_bytes,
            "max_idle_s": max_idle_s,
            "min_idle_s": min_idle_s,
            "failed_older_than_s": failed_older_than_s,
        }
        for what, value in limits.items():
            if value is not None and not value >= 0:  # NaN too; infinity means "never"
                raise InvalidArgument(
                    f"gc {what} must be a number >= 0, not {value!r}",
                    detail={what: value},
                )
        now = time.time() if now is None else now
        cap = self.max_bytes if max_bytes is None else max_bytes
        target = None if max_bytes is None and not cap else cap * GC_HEADROOM_PERCENT // 100
        with self._lock:
            victims, store_bytes = self._plan(
                now=now,
                target_bytes=target,
                max_idle_s=max_idle_s,
                min_idle_s=min_idle_s,
                collect_latest=collect_latest,
                failed_older_than_s=failed_older_than_s,
                superseded=True,
            )
            if not dry_run:
                for c in victims:
                    self._remove(c.artifact_id, c.version)
        deleted_bytes = sum(c.byte_size for c in victims)
        return {
            **self.stats(),
            "dry_run": dry_run,
            "collected": [c.json() for c in victims],
            "removed": [c.uri for c in victims if c.reason in ("failed", "superseded")],
            "evicted": [c.uri for c in victims if c.reason in ("idle", "bytes")],
            "deleted_count": len(victims),
            "deleted_bytes": deleted_bytes,
            "store_bytes": store_bytes if dry_run else store_bytes - deleted_bytes,
            "target_bytes": target,
        }
