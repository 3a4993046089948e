"""Builds spread over a Dask ``distributed`` cluster: one task per share, each writing a part.

With ``QUIVER_DASK_SCHEDULER`` set, an executor that can split its run
(:class:`executors.PartitionedExecutor`, ``scan@v1`` over many data files) is
asked for shares, at least as many as the cluster has worker threads when the
inputs allow. Each share becomes one Dask task (:func:`build_part`, which a
worker imports from here: the workers run Quiver) that streams its rows into a
part of the part storage, cast to the schema the head fixed. The head waits for
every part, then publishes them in order as one artifact
(:meth:`catalog.Build.publish_parts`); the bytes never pass through it.

A failed part fails the build: the other tasks are cancelled, the running ones
are told to stop through a Dask ``Event`` (their DuckDB query is interrupted),
and the failed build deletes its part prefix (:meth:`catalog.Build.fail`). A task
that finishes writing after that sees the event and deletes its own part, so
nothing of a failed or cancelled build stays behind. A worker that dies is Dask's
to handle: it runs the task again elsewhere, or gives up (``KilledWorker``) and
the build fails.

``distributed`` is imported only when a scheduler is set.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from pydantic import BaseModel

from catalog import ArtifactInfo, ArtifactStore, Build
from executors import Partitioned, PartitionedExecutor, ResolvedInput, RunContext, Share
from foundation import BuildFailed, Settings, Unavailable

if TYPE_CHECKING:
    from catalog import PartInfo

CONNECT_TIMEOUT_S = 10.0
"""How long connecting to the scheduler may take before a build is refused."""
WAIT_EVERY_S = 0.2
"""How often the head, waiting for the parts, looks whether the build was cancelled;
and a task whether its build ended."""

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def dask_client(address: str) -> Any:
    """The client of the scheduler at ``address``: made on first use, kept, remade once
    it is no longer running. Unavailable when the scheduler cannot be reached."""
    with _clients_lock:
        client = _clients.get(address)
        if client is not None and client.status == "running":
            return client
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        from distributed import Client

        try:
            client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise Unavailable(
                f"the Dask scheduler at {address} cannot be reached: {exc}",
                detail={"dask_scheduler": address},
            ) from None
        _clients[address] = client
        return client


def close_clients() -> int:
    """Close every cached client; how many there were."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        with contextlib.suppress(Exception):
            client.close()
    return len(clients)


def part_key(build: Build, index: int) -> str:
    return f"{build.part_prefix}part-{index:05d}.arrow"


def build_part(
    share: Share, store_uri: str, key: str, schema: pa.Schema, settings: Settings, stop: str
) -> PartInfo:
    """The Dask task: stream ``share`` into the part ``key`` of the storage at ``store_uri``.

    While it runs, a thread watches the build's stop event (``stop``, a Dask
    ``Event``) and cancels the query when it is set; a part written by the time the
    event is set is deleted again, for the head may already have cleaned up.
    """
    from distributed import Event

    from catalog import PartStore

    ctx = RunContext(settings)
    event = Event(stop)
    finished = threading.Event()

    def watch() -> None:
        while not finished.is_set():
            try:
                if event.wait(WAIT_EVERY_S):
                    ctx.cancel()
                    return
            except Exception:  # the scheduler went away: the task's own result says so
                return

    threading.Thread(target=watch, name="quiver-part-stop", daemon=True).start()
    store = PartStore(store_uri)
    try:
        reader = share.reader(ctx)
        try:
            info = store.write(key, reader, schema)
        finally:
            reader.close()
    except Exception as exc:
        # What travels back is a message: the error's own class may not unpickle on the head.
        raise PartError(f"{type(exc).__name__}: {_first_line(exc)}") from None
    finally:
        finished.set()
    if ctx.cancelled or event.is_set():
        with contextlib.suppress(FileNotFoundError):  # the head's cleanup may have been first
            store.fs.delete_file(store.path(key))
        raise PartError("the build was stopped while this part was written")
    return info


class PartError(Exception):
    """A part that could not be written, as a message the head can always unpickle."""


def _first_line(exc: BaseException | None) -> str:
    text = str(exc) if exc is not None else ""
    return text.splitlines()[0] if text else type(exc).__name__


