"""Flight SQL figures (issue 21), with pytest-benchmark; ``flight_sql_figures()`` in
bench/side_by_side.py prints them as ratios against baselines from the same run.

    .venv/bin/python -m pytest bench/bench_flight_sql.py -q -p no:cacheprovider
    .venv/bin/python bench/side_by_side.py flight_sql

The client is the real ADBC Flight SQL driver; the server is a Quiver Flight
server in this process (the driver's calls run outside the GIL). ``QUIVER_BENCH_ROWS``
shrinks the warehouse while a bench is being developed.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import duckdb
import pyarrow as pa
import pyarrow.flight as fl
import pytest

from bench.common import data_files, make_warehouse
from catalog import TableRef, Warehouses
from flight import Core, QuiverFlightServer
from flight import sql as flight_sql
from flight.sql.flightsql_pb2 import (
    ActionClosePreparedStatementRequest,
    ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult,
    CommandGetSqlInfo,
    CommandPreparedStatementQuery,
    CommandStatementQuery,
    TicketStatementQuery,
)
from flight.sql.proto import pack, unpack
from foundation import Settings

ROWS = int(os.environ.get("QUIVER_BENCH_ROWS", "1000000"))
TABLE = "wh.db.events"
WHOLE = f"SELECT * FROM {TABLE}"
# The cold query: an aggregate over every row, as a dashboard would send it.
AGGREGATE = (
    "SELECT category, count(*) AS n, sum(value) AS total, max(ts) AS last "
    f"FROM {TABLE} WHERE id % 3 <> 1 AND id > -1 GROUP BY category ORDER BY category"
)
HIT = f"SELECT category, count(*) AS n FROM {TABLE} GROUP BY category ORDER BY category"


@dataclass
class Rig:
    root: Path
    ref: TableRef
    files: list[str]

    def settings(self, data_dir: Path) -> Settings:
        return Settings(
            data_dir=data_dir,
            notebook_root=self.root / "nb",
            flight_port=0,
            host="127.0.0.1",
            cache_max_bytes=0,
            warehouses={"wh": f"file://{self.ref.warehouse}"},
        )


def make_rig(root: Path, rows: int = ROWS) -> Rig:
    ref = make_warehouse(root, rows=rows, files=4)
    return Rig(root, ref, data_files(Warehouses(), ref))


@contextlib.contextmanager
def served(rig: Rig, data_dir: Path) -> Iterator[QuiverFlightServer]:
    server = QuiverFlightServer(Core.open(rig.settings(data_dir)))
    try:
        yield server
    finally:
        server.close()


def adbc_table(conn: flightsql.Connection, sql: str) -> pa.Table:
    """One query through ADBC on a new cursor: execute, then the whole Arrow result."""
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table()


def statement_tickets(location: str, sql: str) -> list[fl.Ticket]:
    """The DoGet tickets GetFlightInfo answers for ``sql`` (the query's artifact)."""
    with fl.connect(location) as client:
        descriptor = fl.FlightDescriptor.for_command(pack(CommandStatementQuery(query=sql)))
        info = client.get_flight_info(descriptor)
        assert json.loads(info.app_metadata)["artifact_uri"]
        return [endpoint.ticket for endpoint in info.endpoints]


def plain_read(client: fl.FlightClient, tickets: list[fl.Ticket]) -> pa.Table:
    """A plain pyarrow client reading every endpoint of a FlightInfo, in order."""
    return pa.concat_tables([client.do_get(t).read_all() for t in tickets])


def fetch_pair(location: str, sql: str, rounds: int) -> tuple[float, float, int]:
    """Median seconds: ADBC execute + ``fetch_arrow_table`` (a cache hit) vs a plain
    pyarrow DoGet of the same artifact, measured alternately so load hits both alike
    (and each goes first in every other round: the second read of a pair finds the
    first one's memory just freed); and the result's size in bytes."""
    tickets = statement_tickets(location, sql)
    ours: list[float] = []
    base: list[float] = []
    size = 0
    with flightsql.connect(location, autocommit=True) as conn, fl.connect(location) as plain:
        reads: list[tuple[list[float], Callable[[], pa.Table]]] = [
            (ours, lambda: adbc_table(conn, sql)),
            (base, lambda: plain_read(plain, tickets)),
        ]
        for i in range(rounds):
            rows = set()
            for times, read in reads[i % 2 :] + reads[: i % 2]:
                t0 = time.perf_counter()
                table = read()
                times.append(time.perf_counter() - t0)
                rows.add(table.num_rows)
                size = table.nbytes if times is base else size
                del table
            assert len(rows) == 1
    return statistics.median(ours), statistics.median(base), size


def duckdb_sql(sql: str) -> str:
    """``sql`` as plain DuckDB runs it on the warehouse's Parquet files."""
    return sql.replace(TABLE, "read_parquet($files)")


def cold_pair(rig: Rig, sql: str, rounds: int) -> tuple[float, float, float]:
    """Best-of-``rounds`` seconds of a cold query: every round a new data directory, so
    both the table's scan and the query are built; then the same SQL in a warm DuckDB
    connection on the same files. Also the best time of a second query (new text) on the
    same table in the same server: a miss too, but with the table's metadata and file
    plan in memory."""
    con = duckdb.connect()
    plain = duckdb_sql(sql)
    files = {"files": rig.files}
    base_run: Callable[[], object] = lambda: con.sql(plain, params=files).to_arrow_table()  # noqa: E731
    base_run()  # warm the connection and the page cache
    cold: list[float] = []
    second: list[float] = []
    base: list[float] = []
    for i in range(rounds):
        with (
            served(rig, rig.root / f"cold-{i}") as server,
            flightsql.connect(server.location, autocommit=True) as conn,
        ):
            t0 = time.perf_counter()
            adbc_table(conn, sql)
            cold.append(time.perf_counter() - t0)
            other = sql.replace("id > -1", f"id > -{i + 2}")  # new text, same table
            t0 = time.perf_counter()
            adbc_table(conn, other)
            second.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        base_run()
        base.append(time.perf_counter() - t0)
    con.close()
    return min(cold), min(base), min(second)


def prepared_round_trip(client: fl.FlightClient, sql: str) -> pa.Table:
    """What ADBC's DBAPI sends for one query on a new cursor, from a bare pyarrow client:
    CreatePreparedStatement, GetFlightInfo, DoGet, ClosePreparedStatement."""
    body = pack(ActionCreatePreparedStatementRequest(query=sql))
    answer = next(iter(client.do_action(fl.Action("CreatePreparedStatement", body))))
    created = unpack(answer.body.to_pybytes())
    assert isinstance(created, ActionCreatePreparedStatementResult)
    handle = created.prepared_statement_handle
    command = CommandPreparedStatementQuery(prepared_statement_handle=handle)
    info = client.get_flight_info(fl.FlightDescriptor.for_command(pack(command)))
    table = plain_read(client, [e.ticket for e in info.endpoints])
    close = pack(ActionClosePreparedStatementRequest(prepared_statement_handle=handle))
    list(client.do_action(fl.Action("ClosePreparedStatement", close)))
    return table


class IdleFlightSql(fl.FlightServerBase):
    """A Flight SQL server in Python that does no work: it answers ADBC's four calls
    for one query with a fixed handle, FlightInfo and table (and GetSqlInfo, which
    ADBC asks when it connects). What ADBC against *any* pyarrow server costs here."""

    def __init__(self, table: pa.Table) -> None:
        super().__init__("grpc://127.0.0.1:0")
        self.location = f"grpc://127.0.0.1:{self.port}"
        self._table = table
        ticket = pack(TicketStatementQuery(statement_handle=b"answer"))
        self._endpoints = [fl.FlightEndpoint(ticket, [])]
        created = ActionCreatePreparedStatementResult(prepared_statement_handle=b"handle")
        self._created = pa.py_buffer(pack(created))

    def get_flight_info(
        self, context: fl.ServerCallContext, descriptor: fl.FlightDescriptor
    ) -> fl.FlightInfo:
        command = unpack(descriptor.command)
        if isinstance(command, CommandGetSqlInfo):
            return flight_sql.metadata_info(descriptor, command)
        return fl.FlightInfo(
            self._table.schema, descriptor, self._endpoints, self._table.num_rows, -1
        )

    def do_get(self, context: fl.ServerCallContext, ticket: fl.Ticket) -> fl.FlightDataStream:
        message = unpack(ticket.ticket)
        if isinstance(message, CommandGetSqlInfo):
            # SqlInfo's answer needs no Core (it is the same for every server)
            return fl.RecordBatchStream(flight_sql.metadata_reader(None, message))  # type: ignore[arg-type]
        return fl.RecordBatchStream(self._table)

    def do_action(self, context: fl.ServerCallContext, action: fl.Action) -> list[fl.Result]:
        if action.type == "CreatePreparedStatement":
            return [fl.Result(self._created)]
        return []


def hit_p50_ms(location: str, sql: str, rounds: int) -> tuple[float, float, float, float]:
    """p50 ms of a repeated identical query through ADBC (new cursor each time); of a
    bare pyarrow client sending the same four calls; of GetFlightInfo + DoGet alone;
    and of the same ADBC query against :class:`IdleFlightSql` (same answer), measured
    alternately so load hits all alike."""
    tickets = statement_tickets(location, sql)
    descriptor = fl.FlightDescriptor.for_command(pack(CommandStatementQuery(query=sql)))
    ours: list[float] = []
    same_calls: list[float] = []
    base: list[float] = []
    idle: list[float] = []
    with contextlib.ExitStack() as stack:
        conn = stack.enter_context(flightsql.connect(location, autocommit=True))
        plain = stack.enter_context(fl.connect(location))
        idle_server = IdleFlightSql(adbc_table(conn, sql))
        stack.callback(idle_server.shutdown)
        idle_conn = stack.enter_context(flightsql.connect(idle_server.location, autocommit=True))
        for _ in range(10):
            adbc_table(conn, sql)
            prepared_round_trip(plain, sql)
            adbc_table(idle_conn, sql)
        for _ in range(rounds):
            t0 = time.perf_counter()
            adbc_table(conn, sql)
            ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            prepared_round_trip(plain, sql)
            same_calls.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            plain.get_flight_info(descriptor)
            plain_read(plain, tickets)
            base.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            adbc_table(idle_conn, sql)
            idle.append(time.perf_counter() - t0)
    return tuple(statistics.median(x) * 1000 for x in (ours, same_calls, base, idle))  # type: ignore[return-value]


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Rig:
    return make_rig(tmp_path_factory.mktemp("flight-sql"))


@pytest.fixture(scope="module")
def location(rig: Rig) -> Iterator[str]:
    with served(rig, rig.root / "data") as server:
        with flightsql.connect(server.location, autocommit=True) as conn:
            adbc_table(conn, WHOLE)  # build once: the benchmarks read a cache hit
            adbc_table(conn, HIT)
        yield server.location


def test_adbc_fetch_whole_table(benchmark, location: str) -> None:
    with flightsql.connect(location, autocommit=True) as conn:
        assert benchmark(adbc_table, conn, WHOLE).num_rows == ROWS


def test_plain_doget_same_artifact(benchmark, location: str) -> None:
    tickets = statement_tickets(location, WHOLE)
    with fl.connect(location) as plain:
        assert benchmark(plain_read, plain, tickets).num_rows == ROWS


def test_adbc_cache_hit(benchmark, location: str) -> None:
    with flightsql.connect(location, autocommit=True) as conn:
        assert benchmark(adbc_table, conn, HIT).num_rows > 0
