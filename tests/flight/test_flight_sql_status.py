"""Flight SQL refusals arrive with the gRPC status a client acts on, never UNKNOWN.

Unsupported commands are UNIMPLEMENTED, bad SQL and bad arguments INVALID_ARGUMENT,
unknown names NOT_FOUND; every message is one clean line (no server traceback).
Checked through the real ADBC driver and through a plain pyarrow Flight client.
"""

from __future__ import annotations

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as fl
import pytest
from adbc_driver_manager import AdbcStatusCode
from google.protobuf.message import Message

from catalog import TableRef, write_demo_warehouse
from flight.sql import flightsql_pb2 as pb
from flight.sql.proto import pack


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> TableRef:
    return write_demo_warehouse(tmp_path_factory.mktemp("wh"), rows=100, files=1)


def _clean(message: str) -> None:
    assert "Traceback" not in message and ".py" not in message, message
    assert "\n" not in message.split(". Detail:")[0], message


@pytest.mark.parametrize(
    ("query", "status", "words"),
    [
        ("SELECT * FORM wh.db.events", AdbcStatusCode.INVALID_ARGUMENT, "syntax error"),
        ("SELECT nope FROM wh.db.events", AdbcStatusCode.INVALID_ARGUMENT, '"nope" not found'),
        ("INSERT INTO wh.db.events VALUES (1)", AdbcStatusCode.INVALID_ARGUMENT, "read-only"),
        ("SELECT 1; SELECT 2", AdbcStatusCode.INVALID_ARGUMENT, "one statement"),
        ("SELECT * FROM read_csv('/etc/passwd')", AdbcStatusCode.INVALID_ARGUMENT, "disabled"),
        ("SELECT * FROM wh.db.nope", AdbcStatusCode.NOT_FOUND, "does not exist"),
        ("SELECT * FROM elsewhere.db.t", AdbcStatusCode.NOT_FOUND, "unknown catalog"),
    ],
)
def test_query_errors_carry_their_status(
    conn, query: str, status: AdbcStatusCode, words: str
) -> None:
    with conn.cursor() as cur, pytest.raises(flightsql.Error) as caught:
        cur.execute(query)
        cur.fetchall()
    assert caught.value.status_code == status, caught.value
    assert words in str(caught.value)
    _clean(str(caught.value))


def test_ingest_is_unimplemented(conn) -> None:
    with conn.cursor() as cur, pytest.raises(flightsql.NotSupportedError) as caught:
        cur.adbc_ingest("t", pa.table({"x": [1]}))
    assert caught.value.status_code == AdbcStatusCode.NOT_IMPLEMENTED
    assert "read-only" in str(caught.value)
    _clean(str(caught.value))


@pytest.mark.parametrize(
    ("command", "error", "words"),
    [
        (pb.CommandStatementUpdate(query="DELETE"), pa.ArrowNotImplementedError, "read-only"),
        (pb.CommandStatementSubstraitPlan(), pa.ArrowNotImplementedError, "Substrait"),
        (pb.CommandGetXdbcTypeInfo(), pa.ArrowNotImplementedError, "not supported"),
        (
            pb.CommandStatementQuery(query="SELECT 1", transaction_id=b"t"),
            pa.ArrowNotImplementedError,
            "transactions",
        ),
        (pb.CommandStatementQuery(query="SELEC 1"), pa.ArrowInvalid, "syntax error"),
        (
            pb.CommandPreparedStatementQuery(prepared_statement_handle=b"gone"),
            pa.ArrowKeyError,
            "prepared statement",
        ),
    ],
)
def test_commands_through_pyarrow(
    sql_server, command: Message, error: type[Exception], words: str
) -> None:
    descriptor = fl.FlightDescriptor.for_command(pack(command))
    with fl.connect(sql_server.location) as client, pytest.raises(error) as caught:
        client.get_flight_info(descriptor)
    assert not isinstance(caught.value, fl.FlightError)  # those are UNKNOWN on the wire
    assert words in str(caught.value)
    _clean(str(caught.value))


@pytest.mark.parametrize(
    ("kind", "body", "error"),
    [
        ("BeginTransaction", pack(pb.ActionBeginTransactionRequest()), pa.ArrowNotImplementedError),
        (
            "CreatePreparedSubstraitPlan",
            pack(pb.ActionCreatePreparedSubstraitPlanRequest()),
            pa.ArrowNotImplementedError,
        ),
        ("CreatePreparedStatement", b"not protobuf", pa.ArrowInvalid),
        (
            "CreatePreparedStatement",
            pack(pb.ActionCreatePreparedStatementRequest(query="DROP TABLE x")),
            pa.ArrowInvalid,
        ),
    ],
)
def test_actions_through_pyarrow(
    sql_server, kind: str, body: bytes, error: type[Exception]
) -> None:
    with fl.connect(sql_server.location) as client, pytest.raises(error) as caught:
        list(client.do_action(fl.Action(kind, body)))
    _clean(str(caught.value))


def test_quiver_commands_keep_their_flight_errors(sql_server) -> None:
    """Quiver's own client reads the Flight error classes and their JSON detail."""
    with fl.connect(sql_server.location) as client, pytest.raises(fl.FlightServerError) as caught:
        client.get_flight_info(fl.FlightDescriptor.for_command(b'{"inputs": 3}'))
    assert caught.value.extra_info
