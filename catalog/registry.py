"""The registry: aliases of names, protected-alias approvals, tags, and their audit.

Tables in the artifact store's own SQLite database (created with the store's
schema, guarded by the store's lock, written in its transactions):

- ``aliases``: ``name @ alias`` → one artifact version (``models/fraud @ champion``).
  A *registry name* is any valid name: it need not exist in ``names`` first,
  and it holds as many aliases as it is given. Aliases and the plain name
  pointer (``names``) are independent pointers: deleting one leaves the other.
- ``alias_pending``: at most one change (``set`` or ``delete``) per alias waiting
  for approval. Which aliases are *protected* is the caller's to say
  (``protected=True``; the server takes it from ``QUIVER_PROTECTED_ALIASES``):
  a change of one is recorded here and changes nothing until approved.
- ``tags``: ``key → value`` strings on one artifact version (:mod:`catalog.tags`).
- ``registry_audit``: every change, append-only (:mod:`catalog.audit`).

gc and eviction never collect an aliased version nor the target of a pending
``set`` (``catalog.collect.NEEDED`` takes both as roots), and deleting such a
version is refused (:func:`catalog.audit.drop_version`), so an alias never dangles and a
protected alias cannot be bypassed by deleting what it points at.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from catalog import audit
from catalog.alias_records import (
    ALIASABLE,
    AliasInfo,
    Key,
    Outcome,
    PendingChange,
    Status,
    alias_key,
    validate_alias,
)
from catalog.database import SQLITE_INTEGERS, state_of
from catalog.tags import Tags
from catalog.uris import artifact_uri, validate_name
from foundation import Conflict, NotFound

if TYPE_CHECKING:
    from catalog.store import ArtifactStore


def _key(row: sqlite3.Row | None) -> Key | None:
    return (row["artifact_id"], row["version"]) if row is not None else None


class Registry:
    """Aliases, pending changes, tags and the audit over one :class:`ArtifactStore`.

    Cheap to make (it holds only the store); every method is one store
    transaction, so it is as thread-safe as the store.
    """

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store
        self.db = store.db
        self._tags = Tags(store.db)

    # --- aliases ---------------------------------------------------------------
    def set_alias(
        self,
        name: str,
        alias: str,
        artifact_id: str,
        version: int,
        *,
        actor: str | None = None,
        protected: bool = False,
    ) -> Outcome:
        """Point ``name @ alias`` at a readable version: ``applied`` or ``unchanged``;
        for a ``protected`` alias, ``pending`` (nothing changes until :meth:`approve`)."""
        validate_name(name)
        validate_alias(alias)
        actor = audit.check_actor(actor)
        target = (artifact_id, version)
        now = time.time()
        with self.db.tx() as db:
            self._check_target(db, target)
            current = _key(self._alias_row(db, name, alias))
            if current == target:
                return Outcome("unchanged", name, alias, target)
            if protected:
                return self._request(db, name, alias, "set", target, current, actor, now)
            self._write_alias(db, name, alias, target, now)
            audit.record(db, "alias.set", at=now, actor=actor, name=name, alias=alias,
                   before=current, after=target)  # fmt: skip
        return Outcome("applied", name, alias, target)

    def get_alias(self, name: str, alias: str) -> AliasInfo:
        validate_name(name)
        validate_alias(alias)
        with self.db.reading() as db:
            row = self._alias_row(db, name, alias)
            if row is None:
                self._missing(db, name, alias)
        assert row is not None
        return AliasInfo(name, alias, row["artifact_id"], row["version"], row["updated_at"])

    def list_aliases(self, name: str) -> list[AliasInfo]:
        """The aliases ``name`` holds; NotFound if it is neither a name nor holds any."""
        validate_name(name)
        with self.db.reading() as db:
            rows = db.execute(
                "SELECT * FROM aliases WHERE name=? ORDER BY alias", (name,)
            ).fetchall()
            if not rows and not self._known(db, name):
                raise NotFound(f"Name '{name}' not found", detail={"name": name})
        return [
            AliasInfo(name, r["alias"], r["artifact_id"], r["version"], r["updated_at"])
            for r in rows
        ]

    def aliases_of(self, artifact_id: str, version: int) -> list[str]:
        """``name@alias`` of every alias pointing at a version."""
        if version not in SQLITE_INTEGERS:
            return []
        rows = self.db.query(
            "SELECT name, alias FROM aliases WHERE artifact_id=? AND version=? "
            "ORDER BY name, alias",
            (artifact_id, version),
        )
        return [f"{r['name']}@{r['alias']}" for r in rows]

    def delete_alias(
        self, name: str, alias: str, *, actor: str | None = None, protected: bool = False
    ) -> Outcome:
        """Delete ``name @ alias``: ``deleted``, or ``pending`` for a ``protected`` alias."""
        validate_name(name)
        validate_alias(alias)
        actor = audit.check_actor(actor)
        now = time.time()
        with self.db.tx() as db:
            current = _key(self._alias_row(db, name, alias))
            if current is None:
                self._missing(db, name, alias)
            if protected:
                return self._request(db, name, alias, "delete", None, current, actor, now)
            db.execute("DELETE FROM aliases WHERE name=? AND alias=?", (name, alias))
            audit.record(db, "alias.delete", at=now, actor=actor, name=name, alias=alias,
                   before=current)  # fmt: skip
        return Outcome("deleted", name, alias, op="delete")

    # --- protected aliases -------------------------------------------------------
    def pending(self) -> list[PendingChange]:
        """Changes waiting for approval, oldest first."""
        rows = self.db.query(
            "SELECT p.*, a.artifact_id AS cur_id, a.version AS cur_version "
            "FROM alias_pending p LEFT JOIN aliases a ON a.name=p.name AND a.alias=p.alias "
            "ORDER BY p.requested_at, p.name, p.alias"
        )
        return [self._pending(r) for r in rows]

    def approve(self, name: str, alias: str, *, actor: str | None = None) -> Outcome:
        """Apply the pending change of ``name @ alias``: ``applied`` or ``deleted``."""
        with self._settle(name, alias, actor, "alias.approve") as (db, change, now):
            target = change.target
            if change.op == "set":
                assert target is not None
                self._check_target(db, target)  # refused: the change stays pending
                self._write_alias(db, name, alias, target, now)
            else:
                db.execute("DELETE FROM aliases WHERE name=? AND alias=?", (name, alias))
        status: Status = "applied" if change.op == "set" else "deleted"
        return Outcome(status, name, alias, target, op=change.op)

    def reject(self, name: str, alias: str, *, actor: str | None = None) -> Outcome:
        """Discard the pending change of ``name @ alias``; the alias stays as it is."""
        with self._settle(name, alias, actor, "alias.reject") as (_, change, _):
            pass  # off the queue and audited: nothing is applied
        return Outcome("rejected", name, alias, change.current, op=change.op)

    @contextlib.contextmanager
    def _settle(
        self, name: str, alias: str, actor: str | None, kind: str
    ) -> Iterator[tuple[sqlite3.Connection, PendingChange, float]]:
        """Take the pending change of ``name @ alias`` off the queue and audit it as
        ``kind``, in one transaction with what the caller does meanwhile (an error
        there leaves the change pending)."""
        validate_name(name)
        validate_alias(alias)
        actor = audit.check_actor(actor)
        now = time.time()
        with self.db.tx() as db:
            change = self._pending_change(db, name, alias)
            db.execute("DELETE FROM alias_pending WHERE name=? AND alias=?", (name, alias))
            yield db, change, now
            audit.record(db, kind, at=now, actor=actor, op=change.op, name=name, alias=alias,
                   before=change.current, after=change.target,
                   requested_by=change.requested_by)  # fmt: skip

    # --- tags (catalog.tags) and the audit (catalog.audit) ---------------------------
    def set_tag(
        self, artifact_id: str, version: int, key: str, value: str, *, actor: str | None = None
    ) -> Literal["applied", "unchanged"]:
        return self._tags.set(artifact_id, version, key, value, actor=actor)

    def tags(self, artifact_id: str, version: int) -> dict[str, str]:
        return self._tags.of(artifact_id, version)

    def delete_tag(
        self, artifact_id: str, version: int, key: str, *, actor: str | None = None
    ) -> None:
        self._tags.delete(artifact_id, version, key, actor=actor)

    def audit(
        self, *, name: str | None = None, artifact_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Audit entries, newest first: those of ``name`` (exactly), those touching
        ``artifact_id`` (as the tagged version, or an alias/name's from or to)."""
        with self.db.reading() as db:
            return audit.read(db, name=name, artifact_id=artifact_id, limit=limit)

    # --- helpers (called with the store's lock held) ------------------------------------
    @staticmethod
    def _alias_row(db: sqlite3.Connection, name: str, alias: str) -> sqlite3.Row | None:
        return db.execute(
            "SELECT * FROM aliases WHERE name=? AND alias=?", (name, alias)
        ).fetchone()

    @staticmethod
    def _write_alias(
        db: sqlite3.Connection, name: str, alias: str, target: Key, now: float
    ) -> None:
        db.execute(
            "INSERT INTO aliases (name, alias, artifact_id, version, updated_at) "
            "VALUES (?,?,?,?,?) ON CONFLICT(name, alias) DO UPDATE SET "
            "artifact_id=excluded.artifact_id, version=excluded.version, "
            "updated_at=excluded.updated_at",
            (name, alias, *target, now),
        )

    @staticmethod
    def _known(db: sqlite3.Connection, name: str) -> bool:
        """A registry name exists when it is a plain name, holds an alias or has a pending one."""
        return (
            db.execute(
                "SELECT 1 FROM names WHERE name=? UNION ALL SELECT 1 FROM aliases WHERE name=? "
                "UNION ALL SELECT 1 FROM alias_pending WHERE name=? LIMIT 1",
                (name, name, name),
            ).fetchone()
            is not None
        )

    def _missing(self, db: sqlite3.Connection, name: str, alias: str) -> NoReturn:
        """Raise the precise NotFound: the name is unknown, or it lacks this alias."""
        if not self._known(db, name):
            raise NotFound(f"Name '{name}' not found", detail={"name": name})
        raise NotFound(
            f"Alias '{alias}' of name '{name}' not found", detail={"name": name, "alias": alias}
        )

    def _check_target(self, db: sqlite3.Connection, key: Key) -> None:
        state = state_of(db, *key)
        if state not in ALIASABLE:
            raise Conflict(
                f"cannot alias {artifact_uri(*key)}: it is {state}, not ready",
                detail={"artifact_uri": artifact_uri(*key), "state": state},
            )

    @staticmethod
    def _pending(r: sqlite3.Row) -> PendingChange:
        return PendingChange(
            r["name"],
            r["alias"],
            r["op"],
            r["artifact_id"],
            r["version"],
            r["requested_by"],
            r["requested_at"],
            audit.pair(r["cur_id"], r["cur_version"]),
        )

    def _pending_change(self, db: sqlite3.Connection, name: str, alias: str) -> PendingChange:
        row = db.execute(
            "SELECT p.*, a.artifact_id AS cur_id, a.version AS cur_version "
            "FROM alias_pending p LEFT JOIN aliases a ON a.name=p.name AND a.alias=p.alias "
            "WHERE p.name=? AND p.alias=?",
            (name, alias),
        ).fetchone()
        if row is None:
            raise NotFound(
                f"No pending change of {alias_key(name, alias)}",
                detail={"name": name, "alias": alias},
            )
        return self._pending(row)

    def _request(
        self,
        db: sqlite3.Connection,
        name: str,
        alias: str,
        op: Literal["set", "delete"],
        target: Key | None,
        current: Key | None,
        actor: str | None,
        now: float,
    ) -> Outcome:
        """Record a change of a protected alias for approval (or find the same one)."""
        what = f"set to {audit.uri_of(target)}" if op == "set" else "delete"
        detail = (
            f"alias '{alias}' is protected: the change ({what}) waits for approval; "
            "approve or reject it to finish"
        )
        row = db.execute(
            "SELECT * FROM alias_pending WHERE name=? AND alias=?", (name, alias)
        ).fetchone()
        if row is not None:
            if row["op"] == op and audit.pair(row["artifact_id"], row["version"]) == target:
                return Outcome("pending", name, alias, target, op=op, detail=detail)
            theirs = (
                f"set to {artifact_uri(row['artifact_id'], row['version'])}"
                if row["op"] == "set"
                else "delete"
            )
            by = f" by {row['requested_by']}" if row["requested_by"] else ""
            raise Conflict(
                f"another change of {alias_key(name, alias)} is already pending ({theirs}{by}): "
                "approve or reject it first",
                detail={"name": name, "alias": alias, "pending_op": row["op"]},
            )
        db.execute(
            "INSERT INTO alias_pending "
            "(name, alias, op, artifact_id, version, requested_by, requested_at) "
            "VALUES (?,?,?,?,?,?,?)",
            (name, alias, op, *(target or (None, None)), actor, now),
        )
        audit.record(db, "alias.request", at=now, actor=actor, op=op, name=name, alias=alias,
               before=current, after=target)  # fmt: skip
        return Outcome("pending", name, alias, target, op=op, detail=detail)
