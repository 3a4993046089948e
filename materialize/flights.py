"""Single flight: at most one build per provenance, joined by every request that asks meanwhile.

The :class:`Flights` table holds the build in flight of each provenance. Its
lock is the materializer's one lock: the materializer counts hits and misses
under it too, and re-checks the store under it before a request becomes the
leader of a new build, so two identical requests never build twice.
"""

from __future__ import annotations

import threading

from catalog import Build
from executors import RunContext
from foundation import Busy, Settings


class InFlight:
    """The single build of one provenance, as seen by requests that arrive meanwhile."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.build: Build | None = None
        self.error: BaseException | None = None
        self.ctx: RunContext | None = None


class Flights:
    """The builds in flight by provenance, bounded by the build threads and their queue."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lock = threading.Lock()
        self.closed = False
        self._table: dict[str, InFlight] = {}

    def get(self, provenance: str) -> InFlight | None:
        """The build in flight for ``provenance`` (call with :attr:`lock` held)."""
        return self._table.get(provenance)

    def lead(self, provenance: str) -> InFlight:
        """Enter a new build of ``provenance`` (call with :attr:`lock` held).

        Refused with :class:`Busy` when the build threads are busy and the queue is
        full. Requests that join a build in flight are never refused.
        """
        most = self.settings.build_threads + self.settings.build_queue
        if len(self._table) >= most:
            raise Busy(
                f"too many builds: {self.settings.build_threads} running and "
                f"{self.settings.build_queue} waiting (QUIVER_BUILD_THREADS, "
                "QUIVER_BUILD_QUEUE); retry later",
                detail={
                    "building": len(self._table),
                    "build_threads": self.settings.build_threads,
                    "build_queue": self.settings.build_queue,
                },
            )
        flight = self._table[provenance] = InFlight()
        return flight

    def has(self, provenance: str) -> bool:
        with self.lock:
            return provenance in self._table

    def forget(self, provenance: str) -> None:
        with self.lock:
            self._table.pop(provenance, None)

    def of_version(self, artifact_id: str, version: int) -> InFlight | None:
        """The flight whose build writes that version, if one does."""
        with self.lock:
            return next(
                (
                    f
                    for f in self._table.values()
                    if f.build is not None
                    and (f.build.artifact_id, f.build.version) == (artifact_id, version)
                ),
                None,
            )

    def builds(self) -> list[Build]:
        with self.lock:
            return [f.build for f in self._table.values() if f.build is not None]

    def close(self) -> list[InFlight]:
        """Refuse new builds from now on; the flights still running."""
        with self.lock:
            self.closed = True
            return list(self._table.values())
