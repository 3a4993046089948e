"""Arrow Flight: the server (``flight.server``) and the Python client (``flight.client``).

The public door: :class:`QuiverFlightServer`, :class:`Core`, :func:`start`,
:class:`QuiverClient` and :func:`connect`. The wire protocol is in
``flight.protocol`` and docs/flight.md.
"""

from __future__ import annotations

from flight.client import QuiverClient, connect
from flight.core import Core
from flight.server import QuiverFlightServer, start

__all__ = ["Core", "QuiverClient", "QuiverFlightServer", "connect", "start"]
