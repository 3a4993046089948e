"""DoGet data streams: memory-mapped batches out, bounded in size, optionally compressed."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.flight as fl

from catalog import has_dictionaries
from flight.errors import to_flight_error
from flight.parts import check_recorded, open_part
from flight.protocol import ArtifactTicket, NameTicket, PartTicket, decode_ticket, parse_model
from flight.tables import View, view_reader
from foundation import Settings, Unavailable

if TYPE_CHECKING:
    from flight.core import Core


def rechunk(batches: Iterable[pa.RecordBatch], max_bytes: int) -> Iterator[pa.RecordBatch]:
    """Yield ``batches`` sliced (zero-copy) so none is much above ``max_bytes``."""
    for batch in batches:
        size = batch.nbytes
        if size <= max_bytes or batch.num_rows <= 1:
            yield batch
            continue
        rows = max(1, batch.num_rows * max_bytes // size)
        for offset in range(0, batch.num_rows, rows):
            yield batch.slice(offset, rows)


def ipc_options(settings: Settings) -> pa.ipc.IpcWriteOptions:
    codec = None if settings.ipc_compression == "none" else settings.ipc_compression
    return pa.ipc.IpcWriteOptions(compression=codec)


SHUTTING_DOWN = "server shutting down"


def _clean(
    reader: pa.RecordBatchReader, max_bytes: int, closing: threading.Event | None = None
) -> Iterator[pa.RecordBatch]:
    # Errors raised while reading (a build that fails mid-stream) must reach the
    # client as Flight errors, never as a Python traceback. Once ``closing`` is
    # set the stream ends before its next batch; a read that was blocked on a
    # build wakes when shutdown cancels the build, and ends the same way.
    try:
        for batch in rechunk(reader, max_bytes):
            if closing is not None and closing.is_set():
                raise Unavailable(SHUTTING_DOWN)
            yield batch
    except GeneratorExit:
        raise
    except Exception as exc:
        shutting_down = closing is not None and closing.is_set()
        raise to_flight_error(Unavailable(SHUTTING_DOWN) if shutting_down else exc) from None
    finally:
        reader.close()


def data_stream(
    reader: pa.RecordBatchReader, settings: Settings, closing: threading.Event | None = None
) -> fl.FlightDataStream:
    """A DoGet stream over ``reader``: pulled one batch at a time, never collected.

    The batches of a ready artifact are slices of its memory map; the IPC
    writer sends their buffers as they are (re-encoded only when compression
    is on). A ``GeneratorStream`` rather than a ``RecordBatchStream``: an error
    raised by a reader under ``RecordBatchStream`` reaches the client with the
    server's Python traceback, one raised by a generator as a clean Flight
    error; throughput is the same. When the server's ``closing`` event is set
    (shutdown past its deadline) the stream ends with ``FlightUnavailableError``
    "server shutting down" instead of its next batch.
    """
    batches = _clean(reader, settings.flight_max_batch_bytes, closing)
    if has_dictionaries(reader.schema):
        batches = _with_dictionaries(reader.schema, batches, ipc_options(settings))
    return fl.GeneratorStream(reader.schema, batches, options=ipc_options(settings))


def _with_dictionaries(
    schema: pa.Schema, batches: Iterator[pa.RecordBatch], options: pa.ipc.IpcWriteOptions
) -> Iterator[fl.RecordBatchStream]:
    # A GeneratorStream sends a bare RecordBatch without its dictionaries, which
    # the client then refuses. Each batch goes as a one-batch stream instead, whose
    # writer sends the batch's dictionaries (a replacement, when they changed) just
    # before it. Reading stays in the generator, so errors stay clean Flight errors.
    for batch in batches:
        yield fl.RecordBatchStream(pa.Table.from_batches([batch], schema), options=options)


SMALL_ANSWER_BYTES = 1 << 20
"""A ready artifact up to this size (and ``flight_max_batch_bytes``) is sent from memory."""


def ticket_stream(
    core: Core, raw: bytes, closing: threading.Event | None = None
) -> fl.FlightDataStream:
    """The ``DoGet`` stream of ticket ``raw``.

    A small ready artifact (a repeated query's answer) is read whole here and sent
    by Arrow alone: no Python runs, and no GIL is taken, while it streams. Anything
    else streams through :func:`data_stream`.
    """
    target = decode_ticket(raw)
    if isinstance(target, ArtifactTicket) and target.view is target.start is target.stop is None:
        limit = min(SMALL_ANSWER_BYTES, core.settings.flight_max_batch_bytes)
        table = core.materializer.read_small(target.artifact_id, target.version, limit)
        if table is not None:
            return fl.RecordBatchStream(table, options=ipc_options(core.settings))
    return data_stream(_open_target(core, target), core.settings, closing)


def open_ticket(core: Core, raw: bytes) -> pa.RecordBatchReader:
    """The batches a ``DoGet`` of ticket ``raw`` sends: a ready artifact's, or a build's."""
    return _open_target(core, decode_ticket(raw))


def _open_target(
    core: Core, target: ArtifactTicket | NameTicket | PartTicket
) -> pa.RecordBatchReader:
    if isinstance(target, NameTicket):
        named = core.store.get_name(target.name)
        return core.materializer.open_artifact(named.artifact_id, named.version)
    if isinstance(target, PartTicket):
        check_recorded(core.store, target)
        return open_part(core.store.parts, target)
    if target.view is not None:
        view = parse_model(View, target.view, "ticket view")
        return view_reader(core, target.artifact_id, target.version, view)
    if target.start is not None or target.stop is not None:
        return core.store.open(
            target.artifact_id, target.version, start=target.start or 0, stop=target.stop
        )
    return core.materializer.open_artifact(target.artifact_id, target.version)


def open_ready_local(core: Core, raw: bytes) -> pa.RecordBatchReader | None:
    """:func:`open_ticket` for an in-process reader of a *finished* artifact, or None.

    None for a build in progress: following one can block on the next batch,
    and only a Flight read can be cancelled from another thread while it waits.
    Batches are sliced as ``DoGet`` slices them, so memory stays bounded.
    """
    target = decode_ticket(raw)
    if isinstance(target, NameTicket):
        named = core.store.get_name(target.name)
        key = (named.artifact_id, named.version)
    else:
        key = (target.artifact_id, target.version)
    if any((b.artifact_id, b.version) == key for b in core.materializer.building()):
        return None
    reader = open_ticket(core, raw)
    batches = rechunk(reader, core.settings.flight_max_batch_bytes)
    return pa.RecordBatchReader.from_batches(reader.schema, _closing(batches, reader))


def _closing(
    batches: Iterator[pa.RecordBatch], reader: pa.RecordBatchReader
) -> Iterator[pa.RecordBatch]:
    try:
        yield from batches
    finally:
        reader.close()
