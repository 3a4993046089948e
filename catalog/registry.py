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
- ``tags``: ``key → value`` strings on one artifact version; they go with it.
- ``registry_audit``: every change of a name, alias or tag (and every request,
  approval and rejection), append-only (triggers refuse UPDATE and DELETE),
  with who asked (``actor``, when the caller is known), the from/to versions or
  values, and when.

gc and eviction never collect an aliased version nor the target of a pending
``set`` (``catalog.store._NEEDED`` takes both as roots), and deleting such a
version is refused (:func:`drop_version`), so an alias never dangles and a
protected alias cannot be bypassed by deleting what it points at.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from catalog.uris import artifact_uri, validate_name
from foundation import (
    ALIAS_PATTERN,
    MAX_ACTOR_CHARS,
    MAX_AUDIT_PAGE,
    MAX_TAG_VALUE_CHARS,
    TAG_KEY_PATTERN,
    Conflict,
    InvalidArgument,
    NotFound,
)

if TYPE_CHECKING:
    from catalog.store import ArtifactStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS aliases (
    name        TEXT NOT NULL,
    alias       TEXT NOT NULL,
    artifact_id TEXT NOT NULL,
    version     INTEGER NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (name, alias)
);
CREATE INDEX IF NOT EXISTS aliases_target ON aliases (artifact_id, version);
CREATE TABLE IF NOT EXISTS alias_pending (
    name         TEXT NOT NULL,
    alias        TEXT NOT NULL,
    op           TEXT NOT NULL CHECK (op IN ('set', 'delete')),
    artifact_id  TEXT,
    version      INTEGER,
    requested_by TEXT,
    requested_at REAL NOT NULL,
    PRIMARY KEY (name, alias)
);
CREATE TABLE IF NOT EXISTS tags (
    artifact_id TEXT NOT NULL,
    version     INTEGER NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (artifact_id, version, key)
);
CREATE TABLE IF NOT EXISTS registry_audit (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    at               REAL NOT NULL,
    actor            TEXT,
    action           TEXT NOT NULL,
    op               TEXT,
    name             TEXT,
    alias            TEXT,
    key              TEXT,
    artifact_id      TEXT,
    version          INTEGER,
    from_artifact_id TEXT,
    from_version     INTEGER,
    to_artifact_id   TEXT,
    to_version       INTEGER,
    from_value       TEXT,
    to_value         TEXT,
    requested_by     TEXT,
    note             TEXT
);
CREATE INDEX IF NOT EXISTS registry_audit_name ON registry_audit (name);
CREATE INDEX IF NOT EXISTS registry_audit_artifact ON registry_audit (artifact_id);
CREATE INDEX IF NOT EXISTS registry_audit_from ON registry_audit (from_artifact_id);
CREATE INDEX IF NOT EXISTS registry_audit_to ON registry_audit (to_artifact_id);
CREATE TRIGGER IF NOT EXISTS registry_audit_no_update BEFORE UPDATE ON registry_audit
BEGIN SELECT RAISE(ABORT, 'the registry audit is append-only'); END;
CREATE TRIGGER IF NOT EXISTS registry_audit_no_delete BEFORE DELETE ON registry_audit
BEGIN SELECT RAISE(ABORT, 'the registry audit is append-only'); END;
"""

ALIASABLE = ("ready", "superseded")
"""States an alias may point at: the versions whose data can be read."""

SQLITE_INTEGERS = range(-(2**63), 2**63)
"""The integers SQLite stores; a version outside it names no stored row (and binding it
would raise OverflowError, an internal error, instead of a plain not found)."""

_ALIAS = re.compile(ALIAS_PATTERN)
_TAG_KEY = re.compile(TAG_KEY_PATTERN)

Key = tuple[str, int]
Status = Literal["applied", "unchanged", "pending", "deleted", "rejected"]


def _checked(
    value: str, pattern: re.Pattern[str], what: str, field: str, rule: str, most: int
) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidArgument(
            f"invalid {what} {value!r}: use {rule}, start with a letter, digit or _, "
            f"at most {most} characters",
            detail={field: value},
        )
    return value


def validate_alias(alias: str) -> str:
    """Return ``alias`` if it is a valid alias, else raise InvalidArgument."""
    return _checked(alias, _ALIAS, "alias", "alias", "letters, digits and _ . -", 64)


def validate_tag_key(key: str) -> str:
    """Return ``key`` if it is a valid tag key, else raise InvalidArgument."""
    return _checked(key, _TAG_KEY, "tag key", "key", "letters, digits and _ . : -", 128)


def is_text(value: str) -> bool:
    """Whether SQLite can store ``value`` as text: valid Unicode, so no lone surrogate
    (which a JSON body may carry as an escape such as ``"\\ud800"``)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _tag_value(db: sqlite3.Connection, subject: Key, key: str) -> str | None:
    """The value of tag ``key`` on version ``subject``, or None."""
    row = db.execute(
        "SELECT value FROM tags WHERE artifact_id=? AND version=? AND key=?", (*subject, key)
    ).fetchone()
    return None if row is None else row["value"]


