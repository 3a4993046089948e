"""Quiver: an Arrow Flight data service with a REST facade.

This package is the roof: the ``quiver`` command (:mod:`quiver.cli`), which
starts the Flight server, the REST app, or both, and runs the demo and
one-off materializations. Everything it starts lives in the packages below it;
docs/layout.md says which owns what.
"""

from __future__ import annotations
