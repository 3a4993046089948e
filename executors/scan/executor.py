"""``scan@v1``: read one Iceberg table snapshot with DuckDB.

pyiceberg plans (snapshot → data files with their delete files, pruned by
partition values and column stats); DuckDB reads the Parquet files with the
snapshot's field ids mapped to names, so renamed, added and dropped columns
read right. Projection and filters are pushed down in SQL, every user value is
bound as a parameter, and the result streams out as a ``RecordBatchReader``.
The pieces: :mod:`~executors.scan.params`, :mod:`~executors.scan.plan`,
:mod:`~executors.scan.sql`, :mod:`~executors.scan.run`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa
from pydantic import BaseModel

from catalog import ResolvedTable, TableRef, Warehouses, parse_uri
from executors.base import Partitioned, ResolvedInput, RunContext
from executors.scan.params import NAME, ScanParams, canonical_value, check_columns, filter_key
from executors.scan.partitions import (
    ScanShare,
    group_files,
    pieces,
    result_schema,
    row_group_sizes,
    split_files,
)
from executors.scan.plan import check_tasks, compile_filter, find_field, local_path
from executors.scan.run import Query, clear_databases
from executors.scan.sql import CompiledFilter, duck_type
from foundation import InvalidArgument

if TYPE_CHECKING:
    from pyiceberg.schema import Schema
    from pyiceberg.table import FileScanTask
    from pyiceberg.types import NestedField


class ScanExecutor:
    name: ClassVar[str] = NAME
    params_model: ClassVar[type[BaseModel]] = ScanParams
    ordered_inputs: ClassVar[bool] = False
    input_kinds: ClassVar[tuple[str, ...]] = ("table",)
    description: ClassVar[str] = (
        "Read one Iceberg table snapshot: optional column projection (in the given order), "
        "exact filters with SQL null semantics ({column, op, value}; ops =, !=, <, <=, >, >=, "
        "in, is_null, not_null) and snapshot_id time travel. Files are pruned by partition "
        "values and column stats, read by Iceberg field id, with position deletes applied."
    )

    def __init__(self, warehouses: Warehouses | None = None) -> None:
        # Only the plan cache is used here; the materialize layer resolves tables.
        self._warehouses = warehouses or Warehouses()

    def clear_caches(self) -> dict[str, int]:
        """Forget the file plans and the idle DuckDB databases (the ``cache-clear`` action)."""
        return {"plans": self._warehouses.clear_plans(), "duckdb_databases": clear_databases()}

    def check_inputs(self, input_uris: Sequence[str]) -> None:
        if len(input_uris) != 1:
            raise InvalidArgument(
                f"{NAME} transform requires exactly one input, got {len(input_uris)}",
                detail={"inputs": list(input_uris)},
            )
        ref = parse_uri(input_uris[0])
        if not isinstance(ref, TableRef):
            raise InvalidArgument(
                f"{NAME} reads a table URI, not {input_uris[0]!r} "
                "(give file:///path/to/warehouse#namespace.table)",
                detail={"input": input_uris[0]},
            )

    def identity(self, params: BaseModel) -> dict[str, Any]:
        p = ScanParams.model_validate(params.model_dump())
        check_columns(p.columns)
        filters: dict[str, dict[str, Any]] = {}
        for f in p.filters or []:
            value = canonical_value(f.value)
            op = f.op
            if op == "in" and isinstance(value, list) and len(value) == 1:
                op, value = "=", value[0]  # x IN (v) is x = v
            item = {"column": f.column, "op": op, "value": value}
            filters[filter_key(item)] = item
        return {
            "columns": p.columns,
            "filters": [filters[k] for k in sorted(filters)],
            "snapshot_id": p.snapshot_id,
        }

    def run(
        self, inputs: Sequence[ResolvedInput], params: BaseModel, ctx: RunContext
    ) -> pa.RecordBatchReader:
        scan = self._prepare(inputs, params)
        data_files = [local_path(t.file.file_path) for t in scan.tasks]
        return Query(
            ctx, scan.schema, scan.out_fields, scan.filters, data_files, scan.delete_files
        ).reader()

    def partitions(
        self,
        inputs: Sequence[ResolvedInput],
        params: BaseModel,
        ctx: RunContext,
        *,
        target_bytes: int,
        min_parts: int,
    ) -> Partitioned | None:
        """The scan as contiguous groups of data files balanced by bytes, a big file cut
        into row-group ranges, each group with the delete files of its own data files;
        None when that is one group."""
        scan = self._prepare(inputs, params)
        sizes = [t.file.file_size_in_bytes for t in scan.tasks]
        paths = [local_path(t.file.file_path) for t in scan.tasks]

        def row_groups(i: int) -> tuple[tuple[int, int], ...]:
            return row_group_sizes(paths[i], sizes[i])

        units = split_files(sizes, target_bytes, min_parts, row_groups)
        groups = group_files([u.bytes for u in units], target_bytes, min_parts)
        if len(groups) < 2:
            return None
        shares = []
        for group in groups:
            taken = pieces(
                units[group.start : group.stop], lambda i: sum(r for r, _ in row_groups(i))
            )
            tasks = [scan.tasks[i] for i, _ in taken]
            shares.append(
                ScanShare(
                    scan.schema,
                    tuple(scan.out_fields),
                    tuple(scan.filters),
                    tuple(paths[i] for i, _ in taken),
                    tuple(check_tasks(scan.resolved, tasks)),
                    group.bytes,
                    tuple((paths[i], *rows) for i, rows in taken if rows is not None),
                )
            )
        schema = result_schema(ctx, scan.schema, scan.out_fields, scan.filters)
        return Partitioned(schema, tuple(shares))

    def _prepare(self, inputs: Sequence[ResolvedInput], params: BaseModel) -> _Prepared:
        """Params checked against the table, and its planned files (refusing what the
        scan cannot read exactly)."""
        if len(inputs) != 1:
            raise InvalidArgument(f"{NAME} transform requires exactly one input, got {len(inputs)}")
        resolved = inputs[0].table
        if not isinstance(resolved, ResolvedTable):
            raise InvalidArgument(f"{NAME} reads a table URI, not {inputs[0].uri!r}")
        p = params if isinstance(params, ScanParams) else ScanParams.model_validate(params)
        check_columns(p.columns)
        schema = resolved.schema

        if p.columns is None:
            out_fields = list(schema.fields)
        else:
            out_fields = [find_field(schema, c, "params.columns") for c in p.columns]
        for field in out_fields:
            if duck_type(field) is None:
                raise InvalidArgument(
                    f"{NAME} cannot read column {field.name!r} of type {field.field_type} yet "
                    "(nested and exotic types); list the columns you need in params.columns",
                    detail={"column": field.name, "type": str(field.field_type)},
                )
        compiled = [compile_filter(i, f, schema) for i, f in enumerate(p.filters or [])]

        tasks = self._warehouses.plan(resolved, [c.predicate for c in compiled])
        delete_files = check_tasks(resolved, tasks)
        return _Prepared(resolved, schema, out_fields, compiled, list(tasks), delete_files)


@dataclass(frozen=True, slots=True)
class _Prepared:
    resolved: ResolvedTable
    schema: Schema
    out_fields: list[NestedField]
    filters: list[CompiledFilter]
    tasks: list[FileScanTask]
    delete_files: list[str]
