"""A plain ``scan@v1`` as a query over the snapshot's files, for another query to read.

``sql@v1`` over a table whose scan is not cached reads the table's Parquet files
directly (the same field-id mapping as a scan) instead of materializing every
column of the table first. The query runs with file access off except for exactly
these files, so it is offered only when a raw read of them shows nothing the
table does not: no delete files in the snapshot (a raw read would see deleted
rows) and no column ever dropped from the table (its values are still in the files).
"""

from __future__ import annotations

from dataclasses import dataclass

from catalog import ResolvedTable, Warehouses
from executors.scan.plan import check_tasks, local_path
from executors.scan.sql import duck_type, query_text


@dataclass(frozen=True, slots=True)
class FileScan:
    """A plain scan as one SQL text without parameters, and the files it reads."""

    sql: str
    files: tuple[str, ...]


def file_scan(resolved: ResolvedTable, warehouses: Warehouses) -> FileScan | None:
    """The plain scan of ``resolved`` over its data files, or None when a raw read of
    those files could show more than the scan (see the module doc) or the scan cannot
    read every column (the scan itself then says why)."""
    fields = list(resolved.schema.fields)
    if any(duck_type(f) is None for f in fields):
        return None
    kept = {f.field_id for f in fields}
    for schema in resolved.table.metadata.schemas:
        if any(f.field_id not in kept for f in schema.fields):
            return None  # a dropped column (or a pinned older schema): read through the scan
    tasks = warehouses.plan(resolved)
    if check_tasks(resolved, tasks):
        return None
    files = [local_path(t.file.file_path) for t in tasks]
    sql, params = query_text(resolved.schema, fields, [], files, [], inline_files=True)
    assert not params
    return FileScan(sql, tuple(files))
