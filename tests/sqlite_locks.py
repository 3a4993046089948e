"""What SQLite locks a process holds on a database, as Linux's ``/proc/locks`` lists them.

A connection in WAL mode keeps a shared POSIX lock on the database file and on
its ``-shm`` WAL index for as long as it is open. Another process that finds no
such lock at its own close believes it is the last connection: it checkpoints
and deletes the WAL under the first one's feet.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

HAVE_PROC_LOCKS = os.path.exists("/proc/locks")


def _inodes(db: Path) -> dict[int, str]:
    found: dict[int, str] = {}
    for suffix in ("", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            found[os.stat(f"{db}{suffix}").st_ino] = db.name + suffix
    return found


def sqlite_locks(pid: int, db: Path) -> set[str]:
    """Which of ``db`` and ``db-shm`` (by file name) ``pid`` holds a POSIX lock on."""
    inodes = _inodes(db)
    held: set[str] = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[1] != "POSIX":  # "->" lines are waiters, not holders
            continue
        owner, device_inode = fields[4], fields[5]
        inode = int(device_inode.rsplit(":", 1)[1])
        if owner == str(pid) and inode in inodes:
            held.add(inodes[inode])
    return held


def deleted_files(pid: int) -> list[str]:
    """The files ``pid`` has open that were unlinked meanwhile (an unlinked WAL, say)."""
    gone = []
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.endswith(" (deleted)"):
                gone.append(target)
    return gone
