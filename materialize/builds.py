"""Running the builds of misses: start one, write it in a build thread, settle it.

The :class:`~materialize.materializer.Materializer` decides *whether* a build
runs (hit, join the one in flight, or lead a new one); :class:`Builds` runs
what it leads: the executor starts in the caller's thread (locally, or as Dask
tasks writing parts), the batches are written in a bounded build thread, and
the build publishes or fails, leaving the in-flight table before its waiters
wake. :meth:`Builds.close` stops them when the service does.
"""

from __future__ import annotations

import contextlib
import logging
import time

import pyarrow as pa

from catalog import ArtifactStore, Build
from executors import RunContext
from foundation import BuildFailed, InvalidArgument, QuiverError, Settings, Unavailable
from materialize.dask_builds import DaskBuilds
from materialize.flights import Flights, InFlight
from materialize.plan import Plan
from materialize.threads import BuildThreads
from materialize.work import ReaderWork, Work

log = logging.getLogger(__name__)

CANCEL_WAIT_S = 5.0
"""How long :meth:`Materializer.close` waits for cancelled builds to stop."""


class Builds:
    """The builds a materializer leads; ``counters['builds_failed']`` counts the failures
    (under the flights' lock, which guards the materializer's counters too)."""

    def __init__(
        self, settings: Settings, store: ArtifactStore, flights: Flights, counters: dict[str, int]
    ) -> None:
        self.settings = settings
        self.store = store
        self._flights = flights
        self._lock = flights.lock
        self._counters = counters
        self._threads = BuildThreads(settings.build_threads)
        self._dask = DaskBuilds(settings, store)

    def start(self, plan: Plan, name: str | None, flight: InFlight) -> Build:
        """Begin the build ``flight`` leads and hand it to a build thread; named ``name``
        once published."""
        ctx = RunContext(self.settings)
        try:
            work: Work | None = self._dask.work(plan.executor, plan.inputs, plan.params, ctx)
            if work is None:
                work = ReaderWork(plan.executor.run(plan.inputs, plan.params, ctx))
            previous = self.store.find_latest(plan.provenance)
            build = self.store.begin_build(
                provenance=plan.provenance,
                executor=plan.executor.name,
                params=plan.identity,
                inputs=plan.versions,
                artifact_id=previous.artifact_id if previous else None,
            )
            work.begin(build)
        except BaseException as exc:
            self._flights.forget(plan.provenance)
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
            self._threads.submit(self._run, plan, build, work, name, ctx)
        except RuntimeError:  # closed between the check and here
            self._finish_failed(plan, build, Unavailable("the service is shutting down"))
        return build

    def _run(self, plan: Plan, build: Build, work: Work, name: str | None, ctx: RunContext) -> None:
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
            work.write(build, ctx)
            if ctx.cancelled:  # the executor ended without noticing: still nothing is published
                raise _cancelled(plan)
            work.publish(build, published)
        except BaseException as exc:  # recorded on the artifact
            work.discard(build)
            if ctx.cancelled and not isinstance(exc, QuiverError):
                exc = _cancelled(plan)  # however the executor stopped, it was a cancel
            self._finish_failed(plan, build, exc)
        finally:
            work.close()
            ctx.finish()

    def _forget(self, plan: Plan) -> None:
        self._flights.forget(plan.provenance)

    def _finish_failed(self, plan: Plan, build: Build, exc: BaseException) -> None:
        if not isinstance(exc, QuiverError):
            log.warning("build of %s failed", build.uri, exc_info=exc)
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        with self._lock:
            self._counters["builds_failed"] += 1
        if build.done:  # failed after publishing (e.g. in eviction), or abandoned by close()
            if build.info is None:
                build.fail(exc)  # abandoned: closes its file, changes nothing else
            self._forget(plan)
            return
        build.fail(
            BuildFailed(f"build of {build.uri} failed: {message}", detail=message),
            before_notify=lambda: self._forget(plan),
        )

    def close(self, *, cancel: bool = False, timeout: float | None = None) -> None:
        """Stop taking requests; let running builds finish (or cancel them), for a while.

        Waits for the builds at most ``timeout`` seconds: by default as long as
        they take, or :data:`CANCEL_WAIT_S` when cancelling. A build still
        running then (its executor ignores the cancel) is abandoned: its row is
        marked failed, its followers wake with that failure, and nothing it
        writes later is ever published; its thread ends when the executor
        returns (the ``quiver`` commands exit without waiting for it:
        :func:`materialize.threads.leave`).
        """
        flights = self._flights.close()
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


def _cancelled(plan: Plan) -> QuiverError:
    name = plan.executor.name
    return Unavailable(f"{name} build was cancelled", detail={"executor": name})
