"""``scan@v1``: one Iceberg table snapshot read with DuckDB.

The public door: :class:`ScanExecutor` (the entry point ``executors.scan:ScanExecutor``)
and its params. docs/scan.md states what it reads and how.
"""

from __future__ import annotations

from executors.scan.direct import FileScan, file_scan
from executors.scan.executor import ScanExecutor
from executors.scan.params import Filter, ScanParams
from executors.scan.run import TIMER_THREAD_NAME, clear_databases

__all__ = [
    "TIMER_THREAD_NAME",
    "FileScan",
    "Filter",
    "ScanExecutor",
    "ScanParams",
    "clear_databases",
    "file_scan",
]
