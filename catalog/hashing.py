"""Hashing an artifact's bytes while they are written (content-addressed uploads)."""

from __future__ import annotations

import hashlib
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

CHUNK_BYTES = 1 << 20
_CHUNKED_SHA256_PREFIX = b"quiver-chunked-sha256-v1\0"
_hash_pool: ThreadPoolExecutor | None = None
_hash_pool_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _hash_pool
    with _hash_pool_lock:
        if _hash_pool is None:
            _hash_pool = ThreadPoolExecutor(
                max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="quiver-sha256"
            )
        return _hash_pool


def _sha256_of(pieces: list[memoryview]) -> bytes:
    h = hashlib.sha256()
    for piece in pieces:
        h.update(piece)  # releases the GIL for pieces over 2 KiB
    return h.digest()


def chunked_sha256(data: bytes | memoryview) -> str:
    """The digest :class:`ChunkedSha256` computes, in one call (for checks and tests)."""
    h = ChunkedSha256()
    view = memoryview(data)
    h.update(view, view.nbytes)
    return h.hexdigest()


class ChunkedSha256:
    """A sha256 tree over a byte sequence, hashed in parallel while it is written.

    The bytes are cut into chunks of :data:`CHUNK_BYTES` (1 MiB) by position —
    however they arrive — and each chunk is hashed with sha256 on a shared
    thread pool (hashlib releases the GIL, so chunks hash on several cores while
    the writer goes on). The digest is::

        sha256(b"quiver-chunked-sha256-v1\\0" + total length (8 bytes, big endian)
               + sha256(chunk 0) + sha256(chunk 1) + ...)

    so it depends only on the bytes. Data is referenced, not copied, while it
    waits; at most ``max_pending`` bytes of chunks are in flight at a time.
    """

    def __init__(self, max_pending: int = 64 * CHUNK_BYTES) -> None:
        self._pieces: list[memoryview] = []
        self._fill = 0
        self._total = 0
        self._futures: deque[Future[bytes]] = deque()
        self._digests: list[bytes] = []
        self._max_futures = max(1, max_pending // CHUNK_BYTES)
        self._done: str | None = None

    def update(self, data: Any, size: int) -> None:
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        pos = 0
        while pos < size:
            take = min(CHUNK_BYTES - self._fill, size - pos)
            self._pieces.append(view[pos : pos + take])
            self._fill += take
            pos += take
            if self._fill == CHUNK_BYTES:
                self._submit()
        self._total += size

    def _submit(self) -> None:
        pieces, self._pieces, self._fill = self._pieces, [], 0
        self._futures.append(_pool().submit(_sha256_of, pieces))
        while len(self._futures) > self._max_futures:
            self._digests.append(self._futures.popleft().result())

    def hexdigest(self) -> str:
        """Wait for every chunk and return the digest (idempotent)."""
        if self._done is None:
            if self._pieces:
                self._submit()
            while self._futures:
                self._digests.append(self._futures.popleft().result())
            top = hashlib.sha256(_CHUNKED_SHA256_PREFIX)
            top.update(self._total.to_bytes(8, "big"))
            for digest in self._digests:
                top.update(digest)
            self._done = top.hexdigest()
        return self._done

    def stop(self) -> None:
        """Drop what is pending (an abandoned build)."""
        for future in self._futures:
            future.cancel()
        self._futures.clear()
        self._pieces = []


class HashingFile:
    """A write-only raw file for ``pa.PythonFile`` that also hashes what it writes."""

    def __init__(self, path: Path) -> None:
        self._f = open(path, "wb", buffering=0)  # noqa: SIM115 - closed by close()
        self._pos = 0
        self.hasher = ChunkedSha256()
        self.closed = False

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def write(self, data: Any) -> int:
        view = memoryview(data)
        size = view.nbytes
        self.hasher.update(data, size)
        done = 0
        while done < size:  # a raw write may be short
            done += self._f.write(view[done:])
        self._pos += size
        return size

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return self._f.fileno()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._f.close()
