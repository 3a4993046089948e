"""A build's file as it grows: what a follower of the build reads its batches from."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


class GrowingFile:
    """A read-only file object over a build's temp file that waits for more bytes.

    ``read(n)`` blocks until ``n`` bytes were written or the build ended, so an
    Arrow IPC stream reader on top of it follows the build batch by batch.
    """

    def __init__(self, wait_for: Callable[[int | None], None], path: Path) -> None:
        self._wait_for = wait_for
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._f.seek(8)  # skip the IPC file magic: a stream follows it
        self._pos = 8
        self.closed = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._pos - 8

    def read(self, n: int = -1) -> bytes:
        want = self._pos + n if n is not None and n >= 0 else None
        self._wait_for(want)
        data = self._f.read(n if n is not None and n >= 0 else -1)
        self._pos += len(data)
        return data

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._f.close()
