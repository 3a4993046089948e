"""Arrow Flight SQL, read-only, on the Quiver Flight server (docs/flight-sql.md).

The public door the server calls: :func:`command_of` tells a Flight SQL
descriptor or ticket from Quiver's own; :func:`info_target` says what a
GetFlightInfo answers (a ``sql@v1`` request or a metadata command);
:func:`statement_ticket`/:func:`metadata_reader` serve DoGet; :func:`do_put`
binds parameters; :func:`do_action` runs the prepared-statement actions;
:func:`warm_up` loads the configured warehouses' tables when the server starts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.flight as fl
from google.protobuf.message import Message

from flight.errors import Unsupported
from flight.sql import flightsql_pb2 as pb
from flight.sql.metadata import METADATA_COMMANDS, answer, schema_of, warm_up
from flight.sql.proto import pack, unpack
from flight.sql.statements import bind, close_prepared, create_prepared, query_request, refusal
from foundation import InvalidArgument
from materialize import MaterializeRequest

if TYPE_CHECKING:
    from flight.core import Core

StatementTicket = pb.TicketStatementQuery

ACTION_TYPES = frozenset(
    {
        "CreatePreparedStatement",
        "ClosePreparedStatement",
        "CreatePreparedSubstraitPlan",
        "BeginTransaction",
        "BeginSavepoint",
        "EndTransaction",
        "EndSavepoint",
        "CancelQuery",
    }
)


def command_of(descriptor: fl.FlightDescriptor) -> Message | None:
    """The Flight SQL command of a descriptor, None for Quiver's own descriptors."""
    if descriptor.descriptor_type != fl.DescriptorType.CMD:
        return None
    return unpack(descriptor.command)


def info_target(command: Message, warehouses: Mapping[str, str]) -> MaterializeRequest | Message:
    """What GetFlightInfo of ``command`` answers: a query's request, or a metadata command."""
    if isinstance(command, METADATA_COMMANDS):
        return command
    return query_request(command, warehouses)


def metadata_info(descriptor: fl.FlightDescriptor, command: Message) -> fl.FlightInfo:
    """The FlightInfo of a metadata command: its schema, one endpoint whose ticket is itself."""
    endpoint = fl.FlightEndpoint(pack(command), [])
    return fl.FlightInfo(schema_of(command), descriptor, [endpoint], -1, -1)


def statement_ticket(inner: bytes) -> bytes:
    """A Quiver artifact ticket as a Flight SQL ``TicketStatementQuery``."""
    return pack(pb.TicketStatementQuery(statement_handle=inner))


def ticket_of(raw: bytes) -> Message | None:
    """The Flight SQL message of a DoGet ticket, None for Quiver's own tickets."""
    return unpack(raw)


def metadata_reader(core: Core, message: Message) -> pa.RecordBatchReader:
    if not isinstance(message, METADATA_COMMANDS):
        raise InvalidArgument(f"not a Flight SQL ticket: {type(message).__name__}")
    return answer(core, message).to_reader()


def do_put(command: Message, batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> bytes:
    """Bind a prepared query's parameters; anything else is refused (read-only)."""
    return bind(command, batches, schema)


def do_action(core: Core, kind: str, body: bytes) -> list[bytes]:
    """Run a Flight SQL action; the answer bodies (``Any``-wrapped results)."""
    message = unpack(body)
    if message is None:
        raise InvalidArgument(f"the body of {kind} must be a Flight SQL message (protobuf Any)")
    if kind == "CreatePreparedStatement":
        return [pack(create_prepared(message, core.settings.warehouses))]
    if kind == "ClosePreparedStatement":
        close_prepared(message)
        return []
    if kind in ("BeginTransaction", "BeginSavepoint", "EndTransaction", "EndSavepoint"):
        raise Unsupported("transactions are not supported (the server is read-only)")
    raise refusal(message)


__all__ = [
    "ACTION_TYPES",
    "StatementTicket",
    "command_of",
    "do_action",
    "do_put",
    "info_target",
    "metadata_info",
    "metadata_reader",
    "statement_ticket",
    "ticket_of",
    "warm_up",
]
