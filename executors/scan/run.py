"""Running ``scan@v1``'s query: a cursor on a shared in-memory DuckDB, under the time limit.

The result streams as a ``RecordBatchReader``; a time-out or a cancel
interrupts the query (:class:`executors.duck.TimeLimit`) and the reader raises
:class:`Timeout` or :class:`Unavailable`.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from executors.base import RunContext
from executors.duck import TimeLimit
from executors.scan.params import NAME
from executors.scan.sql import CompiledFilter, query_text
from foundation import Timeout, Unavailable

if TYPE_CHECKING:
    import duckdb
    from pyiceberg.schema import Schema
    from pyiceberg.types import NestedField

TIMER_THREAD_NAME = "quiver-scan-time-limit"


def _utc_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with every zoned timestamp labelled UTC.

    DuckDB labels TIMESTAMPTZ with its session zone, which is the host's zone
    unless the ICU extension is loaded (it may not be installable here). The
    values are UTC instants either way, so relabelling copies nothing.
    """
    fields = [
        f.with_type(pa.timestamp(f.type.unit, "UTC"))
        if pa.types.is_timestamp(f.type) and f.type.tz is not None and f.type.tz != "UTC"
        else f
        for f in schema
    ]
    return pa.schema(fields, metadata=schema.metadata)


_databases: dict[tuple[int, str], duckdb.DuckDBPyConnection] = {}
_databases_lock = threading.Lock()


def _database(threads: int, memory_limit: str) -> duckdb.DuckDBPyConnection:
    """The in-memory DuckDB database scans connect to, one per configuration.

    Opening a database costs ~30 ms, a sixth of a 1M-row scan; a connection to
    an open one (``cursor()``) costs microseconds and is what each run gets:
    its own interruptible connection, nothing shared but the thread pool and
    memory limit the settings ask for. Scans hold no state in the database.
    """
    import duckdb

    key = (threads, memory_limit)
    with _databases_lock:
        db = _databases.get(key)
        if db is None:
            config: dict[str, Any] = {}
            if threads:
                config["threads"] = threads
            if memory_limit:
                config["memory_limit"] = memory_limit
            db = _databases[key] = duckdb.connect(config=config)
        return db


def clear_databases() -> int:
    """Drop the shared scan databases; how many. A scan running now keeps its own
    connection (and so its database) until it ends; the next scan opens a fresh one,
    and the memory a dropped database held goes when its last connection closes."""
    with _databases_lock:
        dropped = len(_databases)
        _databases.clear()
    return dropped


class Query:
    """One DuckDB query on a fresh connection, under the time limit."""

    def __init__(
        self,
        ctx: RunContext,
        schema: Schema,
        out_fields: list[NestedField],
        filters: list[CompiledFilter],
        data_files: list[str],
        delete_files: list[str],
        row_ranges: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        self.ctx = ctx
        self.row_ranges = row_ranges
        self.schema = schema
        self.out_fields = out_fields
        self.filters = filters
        self.data_files = data_files
        self.delete_files = delete_files

    def _connect(self) -> duckdb.DuckDBPyConnection:
        settings = self.ctx.settings
        return _database(settings.duckdb_threads, settings.duckdb_memory_limit).cursor()

    def result_schema(self) -> pa.Schema:
        """The schema :meth:`reader` gives, learned without reading a file: the same
        projection over no files (each column cast to the type the files are read as)."""
        con = self._connect()
        try:
            sql, params = query_text(self.schema, self.out_fields, self.filters, [], [])
            empty = con.sql(sql, params=params).to_arrow_reader(self.ctx.settings.batch_size)
            try:
                return _utc_schema(empty.schema)
            finally:
                empty.close()
        finally:
            con.close()

    def reader(self) -> pa.RecordBatchReader:
        con = self._connect()
        # Keeps interrupting until the reader ends: one interrupt that arrives just
        # before DuckDB starts the query would be lost.
        limit = TimeLimit(con, self.ctx.settings.query_time_limit_s, thread_name=TIMER_THREAD_NAME)
        stopped = limit.stopped

        def cleanup() -> None:
            limit.close()
            con.close()

        try:
            sql, params = query_text(
                self.schema,
                self.out_fields,
                self.filters,
                self.data_files,
                self.delete_files,
                row_ranges=self.row_ranges,
            )
            limit.watch(self.ctx)
            if self.ctx.cancelled:
                raise self._interrupted(stopped)
            limit.start()
            source = con.sql(sql, params=params).to_arrow_reader(self.ctx.settings.batch_size)
        except Exception as exc:
            cleanup()
            if stopped:
                raise self._interrupted(stopped) from exc
            raise
        out_schema = _utc_schema(source.schema)
        relabel = out_schema != source.schema

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                while True:
                    try:
                        batch = source.read_next_batch()
                    except StopIteration:
                        return
                    except Exception as exc:
                        # DuckDB's interrupt reaches us through Arrow's C stream
                        # as an OSError; the flags say whose interrupt it was.
                        if stopped:
                            raise self._interrupted(stopped) from exc
                        raise
                    yield batch.cast(out_schema) if relabel else batch
            finally:
                source.close()
                cleanup()

        gen = batches()
        # A reader dropped before its first batch never runs the generator's
        # finally; the finalizer still stops the timer and closes DuckDB.
        weakref.finalize(gen, cleanup)
        return pa.RecordBatchReader.from_batches(out_schema, gen)

    def _interrupted(self, stopped: dict[str, bool]) -> Exception:
        if "timeout" in stopped:
            limit = self.ctx.settings.query_time_limit_s
            return Timeout(
                f"query exceeded the time limit of {limit:g} s",
                detail={"executor": NAME, "time_limit_s": limit},
            )
        return Unavailable(f"{NAME} query was cancelled", detail={"executor": NAME})
