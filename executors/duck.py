"""Shared DuckDB plumbing: connections, the time limit and cancel of a query, error mapping.

:class:`TimeLimit` is the one watchdog of a query: ``scan@v1``, ``sql@v1`` and the
Flight table views all run their queries under it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence

import duckdb
import pyarrow as pa

from executors import spares
from executors.base import RunContext
from foundation import InvalidArgument, QuiverError, Timeout, Unavailable

INTERRUPT_EVERY_S = 0.05


def connect(ctx: RunContext, *, sandboxed: bool) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory connection configured from settings.

    ``sandboxed`` connections are for user SQL: Python replacement scans off,
    and (once inputs are registered, see :func:`lock_down`) no file or network
    access. Each is a database of its own (those settings are database-wide):
    the spare opened ahead (:mod:`executors.spares`) when there is one.
    """
    options = spares.config(ctx.settings, sandboxed=sandboxed)
    if sandboxed:
        spare = spares.take(options)
        if spare is not None:
            return spare
    return duckdb.connect(config=options)


def lock_down(con: duckdb.DuckDBPyConnection, *, allowed_files: Sequence[str] = ()) -> None:
    """Turn off file and network access for good (but for reading exactly
    ``allowed_files``), and freeze the configuration."""
    if allowed_files:
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in allowed_files)
        con.execute(f"SET allowed_paths=[{listed}]")
    con.execute("SET enable_external_access=false")
    con.execute("SET lock_configuration=true")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def stream(
    con: duckdb.DuckDBPyConnection,
    make_relation: Callable[[], duckdb.DuckDBPyRelation],
    ctx: RunContext,
    *,
    what: str,
    then: Callable[[], None] | None = None,
) -> pa.RecordBatchReader:
    """Bind a query now, run it lazily under the time limit, stream its batches.

    Binding (syntax, unknown tables and columns) happens here, so such errors
    reach the caller at once; the query itself starts on the first read, so a
    slow aggregate doesn't hold up the request that started it. The time limit
    and a cancel (:meth:`RunContext.cancel`) both interrupt the connection and
    the reader then raises :class:`Timeout` or :class:`Unavailable` (cancelled).
    The connection is closed when the reader ends; or, given ``then``, at
    ``ctx.finish()`` (once the result is published: off its path), after ``then``.
    """
    batch_size = ctx.settings.batch_size

    def mapped(exc: BaseException, limit: TimeLimit | None = None) -> QuiverError:
        if limit is not None and limit.timed_out:
            return Timeout(f"{what} exceeded the time limit of {limit.limit_s:g} s")
        if ctx.cancelled:
            return Unavailable(f"{what} was cancelled")
        return InvalidArgument(f"{what} failed: {first_line(exc)}")

    try:
        relation = make_relation()
        if relation is None:
            raise InvalidArgument(f"{what} returns no rows: it must be a query")
        schema = relation.limit(0).to_arrow_table().schema
    except duckdb.Error as exc:
        con.close()
        raise mapped(exc) from None
    except BaseException:
        con.close()
        raise

    def batches() -> Iterator[pa.RecordBatch]:
        limit = TimeLimit(con, ctx.settings.query_time_limit_s)
        limit.start()
        limit.watch(ctx)
        try:
            if ctx.cancelled:
                raise Unavailable(f"{what} was cancelled")
            reader = relation.to_arrow_reader(batch_size)
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                yield batch
        except (duckdb.Error, pa.ArrowException) as exc:
            raise mapped(exc, limit) from None
        finally:
            limit.close()
            if then is None:
                con.close()
            else:  # the next query may be waiting for what ``then`` opens: first
                ctx.on_finish(then)
                ctx.on_finish(lambda: spares.retire(con))

    return pa.RecordBatchReader.from_batches(schema, batches())


class Interrupter:
    """Interrupts a connection until its query is over.

    DuckDB's ``interrupt()`` only stops a query that is running: one that
    arrives just before the query starts is lost. So once started this keeps
    interrupting, every :data:`INTERRUPT_EVERY_S`, until :meth:`stop` (the
    reader has ended); the first one stops a running query at once.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._started = False

    def start(self) -> None:
        with self._lock:
            if self._started or self._done.is_set():
                return
            self._started = True
        threading.Thread(target=self._run, name="quiver-duckdb-interrupt", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._lock:  # never interrupt a connection being closed
                if self._done.is_set():
                    return
                with contextlib.suppress(duckdb.Error):
                    self._con.interrupt()
            if self._done.wait(INTERRUPT_EVERY_S):
                return

    def stop(self) -> None:
        with self._lock:
            self._done.set()


class TimeLimit:
    """The time limit and the cancel of one query on one connection.

    Past ``limit_s`` seconds (from :meth:`start`), or once cancelled
    (:meth:`stop`, or a :class:`RunContext` cancel after :meth:`watch`), the
    connection is interrupted until the query is over (:class:`Interrupter`);
    :attr:`stopped` says why, first reason first. :meth:`close` when the query ends.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        limit_s: float,
        *,
        thread_name: str = "quiver-query-time-limit",
    ) -> None:
        self.limit_s = limit_s
        self.stopped: dict[str, bool] = {}
        self._interrupter = Interrupter(con)
        self._timer = threading.Timer(limit_s, self.stop, args=("timeout",))
        self._timer.name = thread_name
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def watch(self, ctx: RunContext) -> None:
        """Stop the query when ``ctx`` is cancelled."""
        ctx.on_cancel(lambda: self.stop("cancelled"))

    def stop(self, why: str) -> None:
        self.stopped.setdefault(why, True)
        self._interrupter.start()

    @property
    def timed_out(self) -> bool:
        return "timeout" in self.stopped

    def close(self) -> None:
        self._timer.cancel()
        # A cancelled timer's thread ends at once, but asynchronously: wait for it, so a
        # closed query leaves no thread behind (under load it could outlive the close).
        if self._timer.is_alive() and self._timer is not threading.current_thread():
            self._timer.join(timeout=5.0)
        self._interrupter.stop()
