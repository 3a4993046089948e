"""Flight SQL queries: statements, prepared statements and what they refuse.

A query (``CommandStatementQuery``, or ``CommandPreparedStatementQuery`` with
its bound parameters) becomes one ``sql@v1`` materialize request
(:mod:`flight.sql.names`); the server answers it as any materialize, with
tickets wrapped in ``TicketStatementQuery``. Prepared statements live in this
process, by a random handle, until closed (the oldest go past
:data:`MAX_PREPARED`). Parameters arrive by ``DoPut`` as one Arrow row and are
bound by DuckDB, never pasted into the SQL.
"""

from __future__ import annotations

import datetime as dt
import decimal
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from google.protobuf.message import Message

from flight.errors import Unsupported
from flight.sql import flightsql_pb2 as pb
from flight.sql.names import Query, to_query
from foundation import InvalidArgument, NotFound
from materialize import MaterializeRequest

MAX_PREPARED = 4096
READ_ONLY = "this Flight SQL server is read-only: updates, inserts, DDL and ingest are refused"


@dataclass(slots=True)
class Prepared:
    query: Query
    parameters: list[Any] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class PreparedStatements:
    """Open prepared statements by handle (bounded: the oldest are dropped first)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: OrderedDict[bytes, Prepared] = OrderedDict()

    def create(self, query: Query) -> bytes:
        handle = secrets.token_bytes(16)
        with self._lock:
            self._open[handle] = Prepared(query)
            while len(self._open) > MAX_PREPARED:
                self._open.popitem(last=False)
        return handle

    def get(self, handle: bytes) -> Prepared:
        with self._lock:
            prepared = self._open.get(handle)
        if prepared is None:
            raise NotFound("unknown or closed prepared statement handle")
        return prepared

    def close(self, handle: bytes) -> None:
        with self._lock:
            self._open.pop(handle, None)


PREPARED = PreparedStatements()


def query_request(command: Message, warehouses: Mapping[str, str]) -> MaterializeRequest:
    """The ``sql@v1`` request a query command (GetFlightInfo, GetSchema) stands for."""
    if isinstance(command, pb.CommandStatementQuery):
        if command.HasField("transaction_id"):
            raise Unsupported("transactions are not supported (the server is read-only)")
        return to_query(command.query, warehouses).request()
    if isinstance(command, pb.CommandPreparedStatementQuery):
        prepared = PREPARED.get(command.prepared_statement_handle)
        return prepared.query.request(prepared.parameters)
    raise refusal(command)


def refusal(command: Message) -> Unsupported:
    """The clear error for a Flight SQL message this server does not serve."""
    name = type(command).__name__
    if isinstance(
        command,
        pb.CommandStatementUpdate | pb.CommandPreparedStatementUpdate | pb.CommandStatementIngest,
    ):
        return Unsupported(f"{READ_ONLY} (got {name})")
    if isinstance(
        command, pb.CommandStatementSubstraitPlan | pb.ActionCreatePreparedSubstraitPlanRequest
    ):
        return Unsupported("Substrait plans are not supported: send SQL (DuckDB dialect)")
    return Unsupported(f"Flight SQL {name} is not supported by this server")


def create_prepared(body: Message, warehouses: Mapping[str, str]) -> Message:
    """``CreatePreparedStatement``: check the query now, answer its handle."""
    if not isinstance(body, pb.ActionCreatePreparedStatementRequest):
        raise InvalidArgument(
            "CreatePreparedStatement takes an ActionCreatePreparedStatementRequest"
        )
    if body.HasField("transaction_id"):
        raise Unsupported("transactions are not supported (the server is read-only)")
    query = to_query(body.query, warehouses)
    return pb.ActionCreatePreparedStatementResult(
        prepared_statement_handle=PREPARED.create(query), is_update=False
    )


def close_prepared(body: Message) -> None:
    if not isinstance(body, pb.ActionClosePreparedStatementRequest):
        raise InvalidArgument("ClosePreparedStatement takes an ActionClosePreparedStatementRequest")
    PREPARED.close(body.prepared_statement_handle)


def bind(command: Message, batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> bytes:
    """``DoPut`` of a prepared query's parameters: one row, bound by position."""
    if not isinstance(command, pb.CommandPreparedStatementQuery):
        raise refusal(command)
    prepared = PREPARED.get(command.prepared_statement_handle)
    rows = pa.Table.from_batches(list(batches), schema)
    if rows.num_rows > 1:
        raise InvalidArgument(f"a query binds one row of parameters, got {rows.num_rows}")
    values = None
    if rows.num_columns:
        values = [scalar(v) for v in (rows.to_pylist()[0].values() if rows.num_rows else [])]
    with prepared.lock:
        prepared.parameters = values if rows.num_rows else None
    answer = pb.DoPutPreparedStatementResult(
        prepared_statement_handle=command.prepared_statement_handle
    )
    return answer.SerializeToString()


def scalar(value: Any) -> Any:
    """A parameter value as ``sql@v1`` takes it (JSON-able; dates as ISO text)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    raise InvalidArgument(f"parameters of type {type(value).__name__} are not supported")
