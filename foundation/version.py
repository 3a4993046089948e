"""Quiver's version, as the REST app and the CLI report it."""

from __future__ import annotations

__version__ = "0.1.0"