def _check_text(value: str, what: str) -> str:
    if not is_text(value):
        raise InvalidArgument(
            f"{what} is not valid text: it holds a lone UTF-16 surrogate", detail={what: None}
        )
    return value


def _check_actor(actor: str | None) -> str | None:
    if actor is not None and len(actor) > MAX_ACTOR_CHARS:
        raise InvalidArgument(f"actor is longer than {MAX_ACTOR_CHARS} characters")
    if actor is not None:
        _check_text(actor, "actor")
    return actor or None


@dataclass(frozen=True, slots=True)
class AliasInfo:
    name: str
    alias: str
    artifact_id: str
    version: int
    updated_at: float

    @property
    def artifact_uri(self) -> str:
        return artifact_uri(self.artifact_id, self.version)


@dataclass(frozen=True, slots=True)
class PendingChange:
    """A change of a protected alias waiting for approval."""

    name: str
    alias: str
    op: Literal["set", "delete"]
    artifact_id: str | None
    """The proposed target (``set``), or None (``delete``)."""
    version: int | None
    requested_by: str | None
    requested_at: float
    current: Key | None = None
    """What the alias points at now (None: it does not exist yet)."""

    @property
    def target(self) -> Key | None:
        if self.artifact_id is None or self.version is None:
            return None
        return (self.artifact_id, self.version)

    def json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "alias": self.alias,
            "op": self.op,
            "artifact_id": self.artifact_id,
            "version": self.version,
            "artifact_uri": _uri(self.target),
            "current_artifact_uri": _uri(self.current),
            "requested_by": self.requested_by,
            "requested_at": self.requested_at,
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a change of an alias did."""

    status: Status
    name: str
    alias: str
    target: Key | None = None
    """The version the alias points at afterwards (or would, once a pending set is approved)."""
    op: Literal["set", "delete"] = "set"
    detail: str | None = None

    def json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "name": self.name,
            "alias": self.alias,
            "op": self.op,
            "artifact_uri": _uri(self.target),
            "artifact_id": self.target[0] if self.target else None,
            "version": self.target[1] if self.target else None,
            "detail": self.detail,
        }


def _uri(key: Key | None) -> str | None:
    return artifact_uri(*key) if key is not None else None


def _key(row: sqlite3.Row | None) -> Key | None:
    return (row["artifact_id"], row["version"]) if row is not None else None


def _alias_key(name: str, alias: str) -> str:
    return f"alias '{alias}' of name '{name}'"


# --- the audit -----------------------------------------------------------------
_AUDIT_COLUMNS = (
    "at", "actor", "action", "op", "name", "alias", "key", "artifact_id", "version",
    "from_artifact_id", "from_version", "to_artifact_id", "to_version", "from_value",
    "to_value", "requested_by", "note",
)  # fmt: skip


def _audit(
    db: sqlite3.Connection,
    action: str,
    *,
    at: float,
    actor: str | None = None,
    op: str | None = None,
    name: str | None = None,
    alias: str | None = None,
    key: str | None = None,
    subject: Key | None = None,
    before: Key | None = None,
    after: Key | None = None,
    from_value: str | None = None,
    to_value: str | None = None,
    requested_by: str | None = None,
    note: str | None = None,
) -> None:
    row = {
        "at": at,
        "actor": actor,
        "action": action,
        "op": op,
        "name": name,
        "alias": alias,
        "key": key,
        "artifact_id": subject[0] if subject else None,
        "version": subject[1] if subject else None,
        "from_artifact_id": before[0] if before else None,
        "from_version": before[1] if before else None,
        "to_artifact_id": after[0] if after else None,
        "to_version": after[1] if after else None,
        "from_value": from_value,
        "to_value": to_value,
        "requested_by": requested_by,
        "note": note,
    }
    db.execute(
        f"INSERT INTO registry_audit ({', '.join(_AUDIT_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(_AUDIT_COLUMNS))})",
        [row[c] for c in _AUDIT_COLUMNS],
    )


def _entry_json(r: sqlite3.Row) -> dict[str, Any]:
    entry = {"id": r["id"], **{c: r[c] for c in _AUDIT_COLUMNS}}
    entry["artifact_uri"] = _uri(_pair(r["artifact_id"], r["version"]))
    entry["from_artifact_uri"] = _uri(_pair(r["from_artifact_id"], r["from_version"]))
    entry["to_artifact_uri"] = _uri(_pair(r["to_artifact_id"], r["to_version"]))
    return entry


def _pair(artifact_id: str | None, version: int | None) -> Key | None:
    return (artifact_id, version) if artifact_id is not None and version is not None else None


# --- hooks the store calls inside its own transactions ---------------------------
def record_name_change(
    db: sqlite3.Connection,
    name: str,
    before: Key | None,
    after: Key | None,
    *,
    at: float,
    note: str | None = None,
) -> None:
    """Audit a move of the plain name pointer ``name`` (nothing when it did not move)."""
    if before == after:
        return
    action = "name.delete" if after is None else "name.set"
    _audit(db, action, at=at, name=name, before=before, after=after, note=note)


def drop_version(db: sqlite3.Connection, artifact_id: str, version: int) -> None:
    """Before an artifact version's rows go: refuse if an alias (or a pending change)
    points at it; audit the names and tags that go with it, and remove the tags."""
    held = db.execute(
        "SELECT name, alias, 0 AS pending FROM aliases WHERE artifact_id=? AND version=? "
        "UNION ALL SELECT name, alias, 1 FROM alias_pending WHERE artifact_id=? AND version=? "
        "ORDER BY name, alias",
        (artifact_id, version, artifact_id, version),
    ).fetchall()
    uri = artifact_uri(artifact_id, version)
    if held:
        labels = [
            f"{r['name']}@{r['alias']}" + (" (pending)" if r["pending"] else "") for r in held
        ]
        raise Conflict(
            f"artifact {uri} is aliased as {', '.join(labels)}: "
            "move or delete the alias (or reject the pending change) first",
            detail={"artifact_uri": uri, "aliases": labels},
        )
    now = time.time()
    note = f"artifact version {uri} deleted"
    for r in db.execute(
        "SELECT name FROM names WHERE artifact_id=? AND version=? ORDER BY name",
        (artifact_id, version),
    ).fetchall():
        record_name_change(db, r["name"], (artifact_id, version), None, at=now, note=note)
    for r in db.execute(
        "SELECT key, value FROM tags WHERE artifact_id=? AND version=? ORDER BY key",
        (artifact_id, version),
    ).fetchall():
        _audit(db, "tag.delete", at=now, key=r["key"], subject=(artifact_id, version),
               from_value=r["value"], note=note)  # fmt: skip
    db.execute("DELETE FROM tags WHERE artifact_id=? AND version=?", (artifact_id, version))


# --- the registry ----------------------------------------------------------------
class Registry:
    """Aliases, pending changes, tags and the audit over one :class:`ArtifactStore`.

    Cheap to make (it holds only the store); every method is one store
    transaction, so it is as thread-safe as the store.
    """

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

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
        actor = _check_actor(actor)
        target = (artifact_id, version)
        now = time.time()
        with self.store._tx() as db:
            self._check_target(db, target)
            current = _key(self._alias_row(db, name, alias))
            if current == target:
                return Outcome("unchanged", name, alias, target)
            if protected:
                return self._request(db, name, alias, "set", target, current, actor, now)
            self._write_alias(db, name, alias, target, now)
            _audit(db, "alias.set", at=now, actor=actor, name=name, alias=alias,
                   before=current, after=target)  # fmt: skip
        return Outcome("applied", name, alias, target)

    def get_alias(self, name: str, alias: str) -> AliasInfo:
        validate_name(name)
        validate_alias(alias)
        with self.store._lock:
            row = self._alias_row(self.store._db, name, alias)
            if row is None:
                self._missing(self.store._db, name, alias)
        assert row is not None
        return AliasInfo(name, alias, row["artifact_id"], row["version"], row["updated_at"])

    def list_aliases(self, name: str) -> list[AliasInfo]:
        """The aliases ``name`` holds; NotFound if it is neither a name nor holds any."""
        validate_name(name)
        with self.store._lock:
            db = self.store._db
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
        rows = self.store._query(
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
        actor = _check_actor(actor)
        now = time.time()
        with self.store._tx() as db:
            current = _key(self._alias_row(db, name, alias))
            if current is None:
                self._missing(db, name, alias)
            if protected:
                return self._request(db, name, alias, "delete", None, current, actor, now)
            db.execute("DELETE FROM aliases WHERE name=? AND alias=?", (name, alias))
            _audit(db, "alias.delete", at=now, actor=actor, name=name, alias=alias,
                   before=current)  # fmt: skip
        return Outcome("deleted", name, alias, op="delete")

    # --- protected aliases -------------------------------------------------------
    def pending(self) -> list[PendingChange]:
        """Changes waiting for approval, oldest first."""
        rows = self.store._query(
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
        actor = _check_actor(actor)
        now = time.time()
        with self.store._tx() as db:
            change = self._pending_change(db, name, alias)
            db.execute("DELETE FROM alias_pending WHERE name=? AND alias=?", (name, alias))
            yield db, change, now
            _audit(db, kind, at=now, actor=actor, op=change.op, name=name, alias=alias,
                   before=change.current, after=change.target,
                   requested_by=change.requested_by)  # fmt: skip

    # --- tags ----------------------------------------------------------------------
    def set_tag(
        self, artifact_id: str, version: int, key: str, value: str, *, actor: str | None = None
    ) -> Literal["applied", "unchanged"]:
        validate_tag_key(key)
        if not isinstance(value, str):
            raise InvalidArgument("a tag value must be a string")
        if len(value) > MAX_TAG_VALUE_CHARS:
            raise InvalidArgument(f"tag value is longer than {MAX_TAG_VALUE_CHARS} characters")
        _check_text(value, "tag value")
        actor = _check_actor(actor)
        subject = (artifact_id, version)
        now = time.time()
        with self.store._tx() as db:
            self._check_exists(db, subject)
            old = _tag_value(db, subject, key)
            if old == value:
                return "unchanged"
            db.execute(
                "INSERT INTO tags (artifact_id, version, key, value, updated_at) "
                "VALUES (?,?,?,?,?) ON CONFLICT(artifact_id, version, key) DO UPDATE SET "
                "value=excluded.value, updated_at=excluded.updated_at",
                (artifact_id, version, key, value, now),
            )
            _audit(db, "tag.set", at=now, actor=actor, key=key, subject=subject,
                   from_value=old, to_value=value)  # fmt: skip
        return "applied"

    def tags(self, artifact_id: str, version: int) -> dict[str, str]:
        with self.store._lock:
            db = self.store._db
            self._check_exists(db, (artifact_id, version))
            rows = db.execute(
                "SELECT key, value FROM tags WHERE artifact_id=? AND version=? ORDER BY key",
                (artifact_id, version),
            ).fetchall()
        return {r["key"]: r["value"] for r in rows}

    def delete_tag(
        self, artifact_id: str, version: int, key: str, *, actor: str | None = None
    ) -> None:
        validate_tag_key(key)
        actor = _check_actor(actor)
        subject = (artifact_id, version)
        now = time.time()
        with self.store._tx() as db:
            self._check_exists(db, subject)
            old = _tag_value(db, subject, key)
            if old is None:
                uri = artifact_uri(artifact_id, version)
                raise NotFound(
                    f"Tag '{key}' not found on {uri}", detail={"artifact_uri": uri, "key": key}
                )
            db.execute(
                "DELETE FROM tags WHERE artifact_id=? AND version=? AND key=?",
                (artifact_id, version, key),
            )
            _audit(db, "tag.delete", at=now, actor=actor, key=key, subject=subject,
                   from_value=old)  # fmt: skip

    # --- the audit -------------------------------------------------------------------
    def audit(
        self, *, name: str | None = None, artifact_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Audit entries, newest first: those of ``name`` (exactly), those touching
        ``artifact_id`` (as the tagged version, or an alias/name's from or to)."""
        if limit < 1:
            raise InvalidArgument(f"limit must be >= 1, not {limit}")
        where: list[str] = []
        args: list[Any] = []
        if name is not None:
            where.append("name = ?")
            args.append(_check_text(name, "name"))
        if artifact_id is not None:
            _check_text(artifact_id, "artifact_id")
            where.append("(artifact_id = ? OR from_artifact_id = ? OR to_artifact_id = ?)")
            args += [artifact_id] * 3
        sql = "SELECT * FROM registry_audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        rows = self.store._query(sql, [*args, min(limit, MAX_AUDIT_PAGE)])
        return [_entry_json(r) for r in rows]

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

    @staticmethod
    def _check_exists(db: sqlite3.Connection, key: Key) -> str:
        row = None
        if key[1] in SQLITE_INTEGERS:
            row = db.execute(
                "SELECT state FROM artifacts WHERE artifact_id=? AND version=?", key
            ).fetchone()
        if row is None:
            raise NotFound(
                f"artifact {artifact_uri(*key)} not found",
                detail={"artifact_id": key[0], "version": key[1]},
            )
        return row["state"]

    def _check_target(self, db: sqlite3.Connection, key: Key) -> None:
        state = self._check_exists(db, key)
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
            _pair(r["cur_id"], r["cur_version"]),
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
                f"No pending change of {_alias_key(name, alias)}",
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
        what = f"set to {_uri(target)}" if op == "set" else "delete"
        detail = (
            f"alias '{alias}' is protected: the change ({what}) waits for approval; "
            "approve or reject it to finish"
        )
        row = db.execute(
            "SELECT * FROM alias_pending WHERE name=? AND alias=?", (name, alias)
        ).fetchone()
        if row is not None:
            if row["op"] == op and _pair(row["artifact_id"], row["version"]) == target:
                return Outcome("pending", name, alias, target, op=op, detail=detail)
            theirs = (
                f"set to {artifact_uri(row['artifact_id'], row['version'])}"
                if row["op"] == "set"
                else "delete"
            )
            by = f" by {row['requested_by']}" if row["requested_by"] else ""
            raise Conflict(
                f"another change of {_alias_key(name, alias)} is already pending ({theirs}{by}): "
                "approve or reject it first",
                detail={"name": name, "alias": alias, "pending_op": row["op"]},
            )
        db.execute(
            "INSERT INTO alias_pending "
            "(name, alias, op, artifact_id, version, requested_by, requested_at) "
            "VALUES (?,?,?,?,?,?,?)",
            (name, alias, op, *(target or (None, None)), actor, now),
        )
        _audit(db, "alias.request", at=now, actor=actor, op=op, name=name, alias=alias,
               before=current, after=target)  # fmt: skip
        return Outcome("pending", name, alias, target, op=op, detail=detail)
