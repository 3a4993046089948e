"""Quiver: an Arrow Flight data service with a REST facade.

This package holds what every layer shares: the settings object, the domain
error tree, and the library-level ``materialize`` service that ties the
catalog to the executors. Transports (``flight``, ``rest``) sit on top.
"""

from __future__ import annotations

__version__ = "0.1.0"
