"""What the store knows of its versions: reads of the metadata rows, lineage included."""

from __future__ import annotations

import json
import sqlite3
from typing import Literal

import pyarrow as pa

from catalog.database import MOST_ROWS, SQLITE_INTEGERS, Database
from catalog.records import ArtifactInfo, InputVersion
from catalog.uris import artifact_uri
from foundation import InvalidArgument, NotFound


class Index:
    """Reads of ``artifacts`` and ``artifact_inputs``; decoded schemas are cached
    (artifacts are immutable)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._schemas: dict[tuple[str, int], pa.Schema] = {}

    def info(self, row: sqlite3.Row) -> ArtifactInfo:
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
            parts=row["part_count"] or 0,
        )

    def clear_caches(self) -> dict[str, int]:
        """Forget the decoded schemas (decoded again when next needed); how many were held."""
        with self.db.lock:
            held = len(self._schemas)
            self._schemas.clear()
        return {"schemas": held}

    def find_ready(self, provenance: str) -> ArtifactInfo | None:
        rows = self.db.query(
            "SELECT * FROM artifacts WHERE provenance=? AND state='ready'", (provenance,)
        )
        return self.info(rows[0]) if rows else None

    def find_latest(self, provenance: str) -> ArtifactInfo | None:
        """The newest version with this provenance, whatever its state."""
        rows = self.db.query(
            "SELECT * FROM artifacts WHERE provenance=? ORDER BY created_at DESC, version DESC "
            "LIMIT 1",
            (provenance,),
        )
        return self.info(rows[0]) if rows else None

    def get(self, artifact_id: str, version: int) -> ArtifactInfo:
        rows: list[sqlite3.Row] = []
        if version in SQLITE_INTEGERS:  # no stored row has any other version
            rows = self.db.query(
                "SELECT * FROM artifacts WHERE artifact_id=? AND version=?", (artifact_id, version)
            )
        if not rows:
            raise NotFound(
                f"artifact {artifact_uri(artifact_id, version)} not found",
                detail={"artifact_id": artifact_id, "version": version},
            )
        return self.info(rows[0])

    def versions(self, artifact_id: str) -> list[ArtifactInfo]:
        rows = self.db.query(
            "SELECT * FROM artifacts WHERE artifact_id=? ORDER BY version", (artifact_id,)
        )
        return [self.info(r) for r in rows]

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
        if offset > MOST_ROWS:
            return []  # past every row (and past what SQLite can bind)
        limit = min(limit, MOST_ROWS)
        sql += f" ORDER BY {sort} {order}, artifact_id, version LIMIT ? OFFSET ?"
        return [self.info(r) for r in self.db.query(sql, [*args, limit, offset])]

    # --- lineage ------------------------------------------------------------
    def inputs(self, artifact_id: str, version: int) -> list[InputVersion]:
        self.get(artifact_id, version)
        rows = self.db.query(
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
        rows = self.db.query(
            "SELECT a.* FROM artifact_inputs i JOIN artifacts a "
            "ON a.artifact_id=i.artifact_id AND a.version=i.version "
            "WHERE i.ref_artifact=? AND i.ref_version=? ORDER BY a.created_at LIMIT ?",
            # a LIMIT past SQLite's integers would raise OverflowError: all rows it is
            (artifact_id, version, -1 if limit is None else min(max(0, limit), MOST_ROWS)),
        )
        return [self.info(r) for r in rows]
