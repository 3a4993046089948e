"""The Quiver Flight server: materialize, FlightInfo, DoGet, DoPut, ListFlights, actions.

Every handler runs under :func:`flight.errors.guard`, so a failure reaches the
client as a Flight error with a one-line message and JSON ``extra_info`` —
never a server traceback. docs/flight.md describes the protocol.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.flight as fl

from catalog import ArtifactInfo, Build
from flight import datanode, queries, registry, renditions, runtime, tables  # noqa: F401  (actions)
from flight import sql as flight_sql
from flight.actions import materialize, result_json
from flight.args import info_json
from flight.core import Core
from flight.dispatch import ACTIONS, run_action
from flight.errors import guard, status_errors
from flight.parts import part_endpoints
from flight.protocol import (
    ArtifactPath,
    ArtifactTicket,
    NamePath,
    PutCommand,
    decode_info_descriptor,
    decode_put_descriptor,
    encode_json,
    register_local,
    unregister_local,
)
from flight.security import (
    BearerTokenMiddlewareFactory,
    HandshakeOk,
    check_bind,
    host_for_uri,
    tls_certificates,
)
from flight.sockets import drop_connections, listeners
from flight.streams import SHUTTING_DOWN, data_stream, ticket_stream
from flight.uploads import stated_provenance, store_content, store_stated
from foundation import BuildFailed, Conflict, InvalidArgument, Unavailable
from materialize import MaterializeRequest

log = logging.getLogger("quiver.flight")

Wrap = Callable[[bytes], bytes] | None
"""How a FlightInfo's tickets are wrapped (Flight SQL: in a TicketStatementQuery)."""

CANCEL_GRACE_S = 1.0
"""Past the deadline: how long cancelled calls get to send their error before their
connections are dropped."""
DRAIN_S = 5.0
"""How long gRPC may take to finish shutting down once no call is left running."""


