"""Execution engines: the kernel subprocess, the interpreters it may run in, SQL cells.

These run one cell's code and know nothing of sessions, the DAG or the cache;
``notebooks.runner`` (above) decides what runs, in which order, and what is
reused. The door: :class:`KernelProcess` / :class:`KernelDied`, the interpreter
discovery and the notebook's own interpreter, and the SQL cell run with its
cancellable build.
"""

from __future__ import annotations

from notebooks.execution.flightconfig import FlightConfig
from notebooks.execution.interpreters import discover, notebook_python
from notebooks.execution.kernel import KernelDied, KernelProcess
from notebooks.execution.sqlcell import SqlBuild, SqlCellError, run_sql

__all__ = [
    "FlightConfig",
    "KernelDied",
    "KernelProcess",
    "SqlBuild",
    "SqlCellError",
    "discover",
    "notebook_python",
    "run_sql",
]
