"""The Python client. Everything it does, a plain ``pyarrow.flight`` client can do too.

    with connect("grpc://127.0.0.1:8815") as q:
        result = q.materialize("file:///wh#db.events", params={"columns": ["id"]})
        table = q.fetch(result)

Server errors arrive as the matching :class:`foundation.errors.QuiverError`
(``NotFound``, ``InvalidArgument``, ...) with the server's code, message and
detail.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.flight as fl

from flight.errors import from_flight_error, to_flight_error
from flight.protocol import ArtifactTicket, decode_ticket, encode_json, local_core
from foundation import InvalidArgument, TooLarge

if TYPE_CHECKING:
    import polars as pl

    from flight.renditions import RenditionReader
    from materialize import MaterializeRequest

DEFAULT_LOCATION = "grpc://127.0.0.1:8815"
PUT_BATCH_BYTES = 64 * 1024**2
"""DoPut sends batches of about this size at most: gRPC carries no message over 2 GiB, so
a bigger batch (one a client built, or read from an upload) goes as slices of it."""
MAX_MESSAGE_BYTES = 2**31 - 1


def put_pieces(batch: pa.RecordBatch, most: int = PUT_BATCH_BYTES) -> Iterator[pa.RecordBatch]:
    """``batch`` as zero-copy slices of about ``most`` bytes each (itself when small)."""
    size = batch.nbytes
    if size <= most or batch.num_rows <= 1:
        if size > MAX_MESSAGE_BYTES:
            raise TooLarge(
                f"one row of {size} bytes cannot be sent: Flight carries at most "
                f"{MAX_MESSAGE_BYTES} bytes in one message",
                detail={"bytes": size, "limit": MAX_MESSAGE_BYTES},
            )
        yield batch
        return
    rows = max(1, batch.num_rows * most // size)
    for start in range(0, batch.num_rows, rows):
        yield from put_pieces(batch.slice(start, rows), most)


Target = str | dict[str, Any]
"""An artifact or name URI, a table URI (read as a plain scan), or a materialize result."""


class FlightStream:
    """One DoGet in progress. :meth:`cancel` is thread-safe: a read blocked in another
    thread fails at once, and the server stops sending (and releases what it holds)."""

    def __init__(self, reader: fl.FlightStreamReader, schema: pa.Schema) -> None:
        self._reader = reader
        self.schema = schema

    def batches(self) -> Iterator[pa.RecordBatch]:
        try:
            while True:
                try:
                    chunk = self._reader.read_chunk()
                except StopIteration:
                    return
                if chunk.data is not None:
                    yield chunk.data
        except fl.FlightError as exc:
            raise from_flight_error(exc) from None
        finally:
            self._reader.cancel()

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self.schema, self.batches())

    def cancel(self) -> None:
        self._reader.cancel()


class QuiverClient:
    """A connection to a Quiver Flight server. Thread-safe; a context manager."""

    def __init__(
        self,
        location: str = DEFAULT_LOCATION,
        *,
        token: str | None = None,
        tls_root_certs: bytes | None = None,
        timeout: float | None = None,
        **connect_kwargs: Any,
    ) -> None:
        if tls_root_certs is not None:
            connect_kwargs["tls_root_certs"] = tls_root_certs
        self.location = location
        self._client = fl.connect(location, **connect_kwargs)
        headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
        self._options = fl.FlightCallOptions(timeout=timeout, headers=headers)
        self._token = token

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> QuiverClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing -------------------------------------------------------------
    def action(self, name: str, body: dict[str, Any] | None = None) -> Any:
        """Run one action and decode its JSON answer."""
        return self.action_raw(name, encode_json(body or {}))

    def action_raw(self, name: str, raw: bytes) -> Any:
        """Run one action on a JSON body already encoded; its decoded JSON answer."""
        try:
            results = list(self._client.do_action(fl.Action(name, raw), self._options))
        except fl.FlightError as exc:
            raise from_flight_error(exc) from None
        return json.loads(results[0].body.to_pybytes()) if results else None

    def raw_action(self, name: str, raw: bytes) -> Iterator[Any]:
        """Run one action whose results are raw bytes (``rendition-read``): the results,
        the first one already received, so an error of the call is raised here."""
        try:
            results = iter(self._client.do_action(fl.Action(name, raw), self._options))
            first = next(results, None)
        except fl.FlightError as exc:
            raise from_flight_error(exc) from None
        return results if first is None else itertools.chain((first,), results)

    @staticmethod
    def _request(
        inputs: str | Sequence[str],
        executor: str,
        params: dict[str, Any] | None,
        **fields: Any,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "inputs": [inputs] if isinstance(inputs, str) else list(inputs),
            "transform": {"executor": executor, "params": params or {}},
        }
        body.update({k: v for k, v in fields.items() if v is not None})
        return body

    def _ticket(self, target: Target) -> fl.Ticket:
        if isinstance(target, dict):
            return fl.Ticket(target["ticket"].encode())
        if target.startswith("strata://"):
            return fl.Ticket(target.encode())
        return fl.Ticket(self.materialize(target)["ticket"].encode())

    # --- materializing --------------------------------------------------------
    def materialize(
        self,
        inputs: str | Sequence[str],
        executor: str = "scan@v1",
        params: dict[str, Any] | None = None,
        *,
        name: str | None = None,
        mode: str = "stream",
        refresh: bool = False,
    ) -> dict[str, Any]:
        """Materialize; returns ``artifact_uri``, ``hit``, ``state``, ``ticket``, ... at once.

        A miss answers while the build runs: :meth:`stream` or :meth:`fetch`
        the result to follow it.
        """
        body = self._request(inputs, executor, params, name=name, mode=mode)
        if refresh:
            body["refresh"] = True
        return self.action("materialize", body)

    def explain(
        self,
        inputs: str | Sequence[str],
        executor: str = "scan@v1",
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Would this request hit? Its provenance hash and the resolved input versions."""
        return self.action("explain", self._request(inputs, executor, params))

    # --- reading ----------------------------------------------------------------
    def open_stream(self, target: Target) -> FlightStream:
        """Start a DoGet; the stream can be cancelled from any thread."""
        try:
            reader = self._client.do_get(self._ticket(target), self._options)
            schema = reader.schema
        except fl.FlightError as exc:
            raise from_flight_error(exc) from None
        return FlightStream(reader, schema)

    def stream(self, target: Target) -> pa.RecordBatchReader:
        """Batches of a result, as they arrive (a build in progress is followed)."""
        return self.open_stream(target).reader()

    def table_page(self, artifact_uri: str, **view: Any) -> dict[str, Any]:
        """A page of rows as JSON, the view (filters, search, sort) applied on the server:
        ``offset``, ``limit``, ``filters``, ``search``, ``sort_by``, ``sort_dir``."""
        return self.action("table-page", {"artifact_uri": artifact_uri, **view})

    def table_summary(self, artifact_uri: str) -> dict[str, Any]:
        return self.action("table-summary", {"artifact_uri": artifact_uri})

    def open_view(self, artifact_uri: str, view: dict[str, Any]) -> FlightStream:
        """Every row a view keeps, in its order (a DoGet of a view ticket)."""
        ticket = decode_ticket(artifact_uri.encode())
        if not isinstance(ticket, ArtifactTicket):
            raise InvalidArgument("a view needs an artifact URI (strata://artifact/{id}@v={n})")
        return self.open_stream({"ticket": replace(ticket, view=view).encode().decode()})

    def fetch(self, target: Target) -> pa.Table:
        """A whole result as a table."""
        return self.stream(target).read_all()

    def to_polars(self, target: Target) -> pl.DataFrame:
        import polars as pl

        frame = pl.from_arrow(self.fetch(target))
        assert isinstance(frame, pl.DataFrame)
        return frame

    # --- writing ----------------------------------------------------------------
    def put(
        self,
        data: pa.Table | pa.RecordBatchReader,
        *,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Upload a table as a new artifact (identical uploads dedupe); its status JSON."""
        reader = data if isinstance(data, pa.RecordBatchReader) else data.to_reader()
        command = {"name": name, "metadata": metadata or {}}
        descriptor = fl.FlightDescriptor.for_command(encode_json(command))
        try:
            writer, answers = self._client.do_put(descriptor, reader.schema, self._options)
            with writer:
                for batch in reader:
                    for piece in put_pieces(batch):
                        writer.write_batch(piece)
                writer.done_writing()
                buf = answers.read()
        except fl.FlightError as exc:
            raise from_flight_error(exc) from None
        return json.loads(buf.to_pybytes()) if buf is not None else {}

    # --- names, lineage, housekeeping ------------------------------------------
    def set_name(self, name: str, artifact_uri: str) -> dict[str, Any]:
        return self.action("name-set", {"name": name, "artifact_uri": artifact_uri})

    def get_name(self, name: str) -> dict[str, Any]:
        return self.action("name-get", {"name": name})

    def list_names(self, prefix: str | None = None) -> list[dict[str, Any]]:
        return self.action("name-list", {"prefix": prefix} if prefix else {})["names"]

    def delete_name(self, name: str) -> None:
        self.action("name-delete", {"name": name})

    # --- the registry (docs/registry.md) ------------------------------------------
    def set_alias(
        self, name: str, alias: str, artifact_uri: str, *, actor: str | None = None
    ) -> dict[str, Any]:
        """Point ``name @ alias`` at an artifact (or name) URI; ``status`` is applied,
        unchanged, or pending (a protected alias: nothing changes until approved)."""
        body = {"name": name, "alias": alias, "artifact_uri": artifact_uri, "actor": actor}
        return self.action("alias-set", body)

    def get_alias(self, name: str, alias: str) -> dict[str, Any]:
        return self.action("alias-get", {"name": name, "alias": alias})

    def list_aliases(self, name: str) -> list[dict[str, Any]]:
        return self.action("alias-list", {"name": name})["aliases"]

    def delete_alias(self, name: str, alias: str, *, actor: str | None = None) -> dict[str, Any]:
        return self.action("alias-delete", {"name": name, "alias": alias, "actor": actor})

    def pending_changes(self) -> list[dict[str, Any]]:
        return self.action("alias-pending")["pending"]

    def approve_alias_change(
        self, name: str, alias: str, *, actor: str | None = None
    ) -> dict[str, Any]:
        return self.action("alias-approve", {"name": name, "alias": alias, "actor": actor})

    def reject_alias_change(
        self, name: str, alias: str, *, actor: str | None = None
    ) -> dict[str, Any]:
        return self.action("alias-reject", {"name": name, "alias": alias, "actor": actor})

    def set_tag(self, artifact_id: str, version: int, key: str, value: str) -> dict[str, Any]:
        body = {"artifact_id": artifact_id, "version": version, "key": key, "value": value}
        return self.action("tag-set", body)

    def get_tags(self, artifact_id: str, version: int) -> dict[str, str]:
        return self.action("tag-list", {"artifact_id": artifact_id, "version": version})["tags"]

    def delete_tag(self, artifact_id: str, version: int, key: str) -> None:
        self.action("tag-delete", {"artifact_id": artifact_id, "version": version, "key": key})

    def registry_audit(
        self, *, name: str | None = None, artifact_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Every name, alias and tag change, newest first."""
        body = {"name": name, "artifact_id": artifact_id, "limit": limit}
        query = {k: v for k, v in body.items() if v is not None}
        return self.action("registry-audit", query)["entries"]

    def status(self, uri: str, *, wait_seconds: float = 0.0) -> dict[str, Any]:
        """The version's status; with ``wait_seconds``, once its build ends (or that passes)."""
        body: dict[str, Any] = {"artifact_uri": uri}
        if wait_seconds:
            body["wait_seconds"] = wait_seconds
        return self.action("status", body)

    def lineage(self, uri: str) -> list[dict[str, Any]]:
        return self.action("lineage", {"artifact_uri": uri})["inputs"]

    def dependents(self, uri: str) -> list[dict[str, Any]]:
        return self.action("dependents", {"artifact_uri": uri})["dependents"]

    def delete(self, uri: str) -> None:
        self.action("delete", {"artifact_uri": uri})

    def gc(
        self,
        *,
        max_bytes: int | None = None,
        max_idle_days: float | None = None,
        min_idle_seconds: float | None = None,
        collect_latest: bool = False,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Collect what nothing needs (see docs/flight.md ``gc``); omitted limits take the
        server's configured retention. ``dry_run`` lists what would go, deleting nothing."""
        limits = {"max_bytes": max_bytes, "max_idle_days": max_idle_days,
                  "min_idle_seconds": min_idle_seconds}  # fmt: skip
        body: dict[str, Any] = {k: v for k, v in limits.items() if v is not None}
        return self.action("gc", {**body, "collect_latest": collect_latest, "dry_run": dry_run})

    def usage(self) -> dict[str, Any]:
        """Stored bytes and versions, and how much of it gc could collect."""
        return self.action("usage")

    def cancel(self, build_id: str, *, wait_seconds: float = 5.0) -> dict[str, Any]:
        """Stop a running build (a ``build_id``/``stream_id`` from materialize)."""
        return self.action("cancel", {"build_id": build_id, "wait_seconds": wait_seconds})

    def executors(self) -> list[dict[str, Any]]:
        return self.action("executors")["executors"]

    def health(self) -> dict[str, Any]:
        return self.action("health")


class LocalActions:
    """Actions of a Flight server running in this process, without the gRPC round trip.

    The same dispatch, handlers, JSON and errors as ``DoAction`` (an error goes
    through the server's and the client's mapping, so the caller sees the same
    :class:`foundation.errors.QuiverError`); only the wire is skipped. Used while
    the server at ``client.location`` runs in this process with the same token
    (``quiver serve``), else every call goes to ``client`` over gRPC.
    """

    def __init__(self, client: QuiverClient, *, enabled: bool = True) -> None:
        self.client = client
        self.enabled = enabled

    def _local(self) -> Any:
        if not self.enabled:
            return None
        core = local_core(self.client.location)
        if core is None:
            return None
        token = core.settings.token.get_secret_value() if core.settings.token else None
        return core if token == self.client._token else None

    def action(self, name: str, body: dict[str, Any] | None = None) -> Any:
        return self.action_raw(name, encode_json(body or {}))

    def action_raw(self, name: str, raw: bytes) -> Any:
        core = self._local()
        if core is None:
            return self.client.action_raw(name, raw)
        from flight.dispatch import run_action  # loaded already: the server is in this process

        try:
            answer = run_action(core, name, raw)
        except Exception as exc:
            raise from_flight_error(to_flight_error(exc)) from None
        return json.loads(answer)

    def cached_hit(self, request: MaterializeRequest) -> dict[str, Any] | None:
        """The ``materialize`` answer for ``request`` when it is a cache hit that the server
        in this process can answer from memory without blocking; else None (then call
        :meth:`action`). Safe on an event loop: it saves the worker-thread hop."""
        core = self._local()
        if core is None:
            return None
        from flight.actions import result_json

        result = core.materializer.cached_hit(request)
        return None if result is None else result_json(result, request)

    @property
    def renditions(self) -> RenditionReader:
        """The file renditions of artifacts (:mod:`flight.renditions`), read in this
        process when the server runs here, else over gRPC."""
        from flight.renditions import RenditionReader

        return RenditionReader(self.client, self._local)

    def open_ready(self, uri: str) -> pa.RecordBatchReader | None:
        """The batches of the finished artifact ``uri`` (artifact or name URI) read in
        this process, as ``DoGet`` would send them; None when the read must go over
        Flight (no server here, or a build in progress, which only a Flight read
        can cancel while it waits)."""
        core = self._local()
        if core is None or not uri.startswith("strata://"):
            return None
        from flight.streams import open_ready_local

        try:
            return open_ready_local(core, uri.encode())
        except Exception as exc:
            raise from_flight_error(to_flight_error(exc)) from None


def connect(location: str = DEFAULT_LOCATION, **kwargs: Any) -> QuiverClient:
    """Open a :class:`QuiverClient` (see its constructor for ``token``, TLS, timeout)."""
    return QuiverClient(location, **kwargs)