class QuiverFlightServer(fl.FlightServerBase):
    """Serves one :class:`Core` over Arrow Flight. Starts listening on construction.

    ``location`` (``grpc://host:port``) is the address clients use; with
    ``flight_port=0`` it holds the port the OS picked.
    """

    def __init__(self, core: Core) -> None:
        settings = core.settings
        check_bind(settings)
        tls = tls_certificates(settings)
        scheme = "grpc+tls" if tls else "grpc"
        host = host_for_uri(settings.host)
        token = settings.token.get_secret_value() if settings.token is not None else None
        middleware: dict[str, fl.ServerMiddlewareFactory] = {
            "auth": BearerTokenMiddlewareFactory(token)
        }
        before = listeners()
        super().__init__(
            f"{scheme}://{host}:{settings.flight_port}",
            tls_certificates=tls,
            auth_handler=HandshakeOk(),
            middleware=middleware,
        )
        self.core = core
        self.location = f"{scheme}://{host}:{self.port}"
        # The addresses gRPC listens on for this server (the sockets that appeared with
        # it): shutdown drops only connections accepted there, never another server's
        # in this process that has the same port number on another address.
        self._listening = frozenset(
            address
            for inode, address in listeners().items()
            if inode not in before and address[2] == self.port
        )
        # Uploads used to be spooled here before they were stored; remove what a
        # crash of such a version left behind.
        spool = settings.data_dir / "uploads"
        for stale in spool.glob("*.arrows"):
            stale.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            spool.rmdir()
        self._closed = threading.Event()
        self._closing = threading.Event()  # set past the shutdown deadline: streams end
        self._stopper: threading.Thread | None = None  # gRPC's shutdown, once begun
        self._deadline = math.inf
        self._stop_lock = threading.Lock()
        register_local(self.location, core)  # the REST app beside it skips the gRPC hop
        flight_sql.warm_up(core)  # a first Flight SQL query then finds its table loaded

    def begin_close(self, timeout: float | None = None) -> None:
        """Refuse new calls from now on, and start the shutdown deadline. Idempotent.

        Running calls go on; :meth:`close` waits for them until the deadline:
        ``timeout`` seconds from now, by default ``settings.shutdown_timeout_s``.
        The store stays open (the REST app beside may still be finishing).
        """
        with self._stop_lock:
            if self._stopper is not None:
                return
            limit = self.core.settings.shutdown_timeout_s if timeout is None else timeout
            self._deadline = time.monotonic() + max(0.0, limit)
            self._stopper = threading.Thread(
                target=self._stop_grpc, name="quiver-flight-stop", daemon=True
            )
            self._stopper.start()  # returns once no call is running

    def close(self, *, cancel_builds: bool = False, timeout: float | None = None) -> None:
        """Stop serving by the deadline, then close the store. Idempotent.

        New calls are refused at once (:meth:`begin_close`; if that was called
        already, its deadline holds and ``timeout`` is ignored). Running calls
        and builds may finish until the deadline; ``cancel_builds`` cancels
        builds at once instead. Past the deadline, DoGet streams and uploads end
        with ``FlightUnavailableError`` "server shutting down", builds are
        cancelled (marked failed, their followers woken), and the connections
        of calls still stuck — a client that stopped reading leaves its stream
        blocked inside gRPC — are dropped.
        """
        if self._closed.is_set():
            return
        self._closed.set()
        self.begin_close(timeout)
        stopper = self._stopper
        assert stopper is not None
        if cancel_builds:
            self._cancel_builds()
        stopper.join(max(0.0, self._deadline - time.monotonic()))
        if stopper.is_alive():
            log.warning("shutdown: deadline reached, cancelling the calls still running")
            self._cancel_calls(stopper)
            cancel_builds = True
        elif not cancel_builds:
            cancel_builds = not self._builds_done(self._deadline)
        unregister_local(self.location)
        self.core.close(cancel=cancel_builds)

    def _stop_grpc(self) -> None:
        try:
            self.shutdown()
        except Exception:
            log.exception("shutdown of the Flight server failed")

    def _cancel_builds(self) -> None:
        # Materializer.close(cancel=True) cancels every build, then waits for them;
        # only the cancel is wanted here (core.close waits later), so it runs aside.
        threading.Thread(
            target=self.core.materializer.close,
            kwargs={"cancel": True},
            name="quiver-cancel-builds",
            daemon=True,
        ).start()

    def _cancel_calls(self, stopper: threading.Thread) -> None:
        self._closing.set()  # streams end before their next batch
        self._cancel_builds()  # reads blocked on a build wake with its failure
        stopper.join(CANCEL_GRACE_S)
        if stopper.is_alive():
            dropped = drop_connections(self.port, self._listening)
            log.warning("shutdown: dropped %d stuck client connection(s)", dropped)
            stopper.join(DRAIN_S)
        if stopper.is_alive():
            log.error("shutdown: the Flight server did not stop; closing the store anyway")

    def _builds_done(self, deadline: float) -> bool:
        """Wait for running builds until ``deadline``; whether none is left."""
        for build in self.core.materializer.building():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            with contextlib.suppress(Exception):  # a failed build is done too
                build.wait(remaining)
        return not self.core.materializer.building()

    # --- FlightInfo ---------------------------------------------------------
    def _endpoints(self, info: ArtifactInfo, wrap: Wrap = None) -> list[fl.FlightEndpoint]:
        if info.parts:
            return part_endpoints(self.core.store, info, self.core.nodes.plan(), wrap)
        batches = info.num_batches or 0
        parts = math.ceil((info.byte_size or 0) / self.core.settings.flight_endpoint_bytes)
        parts = min(parts, batches)
        if parts <= 1:
            tickets = [ArtifactTicket(info.artifact_id, info.version).encode()]
        else:
            bounds = [round(i * batches / parts) for i in range(parts + 1)]
            tickets = [
                ArtifactTicket(info.artifact_id, info.version, start, stop).encode()
                for start, stop in itertools.pairwise(bounds)
            ]
        return [fl.FlightEndpoint(wrap(t) if wrap else t, []) for t in tickets]

    def _ready_info(
        self,
        descriptor: fl.FlightDescriptor,
        info: ArtifactInfo,
        meta: dict[str, Any],
        wrap: Wrap = None,
    ) -> fl.FlightInfo:
        if info.state not in ("ready", "superseded"):
            if info.state == "failed":
                raise BuildFailed(
                    f"artifact {info.uri} failed: {info.error}", detail={"error": info.error}
                )
            raise Conflict(f"artifact {info.uri} is {info.state}", detail={"state": info.state})
        return fl.FlightInfo(
            info.schema,
            descriptor,
            self._endpoints(info, wrap),
            info.row_count if info.row_count is not None else -1,
            info.byte_size if info.byte_size is not None else -1,
            ordered=True,
            app_metadata=encode_json(meta),
        )

    def _live_info(
        self,
        descriptor: fl.FlightDescriptor,
        build: Build,
        meta: dict[str, Any],
        wrap: Wrap = None,
    ) -> fl.FlightInfo:
        schema = build.wait_schema()
        ticket = ArtifactTicket(build.artifact_id, build.version).encode()
        ticket = wrap(ticket) if wrap else ticket
        return fl.FlightInfo(
            schema,
            descriptor,
            [fl.FlightEndpoint(ticket, [])],
            -1,
            -1,
            ordered=True,
            app_metadata=encode_json(meta),
        )

    def _artifact_info(
        self, descriptor: fl.FlightDescriptor, artifact_id: str, version: int
    ) -> fl.FlightInfo:
        info = self.core.store.get(artifact_id, version)
        meta = {"artifact_uri": info.uri, "hit": True, "state": info.state}
        if info.state == "building":
            for build in self.core.materializer.building():
                if (build.artifact_id, build.version) == (artifact_id, version):
                    return self._live_info(descriptor, build, {**meta, "hit": False})
        return self._ready_info(descriptor, info, meta)

    @guard
    def get_flight_info(
        self, context: fl.ServerCallContext, descriptor: fl.FlightDescriptor
    ) -> fl.FlightInfo:
        command = flight_sql.command_of(descriptor)
        if command is not None:  # Flight SQL: a query is a sql@v1 materialize
            with status_errors():
                target = flight_sql.info_target(command, self.core.settings.warehouses)
                if not isinstance(target, MaterializeRequest):
                    return flight_sql.metadata_info(descriptor, target)
                return self._target_info(descriptor, target, flight_sql.statement_ticket)
        return self._target_info(descriptor, decode_info_descriptor(descriptor))

    def _target_info(
        self,
        descriptor: fl.FlightDescriptor,
        target: ArtifactPath | NamePath | MaterializeRequest,
        wrap: Wrap = None,
    ) -> fl.FlightInfo:
        if isinstance(target, ArtifactPath):
            return self._artifact_info(descriptor, target.artifact_id, target.version)
        if isinstance(target, NamePath):
            named = self.core.store.get_name(target.name)
            return self._artifact_info(descriptor, named.artifact_id, named.version)
        assert isinstance(target, MaterializeRequest)
        result = materialize(self.core, target)
        meta = result_json(result, target)
        if result.info is not None and result.info.state in ("ready", "superseded"):
            return self._ready_info(descriptor, result.info, meta, wrap)
        assert result.build is not None
        return self._live_info(descriptor, result.build, meta, wrap)

    @guard
    def get_schema(
        self, context: fl.ServerCallContext, descriptor: fl.FlightDescriptor
    ) -> fl.SchemaResult:
        return fl.SchemaResult(self.get_flight_info(context, descriptor).schema)

    @guard
    def list_flights(
        self, context: fl.ServerCallContext, criteria: bytes
    ) -> Iterator[fl.FlightInfo]:
        prefix = criteria.decode("utf-8", "replace") if criteria else None
        infos = []
        for named in self.core.store.list_names(prefix or None):
            try:
                info = self.core.store.get(named.artifact_id, named.version)
            except Exception:  # the artifact vanished between the two reads
                continue
            if info.state not in ("ready", "superseded"):
                continue
            meta = {"artifact_uri": info.uri, "name": named.name, "name_uri": named.uri}
            descriptor = fl.FlightDescriptor.for_path("name", named.name)
            infos.append(self._ready_info(descriptor, info, meta))
        return iter(infos)

    # --- data ---------------------------------------------------------------
    @guard
    def do_get(self, context: fl.ServerCallContext, ticket: fl.Ticket) -> fl.FlightDataStream:
        raw = ticket.ticket
        message = flight_sql.ticket_of(raw)
        if message is not None:
            with status_errors():
                if isinstance(message, flight_sql.StatementTicket):
                    return ticket_stream(self.core, message.statement_handle, self._closing)
                reader = flight_sql.metadata_reader(self.core, message)
                return data_stream(reader, self.core.settings, self._closing)
        return ticket_stream(self.core, raw, self._closing)

    @guard
    def do_put(
        self,
        context: fl.ServerCallContext,
        descriptor: fl.FlightDescriptor,
        reader: fl.MetadataRecordBatchReader,
        writer: fl.FlightMetadataWriter,
    ) -> None:
        sql_command = flight_sql.command_of(descriptor)
        if sql_command is not None:  # Flight SQL: parameters of a prepared query
            with status_errors():
                chunks = self._chunks(context, reader)
                answer = flight_sql.do_put(sql_command, chunks, reader.schema)
            writer.write(pa.py_buffer(answer))
            return
        command = decode_put_descriptor(descriptor)
        answer = self._store_upload(context, reader, command)
        writer.write(pa.py_buffer(encode_json(answer)))

    def _store_upload(
        self,
        context: fl.ServerCallContext,
        reader: fl.MetadataRecordBatchReader,
        command: PutCommand,
    ) -> dict[str, Any]:
        # One pass: the batches go straight into a store build, hashed as they are
        # written; the provenance (and so the dedupe) is settled when it publishes.
        stated = stated_provenance(self.core, command.metadata)
        try:
            if stated is not None:
                info, deduped = store_stated(
                    self.core,
                    reader.schema,
                    self._chunks(context, reader),
                    stated,
                    command.metadata,
                )
            else:
                info, deduped = store_content(
                    self.core, reader.schema, self._chunks(context, reader), command.metadata
                )
        except pa.ArrowInvalid as exc:
            raise InvalidArgument(f"invalid upload stream: {exc}") from None
        return self._put_answer(info, deduped, command)

    def _put_answer(self, info: ArtifactInfo, deduped: bool, command: PutCommand) -> dict[str, Any]:
        store = self.core.store
        answer = info_json(info)
        answer["deduplicated"] = deduped
        answer["name_uri"] = None
        if command.name is not None:
            answer["name_uri"] = store.set_name(command.name, info.artifact_id, info.version).uri
        return answer

    def _chunks(
        self, context: fl.ServerCallContext, reader: fl.MetadataRecordBatchReader
    ) -> Iterator[pa.RecordBatch]:
        # An upload still arriving past the shutdown deadline is cut short, and so
        # leaves nothing behind. So is one whose call was cancelled (its client
        # went away, or shutdown dropped its connection): gRPC then ends the
        # stream as if it were complete, and only the context tells.
        while True:
            try:
                chunk = reader.read_chunk()
            except StopIteration:
                if not context.is_cancelled():
                    return
                if self._closing.is_set():
                    raise Unavailable(SHUTTING_DOWN) from None
                raise InvalidArgument("the upload was cancelled before it ended") from None
            if self._closing.is_set():
                raise Unavailable(SHUTTING_DOWN)
            if chunk.data is not None:
                yield chunk.data

    # --- actions ------------------------------------------------------------
    @guard
    def list_actions(self, context: fl.ServerCallContext) -> list[tuple[str, str]]:
        return [(spec.name, spec.description) for spec in ACTIONS.values()]

    @guard
    def do_action(self, context: fl.ServerCallContext, action: fl.Action) -> Iterable[fl.Result]:
        raw = action.body.to_pybytes() if action.body is not None else b""
        if action.type in flight_sql.ACTION_TYPES:
            with status_errors():
                answers = flight_sql.do_action(self.core, action.type, raw)
            return [fl.Result(pa.py_buffer(body)) for body in answers]
        if action.type == renditions.READ:  # raw bytes, many results
            return renditions.do_read(self.core, raw)
        return [fl.Result(pa.py_buffer(run_action(self.core, action.type, raw)))]


def serve(core: Core) -> QuiverFlightServer:
    """Start a server for ``core`` (it listens at once); call ``close()`` to stop."""
    return QuiverFlightServer(core)


def start(settings: Any, **kwargs: Any) -> QuiverFlightServer:
    """Open a :class:`Core` from settings and serve it."""
    core = Core.open(settings, **kwargs)
    try:
        return QuiverFlightServer(core)
    except BaseException:
        with contextlib.suppress(Exception):
            core.close()
        raise


__all__ = ["QuiverFlightServer", "serve", "start"]
