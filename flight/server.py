"""The Quiver Flight server: materialize, FlightInfo, DoGet, DoPut, ListFlights, actions.

Every handler runs under :func:`flight.errors.guard`, so a failure reaches the
client as a Flight error with a one-line message and JSON ``extra_info`` —
never a server traceback. docs/flight.md describes the protocol.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.flight as fl

import flight.queries  # noqa: F401  (registers its actions)
from catalog.store import ArtifactInfo, Build
from flight.actions import ACTIONS, info_json, materialize, result_json, run_action
from flight.core import Core
from flight.errors import guard
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
    check_bind,
    host_for_uri,
    tls_certificates,
)
from flight.streams import data_stream, open_ticket
from flight.uploads import stated_provenance, store_content, store_stated
from quiver.errors import BuildFailed, Conflict, InvalidArgument
from quiver.materialize import MaterializeRequest


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
        middleware: dict[str, fl.ServerMiddlewareFactory] = {}
        if settings.token is not None:
            middleware["auth"] = BearerTokenMiddlewareFactory(settings.token.get_secret_value())
        super().__init__(
            f"{scheme}://{host}:{settings.flight_port}",
            tls_certificates=tls,
            middleware=middleware or None,
        )
        self.core = core
        self.location = f"{scheme}://{host}:{self.port}"
        # Uploads used to be spooled here before they were stored; remove what a
        # crash of such a version left behind.
        spool = settings.data_dir / "uploads"
        for stale in spool.glob("*.arrows"):
            stale.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            spool.rmdir()
        self._closed = threading.Event()
        register_local(self.location, core)  # the REST app beside it skips the gRPC hop

    def close(self, *, cancel_builds: bool = False) -> None:
        """Stop serving, let builds finish (or cancel them), close the store. Idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        unregister_local(self.location)
        self.shutdown()
        self.core.close(cancel=cancel_builds)

    # --- FlightInfo ---------------------------------------------------------
    def _endpoints(self, info: ArtifactInfo) -> list[fl.FlightEndpoint]:
        batches = info.num_batches or 0
        parts = math.ceil((info.byte_size or 0) / self.core.settings.flight_endpoint_bytes)
        parts = min(parts, batches)
        if parts <= 1:
            return [fl.FlightEndpoint(ArtifactTicket(info.artifact_id, info.version).encode(), [])]
        bounds = [round(i * batches / parts) for i in range(parts + 1)]
        return [
            fl.FlightEndpoint(
                ArtifactTicket(info.artifact_id, info.version, start, stop).encode(), []
            )
            for start, stop in itertools.pairwise(bounds)
        ]

    def _ready_info(
        self, descriptor: fl.FlightDescriptor, info: ArtifactInfo, meta: dict[str, Any]
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
            self._endpoints(info),
            info.row_count if info.row_count is not None else -1,
            info.byte_size if info.byte_size is not None else -1,
            ordered=True,
            app_metadata=encode_json(meta),
        )

    def _live_info(
        self, descriptor: fl.FlightDescriptor, build: Build, meta: dict[str, Any]
    ) -> fl.FlightInfo:
        schema = build.wait_schema()
        ticket = ArtifactTicket(build.artifact_id, build.version).encode()
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
        target = decode_info_descriptor(descriptor)
        if isinstance(target, ArtifactPath):
            return self._artifact_info(descriptor, target.artifact_id, target.version)
        if isinstance(target, NamePath):
            named = self.core.store.get_name(target.name)
            return self._artifact_info(descriptor, named.artifact_id, named.version)
        assert isinstance(target, MaterializeRequest)
        result = materialize(self.core, target)
        meta = result_json(result, target)
        if result.info is not None and result.info.state in ("ready", "superseded"):
            return self._ready_info(descriptor, result.info, meta)
        assert result.build is not None
        return self._live_info(descriptor, result.build, meta)

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
        return data_stream(open_ticket(self.core, ticket.ticket), self.core.settings)

    @guard
    def do_put(
        self,
        context: fl.ServerCallContext,
        descriptor: fl.FlightDescriptor,
        reader: fl.MetadataRecordBatchReader,
        writer: fl.FlightMetadataWriter,
    ) -> None:
        command = decode_put_descriptor(descriptor)
        answer = self._store_upload(reader, command)
        writer.write(pa.py_buffer(encode_json(answer)))

    def _store_upload(
        self, reader: fl.MetadataRecordBatchReader, command: PutCommand
    ) -> dict[str, Any]:
        # One pass: the batches go straight into a store build, hashed as they are
        # written; the provenance (and so the dedupe) is settled when it publishes.
        stated = stated_provenance(self.core, command.metadata)
        try:
            if stated is not None:
                info, deduped = store_stated(
                    self.core, reader.schema, _chunks(reader), stated, command.metadata
                )
            else:
                info, deduped = store_content(
                    self.core, reader.schema, _chunks(reader), command.metadata
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

    # --- actions ------------------------------------------------------------
    @guard
    def list_actions(self, context: fl.ServerCallContext) -> list[tuple[str, str]]:
        return [(spec.name, spec.description) for spec in ACTIONS.values()]

    @guard
    def do_action(self, context: fl.ServerCallContext, action: fl.Action) -> list[fl.Result]:
        raw = action.body.to_pybytes() if action.body is not None else b""
        return [fl.Result(pa.py_buffer(run_action(self.core, action.type, raw)))]


def _chunks(reader: fl.MetadataRecordBatchReader) -> Iterator[pa.RecordBatch]:
    while True:
        try:
            chunk = reader.read_chunk()
        except StopIteration:
            return
        if chunk.data is not None:
            yield chunk.data


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
