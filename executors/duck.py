"""Shared DuckDB plumbing for executors: connections, time limits, error mapping."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import duckdb
import pyarrow as pa

from executors.base import RunContext
from quiver.errors import InvalidArgument, QuiverError, Timeout


def connect(ctx: RunContext, *, sandboxed: bool) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory connection configured from settings.

    ``sandboxed`` connections are for user SQL: Python replacement scans off,
    and (once inputs are registered, see :func:`lock_down`) no file or network
    access.
    """
    config: dict[str, object] = {}
    if ctx.settings.duckdb_threads:
        config["threads"] = ctx.settings.duckdb_threads
    if ctx.settings.duckdb_memory_limit:
        config["memory_limit"] = ctx.settings.duckdb_memory_limit
    if sandboxed:
        config["python_enable_replacements"] = False
        config["autoinstall_known_extensions"] = False
        config["autoload_known_extensions"] = False
    return duckdb.connect(config=config)


def lock_down(con: duckdb.DuckDBPyConnection) -> None:
    """Turn off file and network access for good, and freeze the configuration."""
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
) -> pa.RecordBatchReader:
    """Bind a query now, run it lazily under the time limit, stream its batches.

    Binding (syntax, unknown tables and columns) happens here, so such errors
    reach the caller at once; the query itself starts on the first read, so a
    slow aggregate doesn't hold up the request that started it. The timer
    interrupts the connection and the reader then raises :class:`Timeout`.
    The connection is closed when the reader ends.
    """
    limit = ctx.settings.query_time_limit_s
    batch_size = ctx.settings.batch_size
    timed_out = threading.Event()

    def mapped(exc: BaseException) -> QuiverError:
        if timed_out.is_set():
            return Timeout(f"{what} exceeded the time limit of {limit:g} s")
        if ctx.cancelled:
            return Timeout(f"{what} was cancelled")
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
        def expire() -> None:
            timed_out.set()
            con.interrupt()

        timer = threading.Timer(limit, expire)
        timer.daemon = True
        timer.start()
        ctx.on_cancel(con.interrupt)
        try:
            reader = relation.to_arrow_reader(batch_size)
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                yield batch
        except (duckdb.Error, pa.ArrowException) as exc:
            raise mapped(exc) from None
        finally:
            timer.cancel()
            con.close()

    return pa.RecordBatchReader.from_batches(schema, batches())
