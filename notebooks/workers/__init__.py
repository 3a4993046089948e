"""Workers: running a cell on a Dask cluster or another Quiver node (API.md §8).

The door: :class:`Workers` (the catalog with its health probes, and how a cell
assigned to a worker runs), the worker spec with its validation, and the
transports Quiver runs and accepts. The runner (above) decides *that* a cell
runs; this room says *where* and carries it there.
"""

from __future__ import annotations

from notebooks.workers.cell_service import CellService, disable_remote_cells, enable_remote_cells
from notebooks.workers.pool import Remote, Workers, kept_at
from notebooks.workers.spec import (
    LOCAL,
    NAME_PATTERN,
    RUNNABLE,
    TRANSPORTS,
    NotebookWorkerSpec,
    WorkerSpec,
    valid_name,
)

__all__ = [
    "LOCAL",
    "NAME_PATTERN",
    "RUNNABLE",
    "TRANSPORTS",
    "CellService",
    "NotebookWorkerSpec",
    "Remote",
    "WorkerSpec",
    "Workers",
    "disable_remote_cells",
    "enable_remote_cells",
    "kept_at",
    "valid_name",
]