class DaskBuilds:
    """The head's side: plans shares, runs one Dask task per share, gathers the parts."""

    def __init__(self, settings: Settings, store: ArtifactStore) -> None:
        self.settings = settings
        self.store = store
        # What the tasks get: the settings that shape a query, and no secrets.
        self._task_settings = settings.model_copy(update={"token": None, "ai_api_key": None})

    @property
    def enabled(self) -> bool:
        return bool(self.settings.dask_scheduler)

    def work(
        self, executor: object, inputs: Sequence[ResolvedInput], params: BaseModel, ctx: RunContext
    ) -> PartsWork | None:
        """The build's work when it is to be spread over the cluster, else None (in-process)."""
        if not self.enabled or not isinstance(executor, PartitionedExecutor):
            return None
        client = dask_client(self.settings.dask_scheduler)
        try:
            threads = sum(client.nthreads().values())
        except (OSError, TimeoutError) as exc:
            raise Unavailable(
                f"the Dask scheduler at {self.settings.dask_scheduler} did not answer: {exc}"
            ) from None
        if not threads:
            raise Unavailable(
                f"the Dask cluster at {self.settings.dask_scheduler} has no workers; "
                "start some (dask worker ...) or unset QUIVER_DASK_SCHEDULER",
                detail={"dask_scheduler": self.settings.dask_scheduler},
            )
        partitioned = executor.partitions(
            inputs,
            params,
            ctx,
            target_bytes=self.settings.part_target_bytes,
            min_parts=max(1, threads),
        )
        return None if partitioned is None else PartsWork(self, partitioned)

    def run(self, build: Build, partitioned: Partitioned, ctx: RunContext) -> list[PartInfo]:
        """Run every share as a task; the parts in order. Raises when a part fails or the
        build is cancelled, having stopped the other tasks (the build's failure deletes
        what they wrote)."""
        from distributed import Event

        client = dask_client(self.settings.dask_scheduler)
        stop = Event(f"quiver-part-stop-{uuid.uuid4().hex}", client=client)
        count = len(partitioned.shares)
        store_uri = self.store.parts.uri
        run = stop.name[-8:]
        futures = [
            client.submit(
                build_part,
                *(share, store_uri, part_key(build, i), partitioned.schema),
                *(self._task_settings, stop.name),
                key=f"quiver-part-{build.artifact_id}-v{build.version}-{i:05d}-{run}",
                pure=False,
            )
            for i, share in enumerate(partitioned.shares)
        ]
        stopped = threading.Event()
        changed = threading.Event()  # a future ended, or the build was cancelled

        def halt() -> None:
            if not stopped.is_set():
                stopped.set()
                with contextlib.suppress(Exception):
                    stop.set()
                with contextlib.suppress(Exception):
                    client.cancel(futures)

        for f in futures:
            f.add_done_callback(lambda _: changed.set())
        ctx.on_cancel(changed.set)
        try:
            while not ctx.cancelled:
                changed.wait(WAIT_EVERY_S)
                changed.clear()
                failed = next((i for i, f in enumerate(futures) if f.status == "error"), None)
                if failed is not None:
                    error = futures[failed].exception()  # before halt() cancels its future
                    halt()
                    raise _part_failed(failed, count, error)
                if any(f.status == "cancelled" for f in futures) and not ctx.cancelled:
                    halt()
                    where = self.settings.dask_scheduler
                    raise BuildFailed(f"a part was cancelled by the Dask cluster at {where}")
                if all(f.status == "finished" for f in futures):
                    return list(client.gather(futures))
            halt()
            raise Unavailable("the build was cancelled")
        except BaseException:
            halt()
            raise
        finally:
            for f in futures:
                with contextlib.suppress(Exception):
                    f.release()


class PartsWork:
    """A build whose rows Dask workers write as parts (:class:`materialize.work.Work`)."""

    def __init__(self, builds: DaskBuilds, partitioned: Partitioned) -> None:
        self.builds = builds
        self.partitioned = partitioned
        self.parts: list[PartInfo] = []

    @property
    def schema(self) -> pa.Schema:
        return self.partitioned.schema

    def begin(self, build: Build) -> None:
        pass  # the build writes no file of its own: followers wait for the parts

    def write(self, build: Build, ctx: RunContext) -> None:
        self.parts = self.builds.run(build, self.partitioned, ctx)

    def publish(self, build: Build, before_notify: Callable[[], None]) -> ArtifactInfo:
        return build.publish_parts(self.schema, self.parts, before_notify=before_notify)

    def discard(self, build: Build) -> None:
        pass  # build.fail() deletes the build's part prefix (it was asked for)

    def close(self) -> None:
        pass


def _part_failed(index: int, count: int, error: BaseException | None) -> BuildFailed:
    what = _first_line(error)
    return BuildFailed(
        f"part {index + 1} of {count} failed on the Dask cluster: {what}",
        detail={"part": index, "parts": count, "error": what},
    )
