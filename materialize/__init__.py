"""The orchestration: ``materialize(inputs, transform) -> artifact``.

Resolve every input to a version, hash the provenance, answer a hit from the
store, and otherwise run exactly one build per provenance (single flight) in a
bounded number of build threads, which any number of readers may follow.

The public door: :class:`Materializer`, the request and result models, the
:func:`materialize` convenience, and :func:`leave` (how a command exits past a
build thread that does not stop).
"""

from __future__ import annotations

from materialize.builds import CANCEL_WAIT_S
from materialize.materializer import Materializer, materialize
from materialize.plan import Plan
from materialize.request import MaterializeRequest, MaterializeResult, Transform
from materialize.threads import leave

__all__ = [
    "CANCEL_WAIT_S",
    "MaterializeRequest",
    "MaterializeResult",
    "Materializer",
    "Plan",
    "Transform",
    "leave",
    "materialize",
]
