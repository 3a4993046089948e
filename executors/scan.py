"""``scan@v1``: read one Iceberg table snapshot with DuckDB.

pyiceberg plans (snapshot → data files with their delete files, pruned by
partition values and column stats); DuckDB reads the Parquet files with the
snapshot's field ids mapped to names, so renamed, added and dropped columns
read right. Projection and filters are pushed down in SQL, every user value is
bound as a parameter, and the result streams out as a ``RecordBatchReader``.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from uuid import UUID

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from catalog import Predicate, ResolvedTable, TableRef, Warehouses, parse_uri
from executors.base import ResolvedInput, RunContext
from executors.duck import Interrupter
from foundation import InvalidArgument, Timeout, Unavailable

if TYPE_CHECKING:
    import duckdb
    from pyiceberg.schema import Schema
    from pyiceberg.table import FileScanTask
    from pyiceberg.types import NestedField

NAME = "scan@v1"
TIMER_THREAD_NAME = "quiver-scan-time-limit"

Op = Literal["=", "!=", "<", "<=", ">", ">=", "in", "is_null", "not_null"]
Scalar = str | bool | int | float


class Filter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    column: str
    op: Op
    value: Scalar | list[Scalar] | None = None


class ScanParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    columns: list[str] | None = None
    filters: list[Filter] | None = None
    snapshot_id: int | None = None


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
_COMPARISONS = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_UNARY = {"is_null": "IS NULL", "not_null": "IS NOT NULL"}


def _type_name(field: NestedField) -> str:
    return str(field.field_type)


def _duck_type(field: NestedField) -> str | None:
    name = _type_name(field)
    if name.startswith("decimal("):
        precision, scale = field.field_type.precision, field.field_type.scale  # type: ignore[attr-defined]
        return f"DECIMAL({int(precision)},{int(scale)})"
    if name.startswith("fixed["):
        return "BLOB"
    return _DUCK_TYPES.get(name)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# ---------------------------------------------------------------------------
# Filter values: checked against the column type, never coerced across kinds.


def _describe(value: object) -> str:
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        type(value), type(value).__name__
    )
    return f"{json.dumps(value)} ({kind})"


def _typed_scalar(field: NestedField, value: Scalar, where: str) -> Any:
    """``value`` as a Python value of the column's type, or InvalidArgument."""
    kind = _type_name(field)

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


@dataclass(frozen=True, slots=True)
class _CompiledFilter:
    sql: str
    params: tuple[Any, ...]
    predicate: Predicate


def _compile_filter(index: int, f: Filter, schema: Schema) -> _CompiledFilter:
    where = f"filter {index} ({f.column} {f.op})"
    field = _find_field(schema, f.column, f"filter {index}")
    kind = _type_name(field)
    col = quote_ident(field.name)
    if _duck_type(field) is None:
        raise InvalidArgument(
            f"{where}: {NAME} cannot filter on column {field.name!r} of type {kind} yet "
            "(nested and exotic types)",
            detail={"filter": index, "column": field.name, "type": kind},
        )
    if f.op in _UNARY:
        if f.value is not None:
            raise InvalidArgument(
                f"{where}: op {f.op!r} takes no value, got {_describe(f.value)}",
                detail={"filter": index, "op": f.op},
            )
        return _CompiledFilter(f"{col} {_UNARY[f.op]}", (), Predicate(field.field_id, f.op))
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
        return _CompiledFilter(
            f"{col} IN ({marks})", tuple(typed), Predicate(field.field_id, "in", tuple(typed))
        )
    if isinstance(f.value, list):
        raise InvalidArgument(
            f"{where}: op {f.op!r} takes one value, not a list (use 'in' for a list)",
            detail={"filter": index, "op": f.op},
        )
    value = _typed_scalar(field, f.value, where)
    return _CompiledFilter(
        f"{col} {_COMPARISONS[f.op]} ?", (value,), Predicate(field.field_id, f.op, value)
    )


def _find_field(schema: Schema, name: str, where: str) -> NestedField:
    for field in schema.fields:
        if field.name == name:
            return field
    names = [f.name for f in schema.fields]
    raise InvalidArgument(
        f"{where}: unknown column {name!r}; the table's columns are: {', '.join(names)}",
        detail={"column": name, "columns": names},
    )


# ---------------------------------------------------------------------------
# Identity


def _canonical_value(value: Any) -> Any:
    if isinstance(value, list):
        unique = {(type(v).__name__, json.dumps(v)): v for v in value}
        return [unique[k] for k in sorted(unique)]
    return value


def _filter_key(f: dict[str, Any]) -> str:
    return json.dumps([f["column"], f["op"], f["value"]], sort_keys=True)


