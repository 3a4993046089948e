"""The registry's tables in ``store.db``, its append-only audit, and the hooks the store calls.

Tables (created with the store's schema, guarded by the store's lock, written
in its transactions):

- ``aliases``: ``name @ alias`` → one artifact version (:mod:`catalog.registry`);
- ``alias_pending``: at most one change per protected alias waiting for approval;
- ``tags``: ``key → value`` strings on one artifact version (:mod:`catalog.tags`);
- ``registry_audit``: every change of a name, alias or tag (and every request,
  approval and rejection), append-only (triggers refuse UPDATE and DELETE),
  with who asked (``actor``, when the caller is known), the from/to versions or
  values, and when.

The store calls :func:`record_name_change` when a plain name moves and
:func:`drop_version` before a version's rows go, inside its own transactions.
"""

from __future__ import annotations

import re
import sqlite3
import time
from typing import Any

from catalog.uris import artifact_uri
from foundation import MAX_ACTOR_CHARS, MAX_AUDIT_PAGE, Conflict, InvalidArgument

Key = tuple[str, int]

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


def is_text(value: str) -> bool:
    """Whether SQLite can store ``value`` as text: valid Unicode, so no lone surrogate
    (which a JSON body may carry as an escape such as ``"\\ud800"``)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_text(value: str, what: str) -> str:
    if not is_text(value):
        raise InvalidArgument(
            f"{what} is not valid text: it holds a lone UTF-16 surrogate", detail={what: None}
        )
    return value


def check_word(
    value: str, pattern: re.Pattern[str], what: str, field: str, rule: str, most: int
) -> str:
    """``value`` if ``pattern`` matches all of it, else InvalidArgument stating the rule."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidArgument(
            f"invalid {what} {value!r}: use {rule}, start with a letter, digit or _, "
            f"at most {most} characters",
            detail={field: value},
        )
    return value


def check_actor(actor: str | None) -> str | None:
    if actor is not None and len(actor) > MAX_ACTOR_CHARS:
        raise InvalidArgument(f"actor is longer than {MAX_ACTOR_CHARS} characters")
    if actor is not None:
        check_text(actor, "actor")
    return actor or None


def uri_of(key: Key | None) -> str | None:
    return artifact_uri(*key) if key is not None else None


_AUDIT_COLUMNS = (
    "at", "actor", "action", "op", "name", "alias", "key", "artifact_id", "version",
    "from_artifact_id", "from_version", "to_artifact_id", "to_version", "from_value",
    "to_value", "requested_by", "note",
)  # fmt: skip


def record(
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
    entry["artifact_uri"] = uri_of(pair(r["artifact_id"], r["version"]))
    entry["from_artifact_uri"] = uri_of(pair(r["from_artifact_id"], r["from_version"]))
    entry["to_artifact_uri"] = uri_of(pair(r["to_artifact_id"], r["to_version"]))
    return entry


def pair(artifact_id: str | None, version: int | None) -> Key | None:
    return (artifact_id, version) if artifact_id is not None and version is not None else None


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
    record(db, action, at=at, name=name, before=before, after=after, note=note)


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
        record(db, "tag.delete", at=now, key=r["key"], subject=(artifact_id, version),
               from_value=r["value"], note=note)  # fmt: skip
    db.execute("DELETE FROM tags WHERE artifact_id=? AND version=?", (artifact_id, version))


def read(
    db: sqlite3.Connection,
    *,
    name: str | None = None,
    artifact_id: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Audit entries, newest first: those of ``name`` (exactly), those touching
    ``artifact_id`` (as the tagged version, or an alias/name's from or to)."""
    if limit < 1:
        raise InvalidArgument(f"limit must be >= 1, not {limit}")
    where: list[str] = []
    args: list[Any] = []
    if name is not None:
        where.append("name = ?")
        args.append(check_text(name, "name"))
    if artifact_id is not None:
        check_text(artifact_id, "artifact_id")
        where.append("(artifact_id = ? OR from_artifact_id = ? OR to_artifact_id = ?)")
        args += [artifact_id] * 3
    sql = "SELECT * FROM registry_audit"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    rows = db.execute(sql, [*args, min(limit, MAX_AUDIT_PAGE)]).fetchall()
    return [_entry_json(r) for r in rows]
