"""``scan@v1`` split into partitions, for a build spread over Dask workers.

The snapshot's data files, in plan order, are cut into contiguous groups balanced
by bytes: concatenated in order, the groups' results are the whole scan, in the
order the in-process scan gives. Each group carries the delete files of its own
data files, and runs the very query the in-process scan runs
(:class:`~executors.scan.run.Query`), with the filters bound as parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from executors.base import RunContext
from executors.scan.run import Query
from executors.scan.sql import CompiledFilter

if TYPE_CHECKING:
    from pyiceberg.schema import Schema
    from pyiceberg.types import NestedField


@dataclass(frozen=True, slots=True)
class FileGroup:
    """Contiguous data files (indexes into the plan), and the bytes they hold."""

    start: int
    stop: int
    bytes: int


def group_files(sizes: Sequence[int], target_bytes: int, min_parts: int) -> list[FileGroup]:
    """Cut files of ``sizes`` (in order) into contiguous groups balanced by bytes.

    Files that hold less than ``target_bytes`` in all are one group (spreading
    them would cost more than it saves). Otherwise as many groups as the target
    asks (total bytes / target, rounded up), but at least ``min_parts``, and
    never more than there are files. Group ``k`` of ``n`` ends at the first file
    where the running total reaches ``k/n`` of the whole, leaving at least one
    file for each group after it.
    """
    count = len(sizes)
    if count == 0:
        return []
    total = sum(max(0, s) for s in sizes)
    target = max(1, target_bytes)
    n = 1 if total < target else max(1, min(count, max(-(-total // target), min_parts)))
    groups: list[FileGroup] = []
    start = 0
    running = 0
    for k in range(1, n):
        goal = total * k / n
        stop = start + 1  # a group has at least one file
        running += max(0, sizes[start])
        limit = count - (n - k)  # files left for the groups after this one
        while stop < limit and running + max(0, sizes[stop]) / 2 <= goal:
            running += max(0, sizes[stop])
            stop += 1
        groups.append(FileGroup(start, stop, sum(max(0, s) for s in sizes[start:stop])))
        start = stop
    groups.append(FileGroup(start, count, sum(max(0, s) for s in sizes[start:])))
    return groups


@dataclass(frozen=True, slots=True)
class ScanShare:
    """One partition of a scan: its data files and their delete files. Picklable."""

    schema: Schema
    out_fields: tuple[NestedField, ...]
    filters: tuple[CompiledFilter, ...]
    data_files: tuple[str, ...]
    delete_files: tuple[str, ...]
    bytes: int

    def reader(self, ctx: RunContext) -> pa.RecordBatchReader:
        return self._query(ctx).reader()

    def _query(self, ctx: RunContext) -> Query:
        return Query(
            ctx,
            self.schema,
            list(self.out_fields),
            list(self.filters),
            list(self.data_files),
            list(self.delete_files),
        )


def result_schema(
    ctx: RunContext,
    schema: Schema,
    out_fields: Sequence[NestedField],
    filters: Sequence[CompiledFilter],
) -> pa.Schema:
    """The schema every share's reader gives, learned without reading a file."""
    return Query(ctx, schema, list(out_fields), list(filters), [], []).result_schema()
