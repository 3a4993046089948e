"""``scan@v1`` split into partitions, for a build spread over Dask workers.

The snapshot's data files, in plan order, are cut into contiguous groups balanced
by bytes: concatenated in order, the groups' results are the whole scan, in the
order the in-process scan gives. Each group carries the delete files of its own
data files, and runs the very query the in-process scan runs
(:class:`~executors.scan.run.Query`), with the filters bound as parameters.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
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


def share_count(total: int, target_bytes: int, min_parts: int) -> int:
    """How many shares ``total`` bytes make: 1 under one target; else one per target,
    rounded up to a multiple of ``min_parts`` (the cluster's worker threads), so every
    thread gets as many shares as the others: 3 shares on 2 threads take as long as 4
    (two rounds), so they might as well be the 4 smaller ones."""
    target = max(1, target_bytes)
    if total < target:
        return 1
    step = max(1, min_parts)
    shares = math.ceil(total / target)
    return math.ceil(shares / step) * step


def group_files(sizes: Sequence[int], target_bytes: int, min_parts: int) -> list[FileGroup]:
    """Cut files of ``sizes`` (in order) into contiguous groups balanced by bytes.

    Files that hold less than ``target_bytes`` in all are one group (spreading
    them would cost more than it saves). Otherwise as many groups as
    :func:`share_count` says, never more than there are files. Group ``k`` of
    ``n`` ends at the first file where the running total reaches ``k/n`` of the
    whole, leaving at least one file for each group after it.
    """
    count = len(sizes)
    if count == 0:
        return []
    total = sum(max(0, s) for s in sizes)
    n = min(count, share_count(total, target_bytes, min_parts))
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
class Unit:
    """What :func:`group_files` groups: data file ``file`` (an index into the plan),
    whole, or its rows ``[start, stop)`` (a run of its row groups); its bytes."""

    file: int
    bytes: int
    rows: tuple[int, int] | None = None


RowGroups = Callable[[int], Sequence[tuple[int, int]]]
"""File index → (rows, bytes) of each of its row groups, in order."""


def split_files(
    sizes: Sequence[int], target_bytes: int, min_parts: int, row_groups: RowGroups
) -> list[Unit]:
    """The files as units to group: a file bigger than one share's goal (the whole
    divided by the number of shares the target and ``min_parts`` ask for) is cut into
    its row groups, each weighing its share of the file's bytes; the others stay whole.
    Files under one target in all are not cut (they will be one share)."""
    total = sum(max(0, s) for s in sizes)
    units: list[Unit] = []
    count = share_count(total, target_bytes, min_parts)
    goal = total / count
    for i, size in enumerate(sizes):
        groups = row_groups(i) if count > 1 and size > goal else ()
        weight = sum(b for _, b in groups)
        if len(groups) < 2 or weight <= 0:
            units.append(Unit(i, max(0, size)))
            continue
        start = done = weighed = 0
        for rows, b in groups:
            weighed += b
            share = round(size * weighed / weight) - done  # the shares add up to the size
            units.append(Unit(i, share, (start, start + rows)))
            start, done = start + rows, done + share
    return units


def row_group_sizes(path: str, size: int) -> tuple[tuple[int, int], ...]:
    """(rows, compressed bytes) of each row group of the Parquet file at ``path``, from
    its footer (read once per file and size: Iceberg data files never change); none when
    the footer cannot be read (the file is then scanned whole, and its share says why;
    the next plan reads the footer again)."""
    try:
        return _footer_row_groups(path, size)
    except (OSError, pa.ArrowException):
        return ()


@functools.lru_cache(maxsize=4096)
def _footer_row_groups(path: str, size: int) -> tuple[tuple[int, int], ...]:
    import pyarrow.parquet as pq

    meta = pq.read_metadata(path)
    groups = (meta.row_group(i) for i in range(meta.num_row_groups))
    return tuple(
        (g.num_rows, sum(g.column(c).total_compressed_size for c in range(g.num_columns)))
        for g in groups
    )


Piece = tuple[int, int] | None
"""Rows ``[start, stop)`` of a file, or None for all of it."""


def pieces(units: Sequence[Unit], file_rows: Callable[[int], int]) -> list[tuple[int, Piece]]:
    """Consecutive units of one file joined: (file index, rows or None when whole)."""
    out: list[tuple[int, Piece]] = []
    for u in units:
        if out and out[-1][0] == u.file and out[-1][1] is not None and u.rows is not None:
            out[-1] = (u.file, (out[-1][1][0], u.rows[1]))
        else:
            out.append((u.file, u.rows))
    return [
        (i, None if rows is not None and rows[0] == 0 and rows[1] >= file_rows(i) else rows)
        for i, rows in out
    ]


@dataclass(frozen=True, slots=True)
class ScanShare:
    """One partition of a scan: its data files and their delete files. Picklable."""

    schema: Schema
    out_fields: tuple[NestedField, ...]
    filters: tuple[CompiledFilter, ...]
    data_files: tuple[str, ...]
    delete_files: tuple[str, ...]
    bytes: int
    row_ranges: tuple[tuple[str, int, int], ...] = ()
    """Files of ``data_files`` read in part: (path, first row, row after the last)."""

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
            {path: (start, stop) for path, start, stop in self.row_ranges} or None,
        )


def result_schema(
    ctx: RunContext,
    schema: Schema,
    out_fields: Sequence[NestedField],
    filters: Sequence[CompiledFilter],
) -> pa.Schema:
    """The schema every share's reader gives, learned without reading a file."""
    return Query(ctx, schema, list(out_fields), list(filters), [], []).result_schema()
