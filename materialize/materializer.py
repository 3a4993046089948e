"""``materialize(inputs, transform) -> artifact``: the library-level core.

Planning (:mod:`materialize.plan`) resolves the inputs and hashes the
provenance. A ready artifact with that provenance is a hit: no work. On a miss
exactly one build runs per provenance (single flight, :mod:`materialize.flights`).
The executor validates and starts in the caller's thread, so bad params fail
the request itself; the batches are written in a build thread
(:mod:`materialize.builds`), and any number of readers can follow the build as
it grows.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from catalog import ArtifactInfo, ArtifactStore, Build, Warehouses, validate_name
from executors import Registry
from foundation import (
    BuildFailed,
    Conflict,
    QuiverError,
    Settings,
    Unavailable,
)
from materialize.builds import Builds
from materialize.flights import Flights
from materialize.plan import Plan, Planner
from materialize.request import MaterializeRequest, MaterializeResult, Transform


def _hit_result(plan: Plan, info: ArtifactInfo) -> MaterializeResult:
    return MaterializeResult(
        hit=True,
        state="ready",
        artifact_id=info.artifact_id,
        version=info.version,
        provenance=plan.provenance,
        input_versions=plan.input_versions,
        info=info,
    )


class Materializer:
    """Resolves, hashes, caches and builds. One per process; thread-safe."""

    def __init__(
        self,
        settings: Settings,
        store: ArtifactStore,
        registry: Registry,
        warehouses: Warehouses | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.warehouses = warehouses or Warehouses()
        self.planner = Planner(
            settings, store, registry, self.warehouses, self._scan_table, self._cached_scan_table
        )
        self._flights = Flights(settings)
        self._lock = self._flights.lock  # the one lock: the flights and the counters
        self.counters: dict[str, int] = {"hits": 0, "misses": 0, "builds_failed": 0}
        self._builds = Builds(settings, store, self._flights, self.counters)

    # --- planning -----------------------------------------------------------
    def plan(self, request: MaterializeRequest, *, cached_only: bool = False) -> Plan:
        """Resolve inputs and hash the provenance (:meth:`Planner.plan`)."""
        return self.planner.plan(request, cached_only=cached_only)

    def _scan_table(self, uri: str, snapshot_id: int | None) -> pa.Table:
        # A table read by another executor is materialized as a plain scan first:
        # cached, shared, and memory-mapped rather than held in RAM.
        res = self.materialize(_plain_scan(uri, snapshot_id), wait=True)
        return self.store.open_table(res.artifact_id, res.version)

    def _cached_scan_table(self, uri: str, snapshot_id: int | None) -> pa.Table | None:
        # That plain scan only if it is built: a hit, else None and nothing started.
        request = _plain_scan(uri, snapshot_id)
        plan = self.plan(request)
        info = self.store.find_ready(plan.provenance)
        if info is None or not self.store.verify(info):
            return None
        self._hit(plan, info)
        return self.store.open_table(info.artifact_id, info.version)

    def explain(self, request: MaterializeRequest) -> dict[str, Any]:
        """Would this request hit? With which input versions and provenance?"""
        plan = self.plan(request)
        ready = None if request.refresh else self.store.find_ready(plan.provenance)
        building = self._flights.has(plan.provenance)
        return {
            "would_hit": ready is not None,
            "building": building,
            "artifact_uri": ready.uri if ready else None,
            "provenance_hash": plan.provenance,
            "executor": plan.executor.name,
            "params": plan.identity,
            "input_versions": plan.input_versions,
            "inputs": [
                {"input_uri": v.uri, "version": v.version, "artifact_uri": v.version}
                if v.artifact_id
                else {"input_uri": v.uri, "version": v.version}
                for v in plan.versions
            ],
        }

    # --- materializing ------------------------------------------------------
    def cached_hit(self, request: MaterializeRequest) -> MaterializeResult | None:
        """The hit for ``request`` if it is one and answering it touches nothing slow, else None.

        For callers on an event loop: it plans from memory (plus the table's
        metadata-pointer lookup and the store's index), never builds, waits,
        names, writes or raises for bad input — on None, call :meth:`materialize`,
        which gives the full answer or the precise error. Never waiting means: a
        lock another thread holds (the store's during a gc, an upload's fsynced
        publish or a write waiting on another process; this materializer's while
        a miss re-checks the store under it) is a None, and so is a hit whose use
        is due to be recorded for gc (a write; the full path makes it).
        """
        if request.refresh or request.name is not None:
            return None
        store_lock = self.store.lock  # the store's one lock: every read of its index takes it
        if not store_lock.acquire(blocking=False):
            return None
        try:
            plan = self.plan(request, cached_only=True)
            info = self.store.find_ready(plan.provenance)
            if info is None or not self._intact(info) or not _use_recorded(info):
                return None
        except Exception:
            return None
        finally:
            store_lock.release()
        if not self._lock.acquire(blocking=False):
            return None
        try:
            self.counters["hits"] += 1
        finally:
            self._lock.release()
        return _hit_result(plan, info)

    def _intact(self, info: ArtifactInfo) -> bool:
        """:meth:`ArtifactStore.verify` without its write: a file that is not whole is left
        to the full path, which marks it failed."""
        return self.store.intact(info)

    def materialize(self, request: MaterializeRequest, *, wait: bool = False) -> MaterializeResult:
        """Hit, join the build in flight, or start one. ``wait`` blocks until it ends."""
        if request.name is not None:
            validate_name(request.name)
        plan = self.plan(request)
        result = self._materialize(plan, request)
        if wait and result.build is not None:
            result.info = result.build.wait()
            result.state = result.info.state
        if request.name is not None and result.info is not None and result.info.state == "ready":
            result.name_uri = self.store.set_name(
                request.name, result.artifact_id, result.version
            ).uri
        elif request.name is not None and result.build is not None and result.info is None:
            self._name_when_ready(request.name, result.build)
        return result

    def _name_when_ready(self, name: str, build: Build) -> None:
        def point() -> None:
            with contextlib.suppress(Exception):  # a failed build names nothing
                info = build.wait()
                self.store.set_name(name, info.artifact_id, info.version)

        threading.Thread(target=point, name="quiver-name", daemon=True).start()

    def _hit(self, plan: Plan, info: ArtifactInfo) -> MaterializeResult:
        with self._lock:
            self.counters["hits"] += 1
        self.store.note_use(info.artifact_id, info.version)  # gc's idleness counts hits
        return _hit_result(plan, info)

    def _following(self, plan: Plan, build: Build) -> MaterializeResult:
        return MaterializeResult(
            hit=False,
            state="ready" if build.info is not None else "building",
            artifact_id=build.artifact_id,
            version=build.version,
            provenance=plan.provenance,
            input_versions=plan.input_versions,
            info=build.info,
            build=build,
        )

    def _materialize(self, plan: Plan, request: MaterializeRequest) -> MaterializeResult:
        while True:
            info = None
            if not request.refresh:
                info = self.store.find_ready(plan.provenance)
                if info is not None and self.store.verify(info):
                    return self._hit(plan, info)
            with self._lock:
                if self._flights.closed:
                    raise Unavailable("the service is shutting down")
                flight = self._flights.get(plan.provenance)
                leader = flight is None
                if leader:
                    # Re-check under the lock: a build may have just published.
                    info = None if request.refresh else self.store.find_ready(plan.provenance)
                    if info is None:
                        flight = self._flights.lead(plan.provenance)
                        self.counters["misses"] += 1
            if info is not None and leader:
                return self._hit(plan, info)
            if leader:
                return self._following(plan, self._builds.start(plan, request.name, flight))
            flight.ready.wait()
            if flight.build is not None:
                return self._following(plan, flight.build)
            if isinstance(flight.error, QuiverError):
                raise flight.error
            # The leader failed before building anything unexpected: try ourselves.
            continue

    # --- reading ------------------------------------------------------------
    def open(self, result: MaterializeResult) -> pa.RecordBatchReader:
        """Stream the result: follow its build, or read the published file."""
        if result.build is not None and not result.build.done:
            return result.build.follow()
        return self.open_artifact(result.artifact_id, result.version)

    def open_artifact(self, artifact_id: str, version: int) -> pa.RecordBatchReader:
        """A ready artifact's batches, or a build in progress followed as it grows."""
        live = self._flights.of_version(artifact_id, version)
        if live is not None and live.build is not None:
            # Outside the lock: follow() may wait for the build, whose publish
            # needs this lock (_forget) before it wakes anyone.
            return live.build.follow()
        try:
            return self.store.open(artifact_id, version)
        except Conflict:  # not ready: a failed one says why (looked up only then)
            info = self.store.get(artifact_id, version)
            if info.state == "failed":
                raise BuildFailed(
                    f"artifact {info.uri} failed: {info.error}", detail={"error": info.error}
                ) from None
            raise

    def read_small(self, artifact_id: str, version: int, max_bytes: int) -> pa.Table | None:
        """A ready artifact of at most ``max_bytes``, read whole; None for a build in
        progress, a larger or partitioned artifact, or one not ready
        (:meth:`open_artifact` then streams it, or says why it cannot)."""
        live = self._flights.of_version(artifact_id, version)
        if live is not None and live.build is not None:
            return None
        try:
            return self.store.read_small(artifact_id, version, max_bytes)
        except Conflict:
            return None

    def cancel(self, artifact_id: str, version: int, *, wait: float = 0.0) -> bool:
        """Stop the build of that version if this process is running it.

        Its executor is told through :meth:`RunContext.cancel` (a DuckDB query
        is interrupted at once), the build fails with a "cancelled" error,
        its temporary file goes and nothing is published; followers of the
        build end with :class:`BuildFailed`. A later request for the same
        provenance builds again. Requests that joined the build share its fate.

        Waits up to ``wait`` seconds for the build to end. False when no such
        build is running here (unknown, finished, or not a materialize build).
        """
        flight = self._flights.of_version(artifact_id, version)
        if flight is None or flight.build is None or flight.ctx is None or flight.build.done:
            return False
        flight.ctx.cancel()
        if wait > 0:
            with contextlib.suppress(QuiverError):  # a cancelled build fails: that is the point
                flight.build.wait(wait)
        return True

    def wait_built(self, artifact_id: str, version: int, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the build of that version here to end,
        however it ends; at once when none runs here. The caller reads the outcome from
        the store: a server-side wait in place of a client polling the status."""
        flight = self._flights.of_version(artifact_id, version)
        if flight is None or flight.build is None or timeout <= 0:
            return
        with contextlib.suppress(QuiverError):  # failed or still running: the row says which
            flight.build.wait(timeout)

    def building(self) -> list[Build]:
        return self._flights.builds()

    def close(self, *, cancel: bool = False, timeout: float | None = None) -> None:
        """Stop taking requests; let running builds finish (or cancel them), for a while
        (:meth:`Builds.close`: how long, and what becomes of a build that does not stop)."""
        self._builds.close(cancel=cancel, timeout=timeout)


USE_RECORDED_WITHIN_S = 60.0
"""A hit on a version whose last recorded use is older than this records one (a write):
``ArtifactStore.note_use``'s interval, so the full path then writes it."""


def _plain_scan(uri: str, snapshot_id: int | None) -> MaterializeRequest:
    params: dict[str, Any] = {}
    if snapshot_id is not None:
        params["snapshot_id"] = snapshot_id
    return MaterializeRequest(inputs=[uri], transform=Transform(executor="scan@v1", params=params))


def _use_recorded(info: ArtifactInfo) -> bool:
    used = max(info.created_at or 0.0, info.last_read_at or 0.0)
    return time.time() - used < USE_RECORDED_WITHIN_S


def materialize(
    materializer: Materializer,
    inputs: Sequence[str],
    executor: str,
    params: dict[str, Any] | None = None,
    **kwargs: Any,
) -> MaterializeResult:
    """Convenience: build the request from parts and wait for the result."""
    request = MaterializeRequest(
        inputs=list(inputs), transform=Transform(executor=executor, params=params or {}), **kwargs
    )
    return materializer.materialize(request, wait=True)
