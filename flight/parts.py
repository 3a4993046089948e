"""Partitioned artifacts over Flight: one endpoint per part, and a part read from storage.

A partitioned artifact (:mod:`catalog.partitioned`) is offered as one endpoint per
part, in order (``ordered=True``); each endpoint's ticket is a :class:`PartTicket`
naming the part's key in the part storage and its size, and its locations are the
live data nodes (:mod:`flight.nodes`): a different primary per part, the others as
fallbacks. With no data node an endpoint has no location: the server asked serves it.

Any node serves a part ticket from the part storage alone (:func:`open_part`): the
stored size must be the ticket's and the IPC footer whole, else the read is refused
with a clean Flight error before a byte of data is sent; a read that fails midway
ends with a clean error too. Never a wrong row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pyarrow as pa
import pyarrow.flight as fl

from catalog import ArtifactInfo, ArtifactStore, PartStore, artifact_uri
from flight.errors import one_line
from flight.nodes import Locations
from flight.protocol import PartTicket
from foundation import NotFound, Unavailable

Wrap = Callable[[bytes], bytes] | None


def part_endpoints(
    store: ArtifactStore, info: ArtifactInfo, locations: Locations, wrap: Wrap = None
) -> list[fl.FlightEndpoint]:
    """One endpoint per part of a partitioned ``info``, in order."""
    endpoints = []
    for i, part in enumerate(store.parts_of(info.artifact_id, info.version)):
        ticket = PartTicket(info.artifact_id, info.version, i, part.key, part.bytes).encode()
        endpoints.append(fl.FlightEndpoint(wrap(ticket) if wrap else ticket, locations(i)))
    return endpoints


def check_recorded(store: ArtifactStore, ticket: PartTicket) -> None:
    """On the server that keeps the metadata: the ticket must name the part the store
    recorded (a deleted or rebuilt version's parts are not served)."""
    parts = store.parts_of(ticket.artifact_id, ticket.version)
    if ticket.part >= len(parts) or parts[ticket.part].key != ticket.key:
        uri = artifact_uri(ticket.artifact_id, ticket.version)
        raise NotFound(f"{uri} has no part {ticket.part} under {ticket.key}")


def open_part(parts: PartStore, ticket: PartTicket) -> pa.RecordBatchReader:
    """The batches of the part ``ticket`` names, read from the part storage."""
    what = f"part {ticket.part} of {artifact_uri(ticket.artifact_id, ticket.version)}"
    try:
        size = parts.size(ticket.key)
        if size is None:
            raise NotFound(f"{what} cannot be read: it is not in the part storage")
        if size != ticket.bytes:
            raise NotFound(f"{what} cannot be read: {size} bytes stored, {ticket.bytes} expected")
        file = parts.open(ticket.key)
    except (OSError, pa.ArrowException) as exc:
        raise Unavailable(f"{what} cannot be read: {one_line(str(exc))}") from None
    return pa.RecordBatchReader.from_batches(file.schema, _batches(file, what))


def _batches(file: pa.ipc.RecordBatchFileReader, what: str) -> Iterator[pa.RecordBatch]:
    try:
        for i in range(file.num_record_batches):
            yield file.get_batch(i)
    except (OSError, pa.ArrowException) as exc:
        raise Unavailable(f"{what} cannot be read: {one_line(str(exc))}") from None
