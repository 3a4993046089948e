"""Arrow Flight: the server, the Python client, and the wire protocol both speak.

The public door: :class:`QuiverFlightServer`, :class:`Core` and :func:`start`
(the server side), :class:`DataNodeServer` (a data node of a head), and
:func:`action`, the hook a layer above registers an action of its own with;
:class:`QuiverClient`, :func:`connect` and :class:`LocalActions` (the client side),
and :func:`root_certificates` (what a client of a ``grpc+tls`` server trusts);
the protocol's request models, limits and upload markers, which the REST layer
states and checks as they are here.
The wire protocol is written down in docs/flight.md.
"""

from __future__ import annotations

from flight.client import LocalActions, QuiverClient, connect
from flight.core import Core
from flight.datanode import DataNodeServer
from flight.dispatch import action
from flight.protocol import MAX_COMMAND_BYTES, check_command_size
from flight.runtime import process_json
from flight.security import root_certificates
from flight.server import QuiverFlightServer, start
from flight.uploads import (
    BLOB_COLUMN,
    BLOB_MARKER,
    PROVENANCE_HASH_PATTERN,
    check_provenance_hash,
)
from materialize import MaterializeRequest, Transform

__all__ = [
    "BLOB_COLUMN",
    "BLOB_MARKER",
    "MAX_COMMAND_BYTES",
    "PROVENANCE_HASH_PATTERN",
    "Core",
    "DataNodeServer",
    "LocalActions",
    "MaterializeRequest",
    "QuiverClient",
    "QuiverFlightServer",
    "Transform",
    "action",
    "check_command_size",
    "check_provenance_hash",
    "connect",
    "process_json",
    "root_certificates",
    "start",
]
