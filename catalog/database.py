"""``store.db``: the schema, the one connection, its lock, and transactions.

One SQLite connection (WAL) guarded by one re-entrant lock: every read of the
index and every write takes it. :meth:`Database.tx` is one ``BEGIN IMMEDIATE``
transaction; :meth:`Database.reading` holds the lock for reads that must see
one state. The registry's tables (:mod:`catalog.audit`) live in the same
database, so a version and what points at it change together.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from catalog import audit
from catalog.partitioned import PARTS_SCHEMA
from catalog.uris import artifact_uri
from foundation import NotFound

SCHEMA = """
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
    part_count    INTEGER NOT NULL DEFAULT 0,
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

SQLITE_INTEGERS = range(-(2**63), 2**63)
"""The integers SQLite stores; a version outside it names no stored row (and binding it
would raise OverflowError, an internal error, instead of a plain not found)."""

MOST_ROWS = SQLITE_INTEGERS[-1]
"""The largest LIMIT SQLite takes: a bigger one asks for every row."""


class Database:
    """The store's SQLite database: one connection, one lock. Thread-safe."""

    def __init__(self, path: Path) -> None:
        self.lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(SCHEMA)
        self._db.executescript(PARTS_SCHEMA)
        self._migrate()
        self._db.executescript(audit.SCHEMA)  # aliases, tags, the registry audit

    def close(self) -> None:
        with self.lock:
            self._db.close()

    def _migrate(self) -> None:
        """Bring a store.db written by an earlier version up to this schema."""
        with self.tx() as db:  # one process at a time
            columns = {r["name"] for r in db.execute("PRAGMA table_info(artifacts)")}
            if "build_owner" not in columns:  # builds named their process by pid alone
                db.execute("ALTER TABLE artifacts ADD COLUMN build_owner TEXT")
            if "part_count" not in columns:  # every version was one file
                db.execute("ALTER TABLE artifacts ADD COLUMN part_count INTEGER NOT NULL DEFAULT 0")

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction under the lock; rolled back on any error."""
        with self.lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextlib.contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection under the lock, outside a transaction (reads, single writes)."""
        with self.lock:
            yield self._db

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self._db.execute(sql, args).fetchall()

    def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        """One statement under the lock, committed on its own."""
        with self.lock:
            self._db.execute(sql, args)


def state_of(db: sqlite3.Connection, artifact_id: str, version: int) -> str:
    """The state of a version (in the caller's transaction), or NotFound."""
    row = None
    if version in SQLITE_INTEGERS:
        row = db.execute(
            "SELECT state FROM artifacts WHERE artifact_id=? AND version=?", (artifact_id, version)
        ).fetchone()
    if row is None:
        raise NotFound(
            f"artifact {artifact_uri(artifact_id, version)} not found",
            detail={"artifact_id": artifact_id, "version": version},
        )
    return row["state"]


def delete_version(db: sqlite3.Connection, artifact_id: str, version: int) -> None:
    """Delete a version's rows (in the caller's transaction): its artifact row, inputs and
    the names pointing at it. Refused while an alias points at it; the names and tags
    that go with it are audited (:func:`catalog.audit.drop_version`)."""
    audit.drop_version(db, artifact_id, version)
    db.execute("DELETE FROM artifacts WHERE artifact_id=? AND version=?", (artifact_id, version))
    db.execute(
        "DELETE FROM artifact_inputs WHERE artifact_id=? AND version=?", (artifact_id, version)
    )
    db.execute("DELETE FROM names WHERE artifact_id=? AND version=?", (artifact_id, version))
    db.execute(
        "DELETE FROM artifact_parts WHERE artifact_id=? AND version=?", (artifact_id, version)
    )
