"""``materialize(inputs, transform) -> artifact``: the library-level core.

1. Resolve every input to a version: a table to its current (or pinned)
   snapshot, an artifact URI to itself, a name to what it points at.
2. Provenance = sha256 over the executor, its canonical params identity and
   the (input, version) pairs (sorted unless the executor's result depends on
   input order, as ``sql@v1``'s does: it binds inputs by position).
3. A ready artifact with that provenance is a hit: no work.
4. On a miss exactly one build runs per provenance (single flight). The
   executor validates and starts in the caller's thread, so bad params fail
   the request itself; the batches are written in a build thread, and any
   number of readers can follow the build as it grows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from catalog.store import ArtifactInfo, ArtifactStore, Build, InputVersion
from catalog.uris import ArtifactRef, NameRef, TableRef, artifact_uri, parse_uri, validate_name
from catalog.warehouse import Warehouses
from executors import Executor, Registry, ResolvedInput, RunContext
from quiver.build_threads import BuildThreads
from quiver.errors import BuildFailed, Busy, Conflict, InvalidArgument, QuiverError, Unavailable
from quiver.settings import Settings

log = logging.getLogger(__name__)


class _NotCached(Exception):
    """Planning would have to open a catalog or load table metadata (see ``cached_only``)."""


class Transform(BaseModel):
    model_config = ConfigDict(extra="forbid")

    executor: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class MaterializeRequest(BaseModel):
    """The body of ``POST /v1/materialize`` and of the Flight ``materialize`` action."""

    model_config = ConfigDict(extra="forbid")

    inputs: list[str]
    transform: Transform
    name: str | None = None
    mode: str = "stream"
    refresh: bool = False
    stream_timeout_seconds: float | None = None


@dataclass(slots=True)
class Plan:
    """A request resolved and validated, ready to hit the cache or build."""

    executor: Executor
    params: BaseModel
    identity: Any
    inputs: list[ResolvedInput]
    versions: list[InputVersion]
    provenance: str

    @property
    def input_versions(self) -> dict[str, str]:
        return {v.uri: v.version for v in self.versions}


@dataclass(slots=True)
class MaterializeResult:
    hit: bool
    state: str
    artifact_id: str
    version: int
    provenance: str
    input_versions: dict[str, str]
    info: ArtifactInfo | None = None
    build: Build | None = None
    name_uri: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def artifact_uri(self) -> str:
        return artifact_uri(self.artifact_id, self.version)

    @property
    def schema(self) -> pa.Schema | None:
        if self.info is not None:
            return self.info.schema
        return self.build.schema if self.build is not None else None

    def to_json(self) -> dict[str, Any]:
        info = self.info
        schema = self.schema
        return {
            "hit": self.hit,
            "state": self.state,
            "artifact_uri": self.artifact_uri,
            "artifact_id": self.artifact_id,
            "version": self.version,
            "provenance_hash": self.provenance,
            "input_versions": self.input_versions,
            "row_count": info.row_count if info else None,
            "byte_size": info.byte_size if info else None,
            "columns": schema.names if schema is not None else None,
            "name_uri": self.name_uri,
            "error": info.error if info and info.state == "failed" else None,
        }


class _InFlight:
    """The single build of one provenance, as seen by requests that arrive meanwhile."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.build: Build | None = None
        self.error: BaseException | None = None
        self.ctx: RunContext | None = None


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
        self._lock = threading.Lock()
        self._inflight: dict[str, _InFlight] = {}
        self._threads = BuildThreads(settings.build_threads)
        self._closed = False
        self.counters: dict[str, int] = {"hits": 0, "misses": 0, "builds_failed": 0}

    # --- planning -----------------------------------------------------------
    def _resolve_artifact(self, ref: ArtifactRef | NameRef) -> tuple[ResolvedInput, InputVersion]:
        if isinstance(ref, NameRef):
            target = self.store.get_name(ref.name)
            aid, ver = target.artifact_id, target.version
        else:
            aid, ver = ref.artifact_id, ref.version
        info = self.store.get(aid, ver)
        if info.state not in ("ready", "superseded"):
            raise Conflict(
                f"input {ref.uri} is not ready (state={info.state})",
                detail={"input": ref.uri, "state": info.state},
            )
        uri = artifact_uri(aid, ver)
        resolved = ResolvedInput(
            uri=ref.uri,
            kind="artifact",
            version=uri,
            open_table=lambda: self.store.open_table(aid, ver),
            open_reader=lambda: self.store.open(aid, ver),
            extra={"artifact_id": aid, "version": ver, "schema": info.schema},
        )
        return resolved, InputVersion(ref.uri, uri, aid, ver)

    def _resolve_table(
        self, ref: TableRef, snapshot_id: int | None, *, cached_only: bool = False
    ) -> tuple[ResolvedInput, InputVersion]:
        if cached_only:
            cached = self.warehouses.resolve_cached(ref, snapshot_id)
            if cached is None:
                raise _NotCached
            table = cached
        else:
            table = self.warehouses.resolve(ref, snapshot_id)
        uri = ref.uri

        def open_reader() -> pa.RecordBatchReader:
            scan = self.registry.get("scan@v1")
            return scan.run([resolved], scan.params_model(), RunContext(self.settings))

        def open_table() -> pa.Table:
            # A table read by another executor is materialized as a plain scan first:
            # cached, shared, and memory-mapped rather than held in RAM.
            params: dict[str, Any] = {}
            if snapshot_id is not None:
                params["snapshot_id"] = snapshot_id
            res = self.materialize(
                MaterializeRequest(
                    inputs=[uri], transform=Transform(executor="scan@v1", params=params)
                ),
                wait=True,
            )
            return self.store.open_table(res.artifact_id, res.version)

        resolved = ResolvedInput(
            uri=uri,
            kind="table",
            version=table.version,
            open_table=open_table,
            open_reader=open_reader,
            table=table,
            snapshot_id=table.snapshot_id,
            extra={"table_uuid": table.table_uuid},
        )
        return resolved, InputVersion(uri, table.version)

    def plan(self, request: MaterializeRequest, *, cached_only: bool = False) -> Plan:
        """Resolve inputs and hash the provenance. ``cached_only`` raises :class:`_NotCached`
        rather than open a catalog or load table metadata."""
        executor = self.registry.get(request.transform.executor)
        if not request.inputs and executor.name == "scan@v1":
            raise InvalidArgument("scan@v1 transform requires exactly one input")
        executor.check_inputs(request.inputs)
        params = self.registry.parse_params(executor, request.transform.params)
        identity = executor.identity(params)
        snapshot_id = getattr(params, "snapshot_id", None)
        inputs: list[ResolvedInput] = []
        versions: list[InputVersion] = []
        for raw in request.inputs:
            ref = parse_uri(raw)
            if isinstance(ref, TableRef):
                resolved, version = self._resolve_table(ref, snapshot_id, cached_only=cached_only)
            else:
                resolved, version = self._resolve_artifact(ref)
            inputs.append(resolved)
            versions.append(version)
        keyed = [
            [v.uri, v.version, r.extra.get("table_uuid", "")]
            for v, r in zip(versions, inputs, strict=True)
        ]
        if not executor.ordered_inputs:
            keyed.sort()
        blob = json.dumps(
            {"executor": executor.name, "identity": identity, "inputs": keyed},
            sort_keys=True,
            separators=(",", ":"),
            default=str,
        )
        provenance = hashlib.sha256(blob.encode()).hexdigest()
        return Plan(executor, params, identity, inputs, versions, provenance)

    def explain(self, request: MaterializeRequest) -> dict[str, Any]:
        """Would this request hit? With which input versions and provenance?"""
        plan = self.plan(request)
        ready = None if request.refresh else self.store.find_ready(plan.provenance)
        with self._lock:
            building = plan.provenance in self._inflight
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
        store_lock = self.store._lock  # the store's one lock: every read of its index takes it
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
        try:
            path = self.store.path_of(info.artifact_id, info.version)
            return path.stat().st_size == info.byte_size
        except OSError:
            return False

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
                if self._closed:
                    raise Unavailable("the service is shutting down")
                flight = self._inflight.get(plan.provenance)
                leader = flight is None
                if leader:
                    # Re-check under the lock: a build may have just published.
                    info = None if request.refresh else self.store.find_ready(plan.provenance)
                    if info is None:
                        self._check_room()
                        flight = self._inflight[plan.provenance] = _InFlight()
                        self.counters["misses"] += 1
            if info is not None and leader:
                return self._hit(plan, info)
            if leader:
                return self._start_build(plan, request, flight)
            flight.ready.wait()
            if flight.build is not None:
                return self._following(plan, flight.build)
            if isinstance(flight.error, QuiverError):
                raise flight.error
            # The leader failed before building anything unexpected: try ourselves.
            continue

    def _check_room(self) -> None:
        """Refuse a new build when the build threads are busy and the queue is full
        (called under the lock). Requests that join a build in flight are never refused."""
        most = self.settings.build_threads + self.settings.build_queue
        if len(self._inflight) >= most:
            raise Busy(
                f"too many builds: {self.settings.build_threads} running and "
                f"{self.settings.build_queue} waiting (QUIVER_BUILD_THREADS, "
                "QUIVER_BUILD_QUEUE); retry later",
                detail={
                    "building": len(self._inflight),
                    "build_threads": self.settings.build_threads,
                    "build_queue": self.settings.build_queue,
                },
            )

    def _start_build(
        self, plan: Plan, request: MaterializeRequest, flight: _InFlight
    ) -> MaterializeResult:
        ctx = RunContext(self.settings)
        try:
            reader = plan.executor.run(plan.inputs, plan.params, ctx)
            previous = self.store.find_latest(plan.provenance)
            build = self.store.begin_build(
                provenance=plan.provenance,
                executor=plan.executor.name,
                params=plan.identity,
                inputs=plan.versions,
                artifact_id=previous.artifact_id if previous else None,
            )
            build.start(reader.schema)
        except BaseException as exc:
            with self._lock:
                self._inflight.pop(plan.provenance, None)
            flight.error = exc
            flight.ready.set()
            if isinstance(exc, QuiverError):
                raise
            if isinstance(exc, pa.ArrowException | OSError):
                raise InvalidArgument(
                    f"{plan.executor.name} could not start: {str(exc).splitlines()[0]}"
                ) from exc
            raise
        flight.build = build
        flight.ctx = ctx
        flight.ready.set()
        try:
            self._threads.submit(self._run_build, plan, build, reader, request.name, ctx)
        except RuntimeError:  # closed between the check and here
            self._finish_failed(plan, build, Unavailable("the service is shutting down"))
        return self._following(plan, build)

    def _run_build(
        self,
        plan: Plan,
        build: Build,
        reader: pa.RecordBatchReader,
        name: str | None,
        ctx: RunContext,
    ) -> None:
        def published() -> None:
            # Before waiters wake: the name already points at the result, and the
            # build has left the in-flight table, so whoever they are finds the
            # published artifact rather than a finished build.
            if name is not None:
                self.store.set_name(name, build.artifact_id, build.version)
            self._forget(plan)

        try:
            if build.done:  # abandoned by close() while it waited for a thread
                raise _cancelled(plan)
            build.write_reader(reader)
            if ctx.cancelled:  # the executor ended without noticing: still nothing is published
                raise _cancelled(plan)
            build.publish(before_notify=published)
        except BaseException as exc:  # recorded on the artifact
            if ctx.cancelled and not isinstance(exc, QuiverError):
                exc = _cancelled(plan)  # however the executor stopped, it was a cancel
            self._finish_failed(plan, build, exc)
        finally:
            with contextlib.suppress(Exception):
                reader.close()

    def _forget(self, plan: Plan) -> None:
        with self._lock:
            self._inflight.pop(plan.provenance, None)

    def _finish_failed(self, plan: Plan, build: Build, exc: BaseException) -> None:
        if not isinstance(exc, QuiverError):
            log.warning("build of %s failed", build.uri, exc_info=exc)
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        with self._lock:
            self.counters["builds_failed"] += 1
        if build.done:  # failed after publishing (e.g. in eviction), or abandoned by close()
            if build.info is None:
                build.fail(exc)  # abandoned: closes its file, changes nothing else
            self._forget(plan)
            return
        build.fail(
            BuildFailed(f"build of {build.uri} failed: {message}", detail=message),
            before_notify=lambda: self._forget(plan),
        )

    # --- reading ------------------------------------------------------------
    def open(self, result: MaterializeResult) -> pa.RecordBatchReader:
        """Stream the result: follow its build, or read the published file."""
        if result.build is not None and not result.build.done:
            return result.build.follow()
        return self.open_artifact(result.artifact_id, result.version)

    def open_artifact(self, artifact_id: str, version: int) -> pa.RecordBatchReader:
        """A ready artifact's batches, or a build in progress followed as it grows."""
        with self._lock:
            live = [
                f.build
                for f in self._inflight.values()
                if f.build is not None
                and (f.build.artifact_id, f.build.version) == (artifact_id, version)
            ]
        if live:
            # Outside the lock: follow() may wait for the build, whose publish
            # needs this lock (_forget) before it wakes anyone.
            return live[0].follow()
        info = self.store.get(artifact_id, version)
        if info.state == "failed":
            raise BuildFailed(
                f"artifact {info.uri} failed: {info.error}", detail={"error": info.error}
            )
        return self.store.open(artifact_id, version)

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
        with self._lock:
            flight = next(
                (
                    f
                    for f in self._inflight.values()
                    if f.build is not None
                    and (f.build.artifact_id, f.build.version) == (artifact_id, version)
                ),
                None,
            )
        if flight is None or flight.build is None or flight.ctx is None or flight.build.done:
            return False
        flight.ctx.cancel()
        if wait > 0:
            with contextlib.suppress(QuiverError):  # a cancelled build fails: that is the point
                flight.build.wait(wait)
        return True

    def building(self) -> list[Build]:
        with self._lock:
            return [f.build for f in self._inflight.values() if f.build is not None]

    def close(self, *, cancel: bool = False, timeout: float | None = None) -> None:
        """Stop taking requests; let running builds finish (or cancel them), for a while.

        Waits for the builds at most ``timeout`` seconds: by default as long as
        they take, or :data:`CANCEL_WAIT_S` when cancelling. A build still
        running then (its executor ignores the cancel) is abandoned: its row is
        marked failed, its followers wake with that failure, and nothing it
        writes later is ever published; its thread ends when the executor
        returns (the ``quiver`` commands exit without waiting for it:
        :func:`quiver.build_threads.leave`).
        """
        with self._lock:
            self._closed = True
            flights = list(self._inflight.values())
        self._threads.close()
        if cancel:
            for flight in flights:
                if flight.ctx is not None:
                    flight.ctx.cancel()
        if timeout is None and cancel:
            timeout = CANCEL_WAIT_S
        deadline = None if timeout is None else time.monotonic() + timeout
        builds = [f.build for f in flights if f.build is not None]
        for build in builds:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            with contextlib.suppress(Exception):  # a failed build is over too
                build.wait(left)
        for build in builds:
            if not build.done:
                log.warning("build of %s did not stop; abandoning it", build.uri)
                build.abandon(
                    BuildFailed(f"build of {build.uri} was abandoned: it did not stop in time")
                )


CANCEL_WAIT_S = 5.0
"""How long :meth:`Materializer.close` waits for cancelled builds to stop."""


USE_RECORDED_WITHIN_S = 60.0
"""A hit on a version whose last recorded use is older than this records one (a write):
``ArtifactStore.note_use``'s interval, so the full path then writes it."""


def _use_recorded(info: ArtifactInfo) -> bool:
    used = max(info.created_at or 0.0, info.last_read_at or 0.0)
    return time.time() - used < USE_RECORDED_WITHIN_S


def _cancelled(plan: Plan) -> QuiverError:
    name = plan.executor.name
    return Unavailable(f"{name} build was cancelled", detail={"executor": name})


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
