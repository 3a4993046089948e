"""A Flight data node: stateless, it serves the parts of partitioned artifacts; and the
actions it calls on its head (``node-register``, ``node-heartbeat``, ``node-leave``,
``node-list``), whose registry of nodes is :class:`flight.nodes.DataNodes`.

``quiver flight --join grpc://head:port`` starts one. It keeps no metadata: it joins
its head (the ``node-register`` action, below), which answers with the
part storage's URI and the heartbeat period, then heartbeats every period from a
thread, joining again when the head forgot it (a head restarted, or a pause long
enough to be dropped). A ``DoGet`` of a part ticket streams that part from the part
storage (:func:`flight.parts.open_part`: checked against the ticket's size, a part
that cannot be read is a clean Flight error). The rendition actions are answered
here too (:mod:`flight.node_renditions`): the head says where its copy is in the part
storage, the node reads the bytes. Every other call is the head's and is passed on
to it as it is (actions, ``GetFlightInfo``, ``DoGet`` of an artifact), so a client
(a REST front end, ``quiver rest --flight grpc://<node>``) may take any node for its
Flight server; ``DoPut`` is refused (put to the head). ``node-status`` is the node's
own: its head, part storage and what it served of renditions. On close it leaves
the head at once (``node-leave``).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.flight as fl

from catalog import PartStore
from flight.core import Core
from flight.dispatch import action
from flight.errors import guard, one_line
from flight.node_renditions import NodeRenditions
from flight.parts import open_part
from flight.protocol import PartTicket, decode_ticket, encode_json, load_json
from flight.renditions import READ
from flight.security import (
    BearerTokenMiddlewareFactory,
    HandshakeOk,
    check_bind,
    host_for_uri,
    root_certificates,
    tls_certificates,
)
from flight.streams import data_stream
from foundation import InvalidArgument, QuiverError, Settings, Unavailable

log = logging.getLogger("quiver.flight.node")

JOIN_TIMEOUT_S = 10.0
"""How long one call to the head may take (join, heartbeat, leave)."""


class DataNodeServer(fl.FlightServerBase):
    """Serves part tickets from the part storage its head names. Starts on construction:
    listens, joins the head (raises if the head does not answer), starts heartbeating."""

    def __init__(self, settings: Settings, head: str, advertise: str | None = None) -> None:
        check_bind(settings)
        tls = tls_certificates(settings)
        roots = root_certificates(settings, head)  # the head's CA, for grpc+tls
        scheme = "grpc+tls" if tls else "grpc"
        host = host_for_uri(settings.host)
        token = settings.token.get_secret_value() if settings.token is not None else None
        super().__init__(
            f"{scheme}://{host}:{settings.flight_port}",
            tls_certificates=tls,
            auth_handler=HandshakeOk(),
            middleware={"auth": BearerTokenMiddlewareFactory(token)},
        )
        self.settings = settings
        self.location = advertise or f"{scheme}://{host}:{self.port}"
        self.head = head
        headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
        self._options = fl.FlightCallOptions(timeout=JOIN_TIMEOUT_S, headers=headers)
        self._forwarding = fl.FlightCallOptions(headers=headers)  # as long as the caller's
        self._client = fl.connect(head, **({"tls_root_certs": roots} if roots else {}))
        self._stop = threading.Event()
        try:
            answer = self._join()
        except BaseException:
            self.shutdown()
            raise
        self.parts = PartStore(answer["part_storage"])
        self.heartbeat_s = float(answer["heartbeat_s"])
        self.renditions = NodeRenditions(self.parts, self._ask)
        self._beats = threading.Thread(target=self._heartbeat, name="quiver-node-beat", daemon=True)
        self._beats.start()

    # --- the head ----------------------------------------------------------------
    def _call(
        self, name: str, body: dict[str, Any], options: fl.FlightCallOptions | None = None
    ) -> Any:
        """Action ``name`` on the head, its JSON answer (with the node's own call options:
        the join timeout; a forwarded call passes the caller's)."""
        results = self._client.do_action(
            fl.Action(name, encode_json(body)), options or self._options
        )
        return load_json(next(iter(results)).body.to_pybytes(), f"answer to {name}")

    def _ask(self, name: str, body: dict[str, Any]) -> Any:
        """A forwarded action's JSON answer; the head's errors as they are."""
        with self._at_head():
            return self._call(name, body, self._forwarding)

    def _join(self) -> dict[str, Any]:
        try:
            answer = self._call("node-register", {"location": self.location})
        except fl.FlightError as exc:
            raise Unavailable(
                f"cannot join the head at {self.head}: {one_line(str(exc))}"
            ) from None
        self.node_id = str(answer["node_id"])
        return answer

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                if not self._call("node-heartbeat", {"node_id": self.node_id})["known"]:
                    log.warning("the head at %s forgot this node: joining again", self.head)
                    self._join()
            except Exception as exc:  # the head is away: keep trying, it may come back
                log.warning("heartbeat to %s failed: %s", self.head, exc)

    def close(self) -> None:
        """Leave the head, stop heartbeating, stop serving. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._beats.join()
        with contextlib.suppress(Exception):
            self._call("node-leave", {"node_id": self.node_id})
        self._client.close()
        self.shutdown()

    # --- Flight --------------------------------------------------------------------
    @contextlib.contextmanager
    def _at_head(self) -> Iterator[None]:
        """A call passed on to the head: its errors as they are, but a head that does not
        answer at all (no error of its own) is said to be the head."""
        try:
            yield
        except fl.FlightUnavailableError as exc:
            if getattr(exc, "extra_info", None):  # the head's own answer
                raise
            raise Unavailable(
                f"the head of this data node ({self.head}) does not answer: {one_line(str(exc))}"
            ) from None

    @guard
    def do_get(self, context: fl.ServerCallContext, ticket: fl.Ticket) -> fl.FlightDataStream:
        if self._stop.is_set():
            raise Unavailable("data node shutting down")
        try:
            target = decode_ticket(ticket.ticket)
        except QuiverError:  # not one of ours (e.g. Flight SQL's): the head says what it is
            target = None
        if not isinstance(target, PartTicket):  # the head's to serve: its stream, passed on
            return data_stream(self._forwarded_get(ticket), self.settings)
        return data_stream(open_part(self.parts, target), self.settings)

    def _forwarded_get(self, ticket: fl.Ticket) -> pa.RecordBatchReader:
        with self._at_head():
            reader = self._client.do_get(ticket, self._forwarding)
            schema = reader.schema  # the head's error for a bad ticket is raised here

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                with self._at_head():
                    for chunk in reader:
                        yield chunk.data
            finally:
                reader.cancel()

        return pa.RecordBatchReader.from_batches(schema, batches())

    @guard
    def get_flight_info(
        self, context: fl.ServerCallContext, descriptor: fl.FlightDescriptor
    ) -> fl.FlightInfo:
        with self._at_head():
            return self._client.get_flight_info(descriptor, self._forwarding)

    @guard
    def do_put(
        self,
        context: fl.ServerCallContext,
        descriptor: fl.FlightDescriptor,
        reader: fl.MetadataRecordBatchReader,
        writer: fl.FlightMetadataWriter,
    ) -> None:
        raise InvalidArgument(f"a data node stores nothing; put to its head ({self.head})")

    @guard
    def do_action(self, context: fl.ServerCallContext, action: fl.Action) -> Any:
        """The rendition actions are answered here (the bytes from the part storage);
        ``node-status`` is this node's; every other action is the head's, passed on."""
        raw = action.body.to_pybytes() if action.body is not None else b""
        if action.type == READ:
            return self.renditions.read(raw)
        if action.type == "rendition":
            return [fl.Result(pa.py_buffer(encode_json(self.renditions.describe(raw))))]
        if action.type == "node-status":
            return [fl.Result(pa.py_buffer(encode_json(self._status())))]
        with self._at_head():
            results = iter(self._client.do_action(action, self._forwarding))
            first = next(results, None)  # the head's error is the call's
        return [] if first is None else itertools.chain((first,), results)

    def _status(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "location": self.location,
            "head": self.head,
            "part_storage": self.parts.uri,
            **self.renditions.served.json(),
        }


# --- the head's side: the actions a node calls -------------------------------------
def _location(body: Any) -> str:
    location = body.get("location") if isinstance(body, dict) else None
    if not isinstance(location, str) or not location.startswith(("grpc://", "grpc+tls://")):
        raise InvalidArgument('node-register needs "location": "grpc://host:port"')
    return location


@action("node-register", 'A data node joins: {"location"}; its node id, part storage, heartbeat.')
def _register(core: Core, body: Any) -> dict[str, Any]:
    node_id = core.nodes.register(_location(body))
    return {
        "node_id": node_id,
        "part_storage": core.store.parts.uri,
        "heartbeat_s": core.nodes.heartbeat_s,
    }


@action("node-heartbeat", 'A data node is alive: {"node_id"}; "known": false means join again.')
def _heartbeat(core: Core, body: Any) -> dict[str, Any]:
    node_id = body.get("node_id") if isinstance(body, dict) else None
    if not isinstance(node_id, str):
        raise InvalidArgument('node-heartbeat needs "node_id"')
    return {"known": core.nodes.beat(node_id)}


@action("node-list", "The live data nodes' locations, in the order they joined.")
def _list(core: Core, body: Any) -> dict[str, Any]:
    return {"nodes": core.nodes.live(), "heartbeat_s": core.nodes.heartbeat_s}


@action("node-leave", 'A data node leaves at once: {"node_id"}.')
def _leave(core: Core, body: Any) -> dict[str, Any]:
    node_id = body.get("node_id") if isinstance(body, dict) else None
    if not isinstance(node_id, str):
        raise InvalidArgument('node-leave needs "node_id"')
    core.nodes.leave(node_id)
    return {"left": node_id}
