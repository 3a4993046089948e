"""Views of one artifact answered from its memory-mapped IPC file: pages, summaries, exports.

A *view* is what a table viewer shows: ``filters`` (ANDed ``{col, op, value,
value2}``), a case-insensitive ``search`` over every column, and a global sort.
The file is mapped, never read whole: a page without a view slices the
batches it covers; with one, DuckDB scans only the columns the view names,
numbers the rows as they are stored, and answers the *positions* of the page
(sorted by the sort column, ties in stored order), which are then taken from
the mapped file — so a page of a 5M-row table touches one column and a
hundred rows. ``total`` is the number of rows the view keeps. A query past
``query_time_limit_s`` is interrupted.

Bad filters never fail a viewer: an unknown column or operator, or a value that
does not convert to the column's type, is skipped (as Strata does).
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import decimal
import math
import threading
import uuid
import weakref
from collections.abc import Iterator
from typing import Any, Literal

import duckdb
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from catalog import artifact_uri
from executors import TimeLimit
from flight.args import ArtifactArg
from flight.core import Core
from flight.dispatch import action
from flight.protocol import parse_model
from foundation import InvalidArgument, Timeout

PAGE_LIMIT = 500
OPS = frozenset({"eq", "ne", "gt", "ge", "lt", "le", "between", "contains", "is_null", "not_null"})
_COMPARE = {"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}


class View(BaseModel):
    """Which rows of a table, in which order."""

    model_config = ConfigDict(extra="forbid")

    filters: list[Any] = Field(default_factory=list, max_length=100)
    """``{col, op, value, value2}`` objects; anything else is skipped."""
    search: str | None = Field(default=None, max_length=1000)
    sort_by: str | None = None
    sort_dir: Literal["asc", "desc"] = "asc"

    @property
    def empty(self) -> bool:
        return not self.filters and not self.search and not self.sort_by


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _castable(field: pa.Field) -> bool:
    t = field.type
    return not (pa.types.is_nested(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t))


def _coerce(value: Any, target: pa.DataType) -> Any | None:
    """``value`` as a Python value of the column's type, or None if it does not convert."""
    if value is None:
        return None
    try:
        scalar = pa.array([value]).cast(target)[0]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, TypeError):
        return None
    return scalar.as_py()


def _where(schema: pa.Schema, view: View) -> tuple[list[str], list[Any], set[str]]:
    """SQL predicates (ANDed), their bound values and the columns they read; skipped
    filters leave nothing."""
    clauses: list[str] = []
    params: list[Any] = []
    used: set[str] = set()
    for spec in view.filters:
        if not isinstance(spec, dict):
            continue
        col, op = spec.get("col"), str(spec.get("op") or "")
        if not isinstance(col, str) or col not in schema.names or op not in OPS:
            continue
        field = schema.field(col)
        ref = _quote(col)
        before = len(clauses)
        if op == "is_null":
            clauses.append(f"{ref} IS NULL")
        elif op == "not_null":
            clauses.append(f"{ref} IS NOT NULL")
        elif op == "contains":
            if not _castable(field):
                continue
            clauses.append(f"contains(lower(CAST({ref} AS VARCHAR)), ?)")
            params.append(str(spec.get("value", "")).lower())
        elif op == "between":
            low, high = (
                _coerce(spec.get("value"), field.type),
                _coerce(spec.get("value2"), field.type),
            )
            if low is None or high is None:
                continue
            clauses.append(f"{ref} BETWEEN ? AND ?")
            params += [low, high]
        else:
            value = _coerce(spec.get("value"), field.type)
            if value is None:
                continue
            clauses.append(f"{ref} {_COMPARE[op]} ?")
            params.append(value)
        if len(clauses) > before:
            used.add(col)
    if view.search:
        hits = [
            f"contains(lower(CAST({_quote(f.name)} AS VARCHAR)), ?)" for f in schema if _castable(f)
        ]
        if hits:
            clauses.append("(" + " OR ".join(f"coalesce({h}, false)" for h in hits) + ")")
            params += [view.search.lower()] * len(hits)
            used.update(f.name for f in schema if _castable(f))
    return clauses, params, used


def _numbered(
    schema: pa.Schema, view: View, columns: list[str] | None = None
) -> tuple[str, list[Any]]:
    """A query of the view's rows with ``pos``, each row's place in the file, reading
    only the columns the view needs (and ``columns``); its bound values."""
    clauses, params, used = _where(schema, view)
    sort = view.sort_by if view.sort_by in schema.names else None
    needed = [n for n in schema.names if n in used or n == sort or n in (columns or [])]
    inner = ", ".join(["row_number() OVER () - 1 AS pos", *(_quote(n) for n in needed)])
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    # Without a sort, DuckDB keeps the stored order (preserve_insertion_order), so a
    # LIMIT stops the scan early instead of ranking every kept row by position.
    order = ""
    if sort is not None:
        direction = "DESC" if view.sort_dir == "desc" else "ASC"
        order = f"ORDER BY {_quote(sort)} {direction} NULLS LAST, pos"
    return f"(SELECT {inner} FROM {{t}}) {where} {order}", params


