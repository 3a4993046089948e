"""Who writes a build: a token per open store, alive exactly while its process holds a lock.

A build row and its temporary file name the process writing them, so that
recovery can fail the builds of a process that is gone. A bare pid cannot tell:
pids are reused (after a restart, in another container on the same volume, on a
busy machine), and a dead build whose pid now belongs to someone else would stay
``building`` for ever. Each open store therefore holds an exclusive ``flock`` on
``owners/<token>.lock`` for its whole life; the kernel drops that lock when the
process ends, however it ends. An owner is alive while its lock is held.

``flock`` rather than POSIX ``fcntl`` locks, on purpose: a ``flock`` belongs to
the open file description, so opening and closing the same file elsewhere in the
process leaves it in place (a POSIX lock would be dropped by any close — the trap
that once cost the store its SQLite locks), and a second open in the same
process conflicts with it like any other process's would.
"""

from __future__ import annotations

import fcntl
import os
import re
import uuid
from pathlib import Path

_TOKEN = re.compile(r"[0-9]+-[0-9a-f]{12}")


def is_token(text: str) -> bool:
    """Whether ``text`` is an owner token (``<pid>-<12 hex>``), not a bare pid."""
    return _TOKEN.fullmatch(text) is not None


class Owner:
    """This process's claim on a store directory, held until :meth:`close`."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.token = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._path = directory / f"{self.token}.lock"
        # Locked before it gets its name: a checker never sees an unlocked live owner.
        pending = directory / f".{self.token}.lock"
        self._fd: int | None = os.open(pending, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.replace(pending, self._path)
        except BaseException:
            os.close(self._fd)
            pending.unlink(missing_ok=True)
            raise

    def close(self) -> None:
        """Give up the claim: from now on this owner counts as gone. Idempotent."""
        if self._fd is None:
            return
        self._path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


def alive(directory: Path, token: str) -> bool:
    """Whether the owner ``token`` of ``directory`` still runs; a gone owner's file goes.

    Checkers take a *shared* lock, so two of them never mistake each other for
    the owner, whose lock is exclusive.
    """
    path = directory / f"{token}.lock"
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        path.unlink(missing_ok=True)
        return False
    finally:
        os.close(fd)


def sweep(directory: Path) -> int:
    """Remove the lock files of owners that are gone; how many.

    A half-made one (``.<token>.lock``: its process died in the microseconds
    between creating and naming it) is left: telling it from one being made
    right now would need a lock of its own, for an empty file.
    """
    return sum(
        not alive(directory, path.stem)
        for path in directory.glob("*.lock")
        if not path.name.startswith(".")
    )
