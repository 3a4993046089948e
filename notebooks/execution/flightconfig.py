"""Where a cell's engines and the server exchange tables: the Flight service."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FlightConfig:
    """Where kernels and the server exchange tables."""

    location: str
    token: str | None = None
