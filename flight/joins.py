"""The actions data nodes call on their head: join, heartbeat, and the list of live nodes.

:class:`flight.nodes.DataNodes` keeps the nodes; :mod:`flight.datanode` is the other side.
"""

from __future__ import annotations

from typing import Any

from flight.core import Core
from flight.dispatch import action
from foundation import InvalidArgument


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
