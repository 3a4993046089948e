"""The SQL ``scan@v1`` runs: Iceberg types read as DuckDB types, quoting, the query text.

DuckDB reads the Parquet files with the snapshot's field ids mapped to names
(``read_parquet(..., schema = MAP {...})``), so renamed, added and dropped
columns read right; position deletes are an anti-join on file and row number.
Every user value is a bound parameter, never pasted into the text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from catalog import Predicate

if TYPE_CHECKING:
    from pyiceberg.schema import Schema
    from pyiceberg.types import NestedField

# Iceberg primitive type (as pyiceberg prints it) → DuckDB type used to read it.
_DUCK_TYPES = {
    "boolean": "BOOLEAN",
    "int": "INTEGER",
    "long": "BIGINT",
    "float": "FLOAT",
    "double": "DOUBLE",
    "date": "DATE",
    "time": "TIME",
    "timestamp": "TIMESTAMP",
    "timestamptz": "TIMESTAMPTZ",
    "timestamp_ns": "TIMESTAMP_NS",
    "timestamptz_ns": "TIMESTAMPTZ",
    "string": "VARCHAR",
    "uuid": "UUID",
    "binary": "BLOB",
}
COMPARISONS = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
UNARY = {"is_null": "IS NULL", "not_null": "IS NOT NULL"}


def type_name(field: NestedField) -> str:
    return str(field.field_type)


def duck_type(field: NestedField) -> str | None:
    name = type_name(field)
    if name.startswith("decimal("):
        precision, scale = field.field_type.precision, field.field_type.scale  # type: ignore[attr-defined]
        return f"DECIMAL({int(precision)},{int(scale)})"
    if name.startswith("fixed["):
        return "BLOB"
    return _DUCK_TYPES.get(name)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def list_literal(texts: list[str]) -> str:
    """A DuckDB list of string literals."""
    return "[" + ", ".join(quote_literal(t) for t in texts) + "]"


@dataclass(frozen=True, slots=True)
class CompiledFilter:
    """One filter as SQL with its bound values, and as a predicate for file pruning."""

    sql: str
    params: tuple[Any, ...]
    predicate: Predicate


def query_text(
    schema: Schema,
    out_fields: list[NestedField],
    filters: list[CompiledFilter],
    data_files: list[str],
    delete_files: list[str],
    *,
    inline_files: bool = False,
    row_ranges: Mapping[str, tuple[int, int]] | None = None,
) -> tuple[str, list[Any]]:
    """The query and its parameters: the projection over the data files, deletes applied.

    ``inline_files`` writes the file lists into the text as literals (they are paths
    from the table's metadata, not user values), for a view, which takes no parameters.
    ``row_ranges`` reads only rows ``[start, stop)`` of the files it names (row-group
    ranges of a big file): each such file is its own ``read_parquet`` filtered on
    ``file_row_number``, which DuckDB answers from the row groups' statistics, skipping
    the others; the pieces are joined in order with ``UNION ALL``.
    """
    projection = ", ".join(quote_ident(f.name) for f in out_fields)
    if not data_files:
        casts = ", ".join(
            f"CAST(NULL AS {duck_type(f)}) AS {quote_ident(f.name)}" for f in out_fields
        )
        return f"SELECT {casts} WHERE false", []
    entries = ", ".join(
        f"{f.field_id}: {{name: {quote_literal(f.name)}, type: {quote_literal(t)}, "
        "default_value: NULL}"
        for f in schema.fields
        if (t := duck_type(f)) is not None
    )
    options = f"schema = MAP {{{entries}}}, hive_partitioning = false"
    if delete_files:
        options += ", filename = true, file_row_number = true"
    elif row_ranges:
        options += ", file_row_number = true"
    params: list[Any] = []
    if row_ranges:
        source = _pieces(data_files, row_ranges, options, inline_files, params)
    else:
        source = f"read_parquet({list_literal(data_files) if inline_files else '?'}, {options})"
        if not inline_files:
            params.append(data_files)
    if delete_files:
        # Position deletes name the data file by its location (a file:// URI
        # or a path) and the row by its position in that file.
        source = (
            f"{source} AS d ANTI JOIN (SELECT CASE WHEN starts_with(file_path, 'file://') "
            "THEN substr(file_path, 8) ELSE file_path END AS del_path, pos AS del_pos "
            f"FROM read_parquet({list_literal(delete_files) if inline_files else '?'}, "
            "hive_partitioning = false)) AS del "
            "ON d.filename = del.del_path AND d.file_row_number = del.del_pos"
        )
        if not inline_files:
            params.append(delete_files)
    sql = f"SELECT {projection} FROM {source}"
    if filters:
        sql += " WHERE " + " AND ".join(f"({c.sql})" for c in filters)
        for c in filters:
            params.extend(c.params)
    return sql, params


def _pieces(
    data_files: list[str],
    row_ranges: Mapping[str, tuple[int, int]],
    options: str,
    inline_files: bool,
    params: list[Any],
) -> str:
    """The files as one ``UNION ALL`` of ``read_parquet`` runs, in order: consecutive
    whole files share a run; a file read in part is a run of its own, filtered on its
    row positions (numbers, bound or inlined: never user values)."""
    runs: list[tuple[list[str], tuple[int, int] | None]] = []
    for path in data_files:
        rows = row_ranges.get(path)
        if rows is None and runs and runs[-1][1] is None:
            runs[-1][0].append(path)
        else:
            runs.append(([path], rows))
    branches = []
    for files, rows in runs:
        branch = f"SELECT * FROM read_parquet({list_literal(files) if inline_files else '?'}, "
        branch += f"{options})"
        if not inline_files:
            params.append(files)
        if rows is not None:
            start, stop = int(rows[0]), int(rows[1])
            if inline_files:
                branch += f" WHERE file_row_number >= {start} AND file_row_number < {stop}"
            else:
                branch += " WHERE file_row_number >= ? AND file_row_number < ?"
                params.extend((start, stop))
        branches.append(branch)
    return "(" + " UNION ALL ".join(branches) + ")"
