"""Tags: ``key → value`` strings on one artifact version; they go with it.

Every change is audited (:mod:`catalog.audit`); deleting a version removes its
tags and audits that too.
"""

from __future__ import annotations

import re
import sqlite3
import time
from typing import Literal

from catalog import audit
from catalog.database import Database, state_of
from catalog.uris import artifact_uri
from foundation import MAX_TAG_VALUE_CHARS, TAG_KEY_PATTERN, InvalidArgument, NotFound

_TAG_KEY = re.compile(TAG_KEY_PATTERN)

Key = tuple[str, int]


def validate_tag_key(key: str) -> str:
    """Return ``key`` if it is a valid tag key, else raise InvalidArgument."""
    return audit.check_word(key, _TAG_KEY, "tag key", "key", "letters, digits and _ . : -", 128)


def _tag_value(db: sqlite3.Connection, subject: Key, key: str) -> str | None:
    """The value of tag ``key`` on version ``subject``, or None."""
    row = db.execute(
        "SELECT value FROM tags WHERE artifact_id=? AND version=? AND key=?", (*subject, key)
    ).fetchone()
    return None if row is None else row["value"]


class Tags:
    """The ``tags`` table of one store; every method is one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def set(
        self, artifact_id: str, version: int, key: str, value: str, *, actor: str | None = None
    ) -> Literal["applied", "unchanged"]:
        validate_tag_key(key)
        if not isinstance(value, str):
            raise InvalidArgument("a tag value must be a string")
        if len(value) > MAX_TAG_VALUE_CHARS:
            raise InvalidArgument(f"tag value is longer than {MAX_TAG_VALUE_CHARS} characters")
        audit.check_text(value, "tag value")
        actor = audit.check_actor(actor)
        subject = (artifact_id, version)
        now = time.time()
        with self.db.tx() as db:
            state_of(db, *subject)
            old = _tag_value(db, subject, key)
            if old == value:
                return "unchanged"
            db.execute(
                "INSERT INTO tags (artifact_id, version, key, value, updated_at) "
                "VALUES (?,?,?,?,?) ON CONFLICT(artifact_id, version, key) DO UPDATE SET "
                "value=excluded.value, updated_at=excluded.updated_at",
                (artifact_id, version, key, value, now),
            )
            audit.record(db, "tag.set", at=now, actor=actor, key=key, subject=subject,
                   from_value=old, to_value=value)  # fmt: skip
        return "applied"

    def of(self, artifact_id: str, version: int) -> dict[str, str]:
        with self.db.reading() as db:
            state_of(db, artifact_id, version)
            rows = db.execute(
                "SELECT key, value FROM tags WHERE artifact_id=? AND version=? ORDER BY key",
                (artifact_id, version),
            ).fetchall()
        return {r["key"]: r["value"] for r in rows}

    def delete(self, artifact_id: str, version: int, key: str, *, actor: str | None = None) -> None:
        validate_tag_key(key)
        actor = audit.check_actor(actor)
        subject = (artifact_id, version)
        now = time.time()
        with self.db.tx() as db:
            state_of(db, *subject)
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
            audit.record(db, "tag.delete", at=now, actor=actor, key=key, subject=subject,
                   from_value=old)  # fmt: skip