def json_safe(value: Any) -> Any:
    """A cell value as JSON: dates as ISO text, bytes as base64, NaN/inf as null."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return str(value)


_DATABASES: weakref.WeakKeyDictionary[Any, duckdb.DuckDBPyConnection] = weakref.WeakKeyDictionary()
_DATABASES_LOCK = threading.Lock()


def _database(core: Core) -> duckdb.DuckDBPyConnection:
    """The in-memory DuckDB that answers views of ``core``'s artifacts: one per store (a
    connection costs ~10 ms, a cursor on it ~0.1 ms), no file or network access."""
    with _DATABASES_LOCK:
        con = _DATABASES.get(core.store)
        if con is None:
            settings = core.settings
            config: dict[str, object] = {"python_enable_replacements": False}
            if settings.duckdb_threads:
                config["threads"] = settings.duckdb_threads
            if settings.duckdb_memory_limit:
                config["memory_limit"] = settings.duckdb_memory_limit
            con = duckdb.connect(config=config)
            con.execute("SET enable_external_access=false")
            _DATABASES[core.store] = con
            weakref.finalize(core.store, con.close)
        return con


class _Scan:
    """One query over a mapped table on its own cursor, under the time limit."""

    def __init__(self, core: Core, table: pa.Table) -> None:
        self.con = _database(core).cursor()
        self.name = f"t_{uuid.uuid4().hex}"
        self.con.register(self.name, table)
        self.limit = core.settings.query_time_limit_s

    def rows(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        limit = TimeLimit(self.con, self.limit)
        limit.start()
        try:
            return self.con.execute(sql.replace("{t}", self.name), params).fetchall()
        except duckdb.Error as exc:
            if limit.timed_out:
                raise Timeout(f"the query exceeded the time limit of {self.limit:g} s") from None
            raise InvalidArgument(f"the query failed: {str(exc).splitlines()[0]}") from None
        finally:
            limit.close()

    def close(self) -> None:
        self.con.unregister(self.name)
        self.con.close()


def _mapped(core: Core, artifact_id: str, version: int) -> pa.ipc.RecordBatchFileReader:
    return core.store.open_file(artifact_id, version)


def _slice(reader: pa.ipc.RecordBatchFileReader, offset: int, limit: int) -> pa.Table:
    """Rows ``[offset, offset+limit)`` from the batches that hold them (nothing else read)."""
    parts: list[pa.RecordBatch] = []
    start = 0
    for i in range(reader.num_record_batches):
        batch = reader.get_batch(i)
        end = start + batch.num_rows
        if end > offset and start < offset + limit:
            lo = max(0, offset - start)
            parts.append(batch.slice(lo, min(batch.num_rows - lo, offset + limit - start - lo)))
        if end >= offset + limit:
            break
        start = end
    return pa.Table.from_batches(parts, reader.schema)


def _rows_at(reader: pa.ipc.RecordBatchFileReader, positions: list[int]) -> pa.Table:
    """The rows at ``positions`` (in that order), each a one-row slice of the batch that
    holds it: only those rows' pages of the map are read (a ``take`` over the chunked
    table would first concatenate whole columns)."""
    starts = [0]
    batches = []
    for i in range(reader.num_record_batches):
        batches.append(reader.get_batch(i))
        starts.append(starts[-1] + batches[-1].num_rows)
    rows = []
    for pos in positions:
        i = bisect.bisect_right(starts, pos) - 1
        rows.append(batches[i].slice(pos - starts[i], 1))
    return pa.Table.from_batches(rows, reader.schema)


def _positions(scan: _Scan, schema: pa.Schema, view: View, offset: int, limit: int) -> list[int]:
    query, params = _numbered(schema, view)
    rows = scan.rows(f"SELECT pos FROM {query} LIMIT ? OFFSET ?", [*params, limit, offset])
    return [row[0] for row in rows]


def _count(scan: _Scan, schema: pa.Schema, view: View) -> int:
    clauses, params, _ = _where(schema, view)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    return int(scan.rows(f"SELECT count(*) FROM {{t}} {where}", params)[0][0])


def page(
    core: Core, artifact_id: str, version: int, view: View, offset: int, limit: int
) -> dict[str, Any]:
    """``{columns, rows, total}``: rows ``[offset, offset+limit)`` of the view."""
    reader = _mapped(core, artifact_id, version)
    schema = reader.schema
    if view.empty:
        rows_table = _slice(reader, offset, limit)
        total = sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
    else:
        table = reader.read_all()  # zero-copy: the batches stay in the map
        scan = _Scan(core, table)
        try:
            total = _count(scan, schema, view)
            positions = _positions(scan, schema, view, offset, limit)
        finally:
            scan.close()
        rows_table = _rows_at(reader, positions)
    names = schema.names
    columns = [rows_table.column(i).to_pylist() for i in range(len(names))]
    rows = [[json_safe(col[r]) for col in columns] for r in range(rows_table.num_rows)]
    return {"columns": names, "rows": rows, "total": total}


def _orderable(t: pa.DataType) -> bool:
    return (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_temporal(t)
        or pa.types.is_decimal(t)
    )


def summary(core: Core, artifact_id: str, version: int) -> dict[str, Any]:
    """``{columns: [{name, dtype, nulls, distinct, min, max}], total}`` in one scan."""
    reader = _mapped(core, artifact_id, version)
    schema = reader.schema
    table = reader.read_all()
    parts: list[str] = ["count(*)"]
    for f in schema:
        ref = _quote(f.name)
        parts.append(f"count(*) - count({ref})")
        parts.append(f"count(DISTINCT {ref})" if _castable(f) else "NULL")
        if _orderable(f.type):
            parts += [f"min({ref})", f"max({ref})"]
        else:
            parts += ["NULL", "NULL"]
    scan = _Scan(core, table)
    try:
        row = scan.rows(f"SELECT {', '.join(parts)} FROM {{t}}", [])[0]
    finally:
        scan.close()
    columns = []
    for i, f in enumerate(schema):
        nulls, distinct, low, high = row[1 + 4 * i : 5 + 4 * i]
        columns.append(
            {
                "name": f.name,
                "dtype": str(f.type),
                "nulls": int(nulls),
                "distinct": None if distinct is None else int(distinct),
                "min": json_safe(low),
                "max": json_safe(high),
            }
        )
    return {"columns": columns, "total": int(row[0])}


def view_reader(core: Core, artifact_id: str, version: int, view: View) -> pa.RecordBatchReader:
    """Every row the view keeps, in its order, as batches (a ``DoGet`` of a view ticket)."""
    reader = _mapped(core, artifact_id, version)
    if view.empty:
        batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
        return pa.RecordBatchReader.from_batches(reader.schema, batches)
    schema = reader.schema
    table = reader.read_all()
    query, params = _numbered(schema, view, schema.names)
    columns = ", ".join(_quote(n) for n in schema.names)
    sql = f"SELECT {columns} FROM {query}"
    scan = _Scan(core, table)
    try:
        relation = scan.con.sql(sql.replace("{t}", scan.name), params=params)
        out = relation.to_arrow_reader(core.settings.batch_size)
    except duckdb.Error as exc:
        scan.close()
        raise InvalidArgument(f"the query failed: {str(exc).splitlines()[0]}") from None

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from out
        finally:
            scan.close()

    return pa.RecordBatchReader.from_batches(out.schema, batches())


# -- the Flight actions ------------------------------------------------------------------------


class PageArg(ArtifactArg, View):
    """``table-page``: an artifact, a view and a window (``limit`` clamped to 1..500)."""

    offset: int = Field(default=0, ge=0)
    limit: int = 100


class SummaryArg(ArtifactArg):
    pass


@action(
    "table-page",
    "A page of an artifact's rows as JSON, filtered, searched and sorted on the server: "
    '{"artifact_uri", "offset"?, "limit"? (1..500), "filters"? [{col, op, value, value2?}], '
    '"search"?, "sort_by"?, "sort_dir"? asc|desc}; answers columns, rows, total (kept rows).',
)
def _page(core: Core, body: Any) -> Any:
    arg = parse_model(PageArg, body, "table-page request")
    aid, version = arg.resolve(core)
    limit = max(1, min(arg.limit, PAGE_LIMIT))
    view = View(filters=arg.filters, search=arg.search, sort_by=arg.sort_by, sort_dir=arg.sort_dir)
    answer = page(core, aid, version, view, arg.offset, limit)
    return {
        "artifact_uri": artifact_uri(aid, version),
        **answer,
        "offset": arg.offset,
        "limit": limit,
        "sort_by": arg.sort_by,
        "sort_dir": arg.sort_dir,
    }


@action(
    "table-summary",
    'Per-column dtype, nulls, distinct, min and max of an artifact: {"artifact_uri"}.',
)
def _summary(core: Core, body: Any) -> Any:
    aid, version = parse_model(SummaryArg, body, "table-summary request").resolve(core)
    return {"artifact_uri": artifact_uri(aid, version), **summary(core, aid, version)}
