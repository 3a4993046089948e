"""What the stored versions weigh, and what goes: delete, gc, eviction.

Nothing that is needed ever goes (:data:`NEEDED`): named and aliased versions,
the target of a pending change of a protected alias, builds in progress, the
current value of each cell output, everything those depend on through lineage,
and versions being read. gc collects by age and size on request; eviction keeps
the store under its byte cap after each publish.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any

from catalog import shared_renditions
from catalog.database import Database, delete_version
from catalog.files import Files, remove_published
from catalog.index import Index
from catalog.partitioned import Parts, rows_of
from catalog.reads import Leases
from catalog.uris import artifact_uri
from foundation import Conflict, InvalidArgument, NotFound

GC_HEADROOM_PERCENT = 80
"""A gc given ``max_bytes`` collects until the store holds at most this percent of it."""

NEEDED = """
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


class Collector:
    """Usage, gc, eviction and deletion over one store. ``max_bytes`` caps the bytes of
    stored versions: past it, the least-recently-used versions nothing needs go."""

    def __init__(
        self,
        db: Database,
        index: Index,
        files: Files,
        leases: Leases,
        max_bytes: int,
        parts: Parts,
    ) -> None:
        self.parts = parts
        self.db = db
        self.index = index
        self.files = files
        self.leases = leases
        self.max_bytes = max_bytes
        self._noted: dict[tuple[str, int], float] = {}  # note_use: last write per version

    def stats(self) -> dict[str, Any]:
        rows = self.db.query(
            "SELECT state, COUNT(*) AS n, COALESCE(SUM(byte_size), 0) AS bytes "
            "FROM artifacts GROUP BY state"
        )
        by_state = {r["state"]: {"count": r["n"], "bytes": r["bytes"]} for r in rows}
        names = self.db.query("SELECT COUNT(*) AS n FROM names")[0]["n"]
        ready = by_state.get("ready", {"count": 0, "bytes": 0})
        return {
            "artifacts": sum(v["count"] for v in by_state.values()),
            "by_state": by_state,
            "ready_bytes": ready["bytes"],
            "max_bytes": self.max_bytes,
            "names": names,
        }

    def delete(self, artifact_id: str, version: int) -> None:
        """Delete one version (its file, row, inputs, tags and the names pointing at it).

        Conflict while it builds, or while an alias points at it (catalog.registry).
        """
        info = self.index.get(artifact_id, version)
        if info.state == "building":
            raise Conflict(f"artifact {info.uri} is still building")
        self.remove(artifact_id, version)

    def remove(self, artifact_id: str, version: int) -> None:
        """Delete a version's rows, then its file (a crash between leaves an orphan file,
        which recovery removes).

        All under the store's lock: once the row is gone its version number is free,
        and a build of the same artifact that took it must not lose its file to this
        unlink; nor may a publish into the artifact's directory lose the directory
        to this rmdir (publish renames under the lock too).
        """
        path = self.files.path_of(artifact_id, version)
        with self.db.lock:
            with self.db.tx() as db:
                parts = rows_of(db, artifact_id, version)
                made = db.execute(
                    "SELECT created_at FROM artifacts WHERE artifact_id=? AND version=?",
                    (artifact_id, version),
                ).fetchone()
                delete_version(db, artifact_id, version)
            remove_published(path)
            self.parts.delete(parts)
            if made is not None:  # its copies for data nodes
                shared_renditions.delete(self.parts.store, artifact_id, version, made[0])

    def touch(self, artifact_id: str, version: int, *, at: float | None = None) -> None:
        """Record a use of a version at ``at`` (default: now); gc's idleness counts from it.

        Reads record their use themselves; a use is never moved back in time.
        """
        self.index.get(artifact_id, version)
        self.db.execute(
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
        rows = self.db.query(
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
        """The versions gc and eviction never collect (see :data:`NEEDED`), plus those
        being read; with ``collect_latest`` the current cell outputs are not roots."""
        with self.db.reading() as db:
            rows = db.execute(NEEDED, (0 if collect_latest else 1,)).fetchall()
            return {(r[0], r[1]) for r in rows} | self.leases.held()

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
        rows = self.db.query(
            "SELECT artifact_id, version, state, byte_size, created_at, last_read_at "
            "FROM artifacts WHERE state != 'building'"
        )
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
        with self.db.lock:
            total = self.db.query(
                "SELECT COALESCE(SUM(byte_size), 0) FROM artifacts WHERE state != 'building'"
            )[0][0]
            if total <= cap:
                return []
            victims, _ = self._plan(now=time.time(), target_bytes=cap, keep=keep)
            for c in victims:
                self.remove(c.artifact_id, c.version)
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
        variable, see :data:`NEEDED`) and what it depends on; nor anything used
        (created or read) within ``min_idle_s``. Of the rest go: failed versions
        older than ``failed_older_than_s``, every superseded version, ready ones
        unused for ``max_idle_s`` (None: no idle limit), then the least recently
        used until the store holds at most 80% of ``max_bytes`` (None: the
        store's cap, where 0 means none; an explicit 0 collects all it may).
        ``dry_run`` reports the same list and deletes nothing. ``now`` is the
        clock gc measures idleness against. Part prefixes no version or build owns and
        unchanged for ``failed_older_than_s`` go too (:meth:`Parts.sweep_orphans`).
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
        orphans: list[str] = []
        cap = self.max_bytes if max_bytes is None else max_bytes
        target = None if max_bytes is None and not cap else cap * GC_HEADROOM_PERCENT // 100
        with self.db.lock:
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
                    self.remove(c.artifact_id, c.version)
            with contextlib.suppress(OSError), self.db.tx() as db:  # a storage that is away
                orphans = self.parts.sweep_orphans(
                    db, failed_older_than_s, now=now, dry_run=dry_run
                )
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
            "orphan_part_prefixes": orphans,
        }
