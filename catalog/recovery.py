"""Recovery on open: no ``ready`` row without its complete file.

Rows of dead builds (their owner's lock is free, :mod:`catalog.owners`) become
``failed``; their temp files and any orphan published file are removed; a
ready row whose file is missing or truncated is marked failed, so the artifact
is rebuilt rather than served. Build prefixes in the part storage that nothing
owns and that have not changed for an hour (:data:`ORPHAN_PARTS_GRACE_S`) are removed.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from catalog import owners, shared_renditions
from catalog.database import Database
from catalog.files import Files
from catalog.partitioned import Parts, rows_of
from catalog.shared_renditions import version_dir
from foundation import pid_alive


def _owner_alive(owners_dir: Path, owner: str | None, pid: int | None) -> bool:
    """Whether the process writing a build (or a temp file) still runs."""
    if owner:
        return owners.alive(owners_dir, owner)
    # Written by an earlier version: only a pid to go by (a reused one fools it).
    return pid_alive(pid) and pid != os.getpid()


ORPHAN_PARTS_GRACE_S = 3600.0
"""How long a build prefix nothing owns must be unchanged before recovery removes it."""


def recover(
    db: Database,
    files: Files,
    owners_dir: Path,
    parts: Parts,
    *,
    parts_grace_s: float = ORPHAN_PARTS_GRACE_S,
) -> dict[str, int]:
    """Restore consistency after a crash; returns what was repaired."""
    report = {
        "failed_builds": 0,
        "temp_removed": 0,
        "missing_files": 0,
        "orphans": 0,
        "parts_removed": 0,
        "orphan_parts": 0,
        "renditions_removed": 0,
    }
    now = time.time()
    with db.tx() as conn:
        rows = conn.execute(
            "SELECT artifact_id, version, build_pid, build_owner FROM artifacts "
            "WHERE state='building'"
        ).fetchall()
        for r in rows:
            if _owner_alive(owners_dir, r["build_owner"], r["build_pid"]):
                continue
            conn.execute(
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
                files.path_of(r["artifact_id"], r["version"]).unlink()
            with contextlib.suppress(OSError):  # the parts it wrote (a later open tries again)
                report["parts_removed"] += parts.sweep(r["artifact_id"], r["version"])
        for r in conn.execute(
            "SELECT artifact_id, version, byte_size, part_count FROM artifacts WHERE state IN "
            "('ready', 'superseded')"
        ).fetchall():
            path = files.path_of(r["artifact_id"], r["version"])
            if r["part_count"]:  # a partitioned version: its parts, not a file
                try:
                    ok = parts.whole(rows_of(conn, r["artifact_id"], r["version"]))
                except OSError:  # the storage does not answer: reads check again
                    continue
            else:
                try:
                    ok = path.stat().st_size == r["byte_size"]
                except FileNotFoundError:
                    ok = False
            if not ok:
                conn.execute(
                    "UPDATE artifacts SET state='failed', error=? "
                    "WHERE artifact_id=? AND version=?",
                    ("file missing or truncated", r["artifact_id"], r["version"]),
                )
                report["missing_files"] += 1
        with contextlib.suppress(OSError):  # the storage does not answer: a later open tries
            report["orphan_parts"] = len(parts.sweep_orphans(conn, parts_grace_s, now=now))
        servable = {
            (r[0], version_dir(r[0], r[1], r[2]))
            for r in conn.execute(
                "SELECT artifact_id, version, created_at FROM artifacts WHERE state IN "
                "('ready', 'superseded')"
            )
        }
        known = {
            (r[0], r[1])
            for r in conn.execute(
                "SELECT artifact_id, version FROM artifacts WHERE state IN "
                "('ready', 'superseded', 'building')"
            )
        }
    for tmp in [*files.tmp_dir.glob("*.arrow"), *files.tmp_dir.glob("*.parquet")]:
        pieces = tmp.name.rsplit(".", 2)
        writer = pieces[-2] if len(pieces) == 3 else ""
        if owners.is_token(writer):
            live = _owner_alive(owners_dir, writer, None)
        else:
            live = writer.isdigit() and _owner_alive(owners_dir, None, int(writer))
        if not live:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            report["temp_removed"] += 1
    published = files.artifacts_dir.glob("*/v*.arrow")
    for path in [*published, *files.artifacts_dir.glob("*/v*.parquet")]:  # and renditions
        try:
            key = (path.parent.name, int(path.stem[1:]))
        except ValueError:
            continue
        if key not in known:
            path.unlink(missing_ok=True)
            report["orphans"] += 1
    with contextlib.suppress(OSError):  # the storage does not answer: the next open tries
        report["renditions_removed"] = shared_renditions.sweep(parts.store, servable)
    owners.sweep(owners_dir)
    return report