def _check_columns(columns: list[str] | None) -> None:
    if columns is None:
        return
    if not columns:
        raise InvalidArgument(
            "params.columns is empty; omit it (or send null) to read every column"
        )
    seen: set[str] = set()
    for c in columns:
        if c in seen:
            raise InvalidArgument(
                f"params.columns names {c!r} twice; each column may appear once",
                detail={"column": c},
            )
        seen.add(c)


# ---------------------------------------------------------------------------
# Planning helpers


def _local_path(location: str) -> str:
    if location.startswith("file://"):
        rest = location[len("file://") :]
        return rest[len("localhost") :] if rest.startswith("localhost/") else rest
    if location.startswith("/"):
        return location
    raise InvalidArgument(
        f"scan@v1 reads local files only; the table references {location!r}",
        detail={"location": location},
    )


def _check_tasks(resolved: ResolvedTable, tasks: Sequence[FileScanTask]) -> list[str]:
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
            deletes[_local_path(d.file_path)] = None
    return list(deletes)


# ---------------------------------------------------------------------------
# The executor


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
        _check_columns(p.columns)
        filters: dict[str, dict[str, Any]] = {}
        for f in p.filters or []:
            value = _canonical_value(f.value)
            op = f.op
            if op == "in" and isinstance(value, list) and len(value) == 1:
                op, value = "=", value[0]  # x IN (v) is x = v
            item = {"column": f.column, "op": op, "value": value}
            filters[_filter_key(item)] = item
        return {
            "columns": p.columns,
            "filters": [filters[k] for k in sorted(filters)],
            "snapshot_id": p.snapshot_id,
        }

    def run(
        self, inputs: Sequence[ResolvedInput], params: BaseModel, ctx: RunContext
    ) -> pa.RecordBatchReader:
        if len(inputs) != 1:
            raise InvalidArgument(f"{NAME} transform requires exactly one input, got {len(inputs)}")
        resolved = inputs[0].table
        if not isinstance(resolved, ResolvedTable):
            raise InvalidArgument(f"{NAME} reads a table URI, not {inputs[0].uri!r}")
        p = params if isinstance(params, ScanParams) else ScanParams.model_validate(params)
        _check_columns(p.columns)
        schema = resolved.schema

        if p.columns is None:
            out_fields = list(schema.fields)
        else:
            out_fields = [_find_field(schema, c, "params.columns") for c in p.columns]
        for field in out_fields:
            if _duck_type(field) is None:
                raise InvalidArgument(
                    f"{NAME} cannot read column {field.name!r} of type {field.field_type} yet "
                    "(nested and exotic types); list the columns you need in params.columns",
                    detail={"column": field.name, "type": str(field.field_type)},
                )
        compiled = [_compile_filter(i, f, schema) for i, f in enumerate(p.filters or [])]

        tasks = self._warehouses.plan(resolved, [c.predicate for c in compiled])
        delete_files = _check_tasks(resolved, tasks)
        data_files = [_local_path(t.file.file_path) for t in tasks]
        return _Query(ctx, schema, out_fields, compiled, data_files, delete_files).reader()


