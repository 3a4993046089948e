"""Names: mutable pointers ``strata://name/{name}`` to one ready artifact version.

A name is set in the transaction that checks its target, so a gc or delete
between a check and the write can never leave it dangling; every move is
audited (:func:`catalog.audit.record_name_change`).
"""

from __future__ import annotations

import time

from catalog import audit
from catalog.database import SQLITE_INTEGERS, Database, state_of
from catalog.records import NameInfo
from catalog.uris import artifact_uri, validate_name
from foundation import Conflict, InvalidArgument, NotFound


class Names:
    """The ``names`` table of one store."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def set(self, name: str, artifact_id: str, version: int) -> NameInfo:
        validate_name(name)
        now = time.time()
        with self.db.tx() as db:
            # Checked in the transaction that writes the name: a gc or delete
            # between a check and the write would leave the name dangling.
            state = state_of(db, artifact_id, version)
            if state != "ready":
                uri = artifact_uri(artifact_id, version)
                raise Conflict(f"cannot name {uri}: it is {state}, not ready")
            old = db.execute("SELECT artifact_id, version FROM names WHERE name=?", (name,))
            before = old.fetchone()
            db.execute(
                "INSERT INTO names (name, artifact_id, version, updated_at) VALUES (?,?,?,?) "
                "ON CONFLICT(name) DO UPDATE SET artifact_id=excluded.artifact_id, "
                "version=excluded.version, updated_at=excluded.updated_at",
                (name, artifact_id, version, now),
            )
            before_key = (before[0], before[1]) if before else None
            audit.record_name_change(db, name, before_key, (artifact_id, version), at=now)
        return NameInfo(name, artifact_id, version, now)

    @staticmethod
    def _check_text(name: str) -> None:
        if not audit.is_text(name):  # not echoed: an error message must be text too
            raise InvalidArgument("invalid name: it holds a lone UTF-16 surrogate")

    def get(self, name: str) -> NameInfo:
        self._check_text(name)
        rows = self.db.query("SELECT * FROM names WHERE name=?", (name,))
        if not rows:
            raise NotFound(f"Name '{name}' not found", detail={"name": name})
        r = rows[0]
        return NameInfo(r["name"], r["artifact_id"], r["version"], r["updated_at"])

    def list(self, prefix: str | None = None) -> list[NameInfo]:
        if prefix and not audit.is_text(prefix):
            return []  # no name is anything but text
        if prefix:
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            rows = self.db.query(
                "SELECT * FROM names WHERE name LIKE ? ESCAPE '\\' ORDER BY name",
                (escaped + "%",),
            )
        else:
            rows = self.db.query("SELECT * FROM names ORDER BY name")
        return [NameInfo(r["name"], r["artifact_id"], r["version"], r["updated_at"]) for r in rows]

    def delete(self, name: str) -> None:
        self._check_text(name)
        with self.db.tx() as db:
            old = db.execute("SELECT artifact_id, version FROM names WHERE name=?", (name,))
            before = old.fetchone()
            if before is None:
                raise NotFound(f"Name '{name}' not found", detail={"name": name})
            db.execute("DELETE FROM names WHERE name=?", (name,))
            audit.record_name_change(db, name, (before[0], before[1]), None, at=time.time())

    def of(self, artifact_id: str, version: int) -> list[str]:
        """The names pointing at a version."""
        if version not in SQLITE_INTEGERS:
            return []
        rows = self.db.query(
            "SELECT name FROM names WHERE artifact_id=? AND version=? ORDER BY name",
            (artifact_id, version),
        )
        return [r["name"] for r in rows]
