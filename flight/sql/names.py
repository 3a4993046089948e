"""Table names in Flight SQL queries, and the ``sql@v1`` request a query becomes.

A query names warehouse tables as ``<warehouse>.<namespace>.<table>`` (the
warehouses of ``settings.warehouses``) and named artifacts as
``quiver.names.<name>``. Each such name becomes an input of one ``sql@v1``
materialize, bound as ``input0``, ``input1``, … : the query is parsed by DuckDB
(``json_serialize_sql``), the table references are replaced in the syntax tree,
and the SQL is written back by DuckDB (``json_deserialize_sql``). So the same
query at the same snapshots is the same provenance: a cache hit. Table reads go
through ``scan@v1`` (field ids, deletes, pruning) like every table input.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb

from catalog import TableRef, parse_uri
from foundation import InvalidArgument, NotFound
from materialize import MaterializeRequest, Transform

NAMES_CATALOG = "quiver"
NAMES_SCHEMA = "names"
SQL_EXECUTOR = "sql@v1"

_parser: duckdb.DuckDBPyConnection | None = None
_parser_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Query:
    """A Flight SQL query as ``sql@v1`` runs it: rewritten SQL and its inputs, in order."""

    sql: str
    inputs: tuple[str, ...]

    def request(self, parameters: list[Any] | None = None) -> MaterializeRequest:
        params: dict[str, Any] = {"sql": self.sql}
        if parameters is not None:
            params["parameters"] = parameters
        transform = Transform(executor=SQL_EXECUTOR, params=params)
        return MaterializeRequest(inputs=list(self.inputs), transform=transform)


def _parsing_database() -> duckdb.DuckDBPyConnection:
    """The process's one DuckDB database for parsing SQL (it never reads a table or a
    file), opened on first use: opening one costs ~12 ms, a cursor on it microseconds."""
    global _parser
    with _parser_lock:
        if _parser is None:
            _parser = duckdb.connect(config={"enable_external_access": False})
        return _parser


def _sql_value(query: str, value: str) -> Any:
    """The one value ``query`` answers for its parameter ``value``, on a cursor of its own."""
    with _parsing_database().cursor() as cur:
        return cur.sql(query, params=[value]).fetchall()[0][0]


def open_parser() -> None:
    """Open the parsing database now (when a server starts), not in a first query."""
    _parsing_database()


@atexit.register
def _close_parser() -> None:
    global _parser
    with _parser_lock:
        parser, _parser = _parser, None
    if parser is not None:
        parser.close()


def _forget_parser() -> None:
    global _parser, _parser_lock
    _parser, _parser_lock = None, threading.Lock()  # a database does not survive a fork


os.register_at_fork(after_in_child=_forget_parser)


def check_statement(sql: str) -> None:
    """One read-only statement, or a clear error (DuckDB's parser message and position)."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise InvalidArgument(_parser_message(sql, exc)) from None
    if len(statements) != 1:
        raise InvalidArgument(f"a query is exactly one statement, got {len(statements)}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise InvalidArgument(
            f"this Flight SQL server is read-only: it runs one SELECT query, "
            f"got a {kind.name} statement"
        )


def _parser_message(sql: str, exc: duckdb.Error) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    raw = _sql_value("SELECT json_serialize_sql($1)", sql)
    position = json.loads(raw).get("position")
    if position is None:
        return first
    return f"{first} (at character {int(position) + 1} of the query)"


def to_query(sql: str, warehouses: Mapping[str, str]) -> Query:
    """``sql`` with its Quiver table names bound as inputs. Cached by text."""
    return _to_query(sql, tuple(sorted(warehouses.items())))


@functools.lru_cache(maxsize=1024)
def _to_query(sql: str, warehouses: tuple[tuple[str, str], ...]) -> Query:
    check_statement(sql)
    raw = _sql_value("SELECT json_serialize_sql($1)", sql)
    tree = json.loads(raw)
    if tree.get("error"):
        raise InvalidArgument(f"invalid SQL: {tree.get('error_message')}")
    inputs: list[str] = []
    _rewrite(tree, dict(warehouses), inputs)
    if not inputs:
        return Query(sql, ())
    text = _sql_value("SELECT json_deserialize_sql($1::JSON)", json.dumps(tree))
    return Query(text, tuple(inputs))


def _rewrite(node: Any, warehouses: dict[str, str], inputs: list[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _rewrite(item, warehouses, inputs)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "BASE_TABLE":
        uri = input_uri(node, warehouses)
        if uri is not None:
            if uri not in inputs:
                inputs.append(uri)
            bound = f"input{inputs.index(uri)}"
            node["alias"] = node.get("alias") or node["table_name"]
            node["catalog_name"], node["schema_name"], node["table_name"] = "", "", bound
            node["qualified_name"] = {"path": [bound]}
    for value in node.values():
        _rewrite(value, warehouses, inputs)


def input_uri(node: dict[str, Any], warehouses: dict[str, str]) -> str | None:
    """The input a table reference names, None for a name DuckDB resolves (a CTE...)."""
    catalog = (node.get("catalog_name") or "").lower()
    schema, table = node.get("schema_name") or "", node.get("table_name") or ""
    if not catalog:
        return None
    if catalog == NAMES_CATALOG:
        if schema.lower() != NAMES_SCHEMA:
            raise NotFound(f"unknown schema quiver.{schema}: named artifacts are quiver.names.<n>")
        return f"strata://name/{table}"
    location = warehouses.get(catalog)
    if location is None:
        known = ", ".join([*sorted(warehouses), NAMES_CATALOG])
        raise NotFound(
            f"unknown catalog {catalog!r} in {catalog}.{schema}.{table}; catalogs: {known}",
            detail={"catalog": catalog, "catalogs": known},
        )
    return table_ref(location, schema, table).uri


def table_ref(location: str, namespace: str, table: str) -> TableRef:
    """The table ``namespace.table`` of the warehouse at ``location``."""
    ref = parse_uri(f"{location.rstrip('/')}#{namespace}.{table}")
    if not isinstance(ref, TableRef):
        raise InvalidArgument(f"warehouse location {location!r} is not a warehouse directory")
    return ref