def _utc_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with every zoned timestamp labelled UTC.

    DuckDB labels TIMESTAMPTZ with its session zone, which is the host's zone
    unless the ICU extension is loaded (it may not be installable here). The
    values are UTC instants either way, so relabelling copies nothing.
    """
    fields = [
        f.with_type(pa.timestamp(f.type.unit, "UTC"))
        if pa.types.is_timestamp(f.type) and f.type.tz is not None and f.type.tz != "UTC"
        else f
        for f in schema
    ]
    return pa.schema(fields, metadata=schema.metadata)


_databases: dict[tuple[int, str], duckdb.DuckDBPyConnection] = {}
_databases_lock = threading.Lock()


def _database(threads: int, memory_limit: str) -> duckdb.DuckDBPyConnection:
    """The in-memory DuckDB database scans connect to, one per configuration.

    Opening a database costs ~30 ms, a sixth of a 1M-row scan; a connection to
    an open one (``cursor()``) costs microseconds and is what each run gets:
    its own interruptible connection, nothing shared but the thread pool and
    memory limit the settings ask for. Scans hold no state in the database.
    """
    import duckdb

    key = (threads, memory_limit)
    with _databases_lock:
        db = _databases.get(key)
        if db is None:
            config: dict[str, Any] = {}
            if threads:
                config["threads"] = threads
            if memory_limit:
                config["memory_limit"] = memory_limit
            db = _databases[key] = duckdb.connect(config=config)
        return db


def clear_databases() -> int:
    """Drop the shared scan databases; how many. A scan running now keeps its own
    connection (and so its database) until it ends; the next scan opens a fresh one,
    and the memory a dropped database held goes when its last connection closes."""
    with _databases_lock:
        dropped = len(_databases)
        _databases.clear()
    return dropped


class _Query:
    """One DuckDB query on a fresh connection, under the time limit."""

    def __init__(
        self,
        ctx: RunContext,
        schema: Schema,
        out_fields: list[NestedField],
        filters: list[_CompiledFilter],
        data_files: list[str],
        delete_files: list[str],
    ) -> None:
        self.ctx = ctx
        self.schema = schema
        self.out_fields = out_fields
        self.filters = filters
        self.data_files = data_files
        self.delete_files = delete_files

    def _sql(self) -> tuple[str, list[Any]]:
        projection = ", ".join(quote_ident(f.name) for f in self.out_fields)
        if not self.data_files:
            casts = ", ".join(
                f"CAST(NULL AS {_duck_type(f)}) AS {quote_ident(f.name)}" for f in self.out_fields
            )
            return f"SELECT {casts} WHERE false", []
        entries = ", ".join(
            f"{f.field_id}: {{name: {_quote_literal(f.name)}, type: {_quote_literal(t)}, "
            "default_value: NULL}"
            for f in self.schema.fields
            if (t := _duck_type(f)) is not None
        )
        options = f"schema = MAP {{{entries}}}, hive_partitioning = false"
        params: list[Any] = [self.data_files]
        if self.delete_files:
            options += ", filename = true, file_row_number = true"
        source = f"read_parquet(?, {options})"
        if self.delete_files:
            # Position deletes name the data file by its location (a file:// URI
            # or a path) and the row by its position in that file.
            source = (
                f"{source} AS d ANTI JOIN (SELECT CASE WHEN starts_with(file_path, 'file://') "
                "THEN substr(file_path, 8) ELSE file_path END AS del_path, pos AS del_pos "
                "FROM read_parquet(?, hive_partitioning = false)) AS del "
                "ON d.filename = del.del_path AND d.file_row_number = del.del_pos"
            )
            params.append(self.delete_files)
        sql = f"SELECT {projection} FROM {source}"
        if self.filters:
            sql += " WHERE " + " AND ".join(f"({c.sql})" for c in self.filters)
            for c in self.filters:
                params.extend(c.params)
        return sql, params

    def _connect(self) -> duckdb.DuckDBPyConnection:
        settings = self.ctx.settings
        return _database(settings.duckdb_threads, settings.duckdb_memory_limit).cursor()

    def reader(self) -> pa.RecordBatchReader:
        limit = self.ctx.settings.query_time_limit_s
        con = self._connect()
        stopped: dict[str, bool] = {}
        # Keeps interrupting until the reader ends: one interrupt that arrives just
        # before DuckDB starts the query would be lost.
        interrupter = Interrupter(con)

        def stop(why: str) -> None:
            stopped.setdefault(why, True)
            interrupter.start()

        timer = threading.Timer(limit, stop, args=("timeout",))
        timer.name = TIMER_THREAD_NAME
        timer.daemon = True

        def cleanup() -> None:
            timer.cancel()
            interrupter.stop()
            con.close()

        try:
            sql, params = self._sql()
            self.ctx.on_cancel(lambda: stop("cancelled"))
            if self.ctx.cancelled:
                raise self._interrupted(stopped)
            timer.start()
            source = con.sql(sql, params=params).to_arrow_reader(self.ctx.settings.batch_size)
        except Exception as exc:
            cleanup()
            if stopped:
                raise self._interrupted(stopped) from exc
            raise
        out_schema = _utc_schema(source.schema)
        relabel = out_schema != source.schema

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                while True:
                    try:
                        batch = source.read_next_batch()
                    except StopIteration:
                        return
                    except Exception as exc:
                        # DuckDB's interrupt reaches us through Arrow's C stream
                        # as an OSError; the flags say whose interrupt it was.
                        if stopped:
                            raise self._interrupted(stopped) from exc
                        raise
                    yield batch.cast(out_schema) if relabel else batch
            finally:
                source.close()
                cleanup()

        gen = batches()
        # A reader dropped before its first batch never runs the generator's
        # finally; the finalizer still stops the timer and closes DuckDB.
        weakref.finalize(gen, cleanup)
        return pa.RecordBatchReader.from_batches(out_schema, gen)

    def _interrupted(self, stopped: dict[str, bool]) -> Exception:
        if "timeout" in stopped:
            limit = self.ctx.settings.query_time_limit_s
            return Timeout(
                f"query exceeded the time limit of {limit:g} s",
                detail={"executor": NAME, "time_limit_s": limit},
            )
        return Unavailable(f"{NAME} query was cancelled", detail={"executor": NAME})
