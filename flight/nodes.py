"""Data nodes, seen from the head: who joined, who is still alive, and where each part is read.

A data node (``quiver flight --join grpc://head:port``, :mod:`flight.datanode`) calls
the ``node-register`` action with the location it serves at; the head answers with a
node id, the part storage's URI and the heartbeat period. The node then calls
``node-heartbeat`` every period. A node whose heartbeats stop for
:data:`MISSED_BEATS` periods is dropped: it is left out of every FlightInfo from then
on (a heartbeat from a node the head forgot answers ``known: false``, and the node
registers again).

:meth:`DataNodes.plan` spreads a partitioned artifact's endpoints over the live nodes:
part ``i``'s primary location is node ``i mod n`` (in the order they joined), the
other nodes follow as fallbacks, so a client reading the endpoints at once pulls
from every node, and a client whose node dies retries on the next location.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

Locations = Callable[[int], list[str]]
"""The locations of part ``i``'s endpoint, primary first."""

MISSED_BEATS = 3
"""Heartbeat periods without a heartbeat after which a node is dropped."""


@dataclass
class _Node:
    node_id: str
    location: str
    joined: float
    seen: float


class DataNodes:
    """The data nodes that joined this head. Thread-safe."""

    def __init__(self, heartbeat_s: float = 2.0) -> None:
        self.heartbeat_s = heartbeat_s
        self._lock = threading.Lock()
        self._nodes: dict[str, _Node] = {}

    def register(self, location: str) -> str:
        """A node serving at ``location`` joins (a node there before is replaced); its id."""
        now = time.monotonic()
        node = _Node(uuid.uuid4().hex[:16], location, now, now)
        with self._lock:
            for old in [n for n in self._nodes.values() if n.location == location]:
                del self._nodes[old.node_id]
            self._nodes[node.node_id] = node
        return node.node_id

    def beat(self, node_id: str) -> bool:
        """A heartbeat; False when the node is not (or no longer) known."""
        with self._lock:
            self._prune()
            node = self._nodes.get(node_id)
            if node is not None:
                node.seen = time.monotonic()
            return node is not None

    def leave(self, node_id: str) -> None:
        with self._lock:
            self._nodes.pop(node_id, None)

    def live(self) -> list[str]:
        """The live nodes' locations, in the order they joined."""
        with self._lock:
            self._prune()
            return [n.location for n in sorted(self._nodes.values(), key=lambda n: n.joined)]

    def plan(self) -> Locations:
        """Where part ``i`` is read: its primary node first, the others as fallbacks."""
        live = self.live()

        def locations(i: int) -> list[str]:
            if not live:
                return []
            k = i % len(live)
            return live[k:] + live[:k]

        return locations

    def _prune(self) -> None:
        deadline = time.monotonic() - MISSED_BEATS * self.heartbeat_s
        for node in [n for n in self._nodes.values() if n.seen < deadline]:
            del self._nodes[node.node_id]
