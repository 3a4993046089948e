"""Planning ``scan@v1``: filter values checked against column types, and the files to read.

pyiceberg plans (snapshot → data files with their delete files, pruned by
partition values and column stats, :meth:`catalog.Warehouses.plan`); here each
filter is compiled to SQL with typed values (never coerced across kinds) and a
predicate for that pruning, and the planned files are checked for what
``scan@v1`` can read exactly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from uuid import UUID

from catalog import Predicate, ResolvedTable
from executors.scan.params import NAME, Filter, Scalar
from executors.scan.sql import COMPARISONS, UNARY, CompiledFilter, duck_type, quote_ident, type_name
from foundation import InvalidArgument

if TYPE_CHECKING:
    from pyiceberg.schema import Schema
    from pyiceberg.table import FileScanTask
    from pyiceberg.types import NestedField


def _describe(value: object) -> str:
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        type(value), type(value).__name__
    )
    return f"{json.dumps(value)} ({kind})"


def _typed_scalar(field: NestedField, value: Scalar, where: str) -> Any:
    """``value`` as a Python value of the column's type, or InvalidArgument."""
    kind = type_name(field)

    def refuse(need: str) -> InvalidArgument:
        return InvalidArgument(
            f"{where}: value {_describe(value)} does not fit column {field.name!r} "
            f"of type {kind}; it needs {need}",
            detail={"column": field.name, "type": kind, "value": value},
        )

    if kind == "boolean":
        if isinstance(value, bool):
            return value
        raise refuse("true or false")
    if kind in ("int", "long"):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise refuse("an integer (strings and booleans are not converted)")
    if kind in ("float", "double"):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise refuse("a number")
    if kind.startswith("decimal("):
        if isinstance(value, bool):
            raise refuse("a number or a decimal string")
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise refuse("a number or a decimal string") from None
    if kind == "string":
        if isinstance(value, str):
            return value
        raise refuse("a string")
    if not isinstance(value, str):
        need = {"uuid": "a UUID string"}.get(kind, "an ISO-8601 string")
        raise refuse(need)
    try:
        if kind == "uuid":
            return UUID(value)
        if kind == "date":
            return date.fromisoformat(value)
        if kind == "time":
            return time.fromisoformat(value)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        need = "a UUID string" if kind == "uuid" else f"an ISO-8601 {kind} string"
        raise refuse(need) from None
    if kind in ("timestamptz", "timestamptz_ns"):
        # A value without an offset is read as UTC, the zone Iceberg stores.
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    if parsed.tzinfo is not None:
        if parsed.utcoffset():
            raise refuse("a timestamp without a UTC offset (the column has no time zone)")
        parsed = parsed.replace(tzinfo=None)
    return parsed


def compile_filter(index: int, f: Filter, schema: Schema) -> CompiledFilter:
    where = f"filter {index} ({f.column} {f.op})"
    field = find_field(schema, f.column, f"filter {index}")
    kind = type_name(field)
    col = quote_ident(field.name)
    if duck_type(field) is None:
        raise InvalidArgument(
            f"{where}: {NAME} cannot filter on column {field.name!r} of type {kind} yet "
            "(nested and exotic types)",
            detail={"filter": index, "column": field.name, "type": kind},
        )
    if f.op in UNARY:
        if f.value is not None:
            raise InvalidArgument(
                f"{where}: op {f.op!r} takes no value, got {_describe(f.value)}",
                detail={"filter": index, "op": f.op},
            )
        return CompiledFilter(f"{col} {UNARY[f.op]}", (), Predicate(field.field_id, f.op))
    if kind in ("binary",) or kind.startswith("fixed["):
        raise InvalidArgument(
            f"{where}: column {field.name!r} is {kind}; binary columns accept only the "
            "is_null and not_null ops",
            detail={"filter": index, "column": field.name, "type": kind},
        )
    if f.value is None:
        raise InvalidArgument(
            f"{where}: op {f.op!r} needs a value (use is_null / not_null to test for null)",
            detail={"filter": index, "op": f.op},
        )
    if f.op == "in":
        if not isinstance(f.value, list) or not f.value:
            raise InvalidArgument(
                f"{where}: op 'in' needs a non-empty list of values, got {_describe(f.value)}",
                detail={"filter": index, "op": f.op},
            )
        typed: list[Any] = []
        for v in f.value:
            t = _typed_scalar(field, v, where)
            if t not in typed:
                typed.append(t)
        marks = ", ".join("?" for _ in typed)
        return CompiledFilter(
            f"{col} IN ({marks})", tuple(typed), Predicate(field.field_id, "in", tuple(typed))
        )
    if isinstance(f.value, list):
        raise InvalidArgument(
            f"{where}: op {f.op!r} takes one value, not a list (use 'in' for a list)",
            detail={"filter": index, "op": f.op},
        )
    value = _typed_scalar(field, f.value, where)
    return CompiledFilter(
        f"{col} {COMPARISONS[f.op]} ?", (value,), Predicate(field.field_id, f.op, value)
    )


def find_field(schema: Schema, name: str, where: str) -> NestedField:
    for field in schema.fields:
        if field.name == name:
            return field
    names = [f.name for f in schema.fields]
    raise InvalidArgument(
        f"{where}: unknown column {name!r}; the table's columns are: {', '.join(names)}",
        detail={"column": name, "columns": names},
    )


def local_path(location: str) -> str:
    if location.startswith("file://"):
        rest = location[len("file://") :]
        return rest[len("localhost") :] if rest.startswith("localhost/") else rest
    if location.startswith("/"):
        return location
    raise InvalidArgument(
        f"scan@v1 reads local files only; the table references {location!r}",
        detail={"location": location},
    )


def check_tasks(resolved: ResolvedTable, tasks: Sequence[FileScanTask]) -> list[str]:
    """Local paths of the position-delete files the tasks carry; refuses what
    Quiver cannot apply exactly (equality deletes, non-Parquet files)."""
    from pyiceberg.manifest import DataFileContent, FileFormat

    deletes: dict[str, None] = {}
    for task in tasks:
        if task.file.file_format != FileFormat.PARQUET:
            raise InvalidArgument(
                f"table {resolved.ref.identifier} has a {task.file.file_format.value} data file; "
                "scan@v1 reads Parquet data files only",
                detail={"file": task.file.file_path},
            )
        for d in task.delete_files:
            if d.content != DataFileContent.POSITION_DELETES or d.file_format != FileFormat.PARQUET:
                what = (
                    "equality delete"
                    if d.content == DataFileContent.EQUALITY_DELETES
                    else f"{d.file_format.value} delete"
                )
                raise InvalidArgument(
                    f"table {resolved.ref.identifier} at snapshot {resolved.snapshot_id} has "
                    f"{what} files, which scan@v1 cannot apply yet; refusing to read rows "
                    "that may have been deleted",
                    detail={"delete_file": d.file_path},
                )
            deletes[local_path(d.file_path)] = None
    return list(deletes)
