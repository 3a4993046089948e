"""Flight SQL metadata answers: SqlInfo, catalogs, schemas, tables, table types, keys.

Catalogs are the configured warehouses (``settings.warehouses``) and ``quiver``,
whose one schema ``names`` holds the named artifacts as tables. Filters are
SQL ``LIKE`` patterns (``%`` any run, ``_`` one character, ``\\`` escapes).
Keys (primary, exported, imported, cross reference) are always empty: Iceberg
tables and artifacts declare none. The schemas are those FlightSql.proto states.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from google.protobuf.message import Message

from flight.sql import flightsql_pb2 as pb
from flight.sql.names import NAMES_CATALOG, NAMES_SCHEMA, SQL_EXECUTOR, open_parser, table_ref
from foundation import InvalidArgument, __version__

if TYPE_CHECKING:
    from flight.core import Core

log = logging.getLogger(__name__)

WARM_TABLES = 64
"""How many tables of the configured warehouses a starting server loads ahead."""

CATALOGS_SCHEMA = pa.schema([pa.field("catalog_name", pa.utf8(), nullable=False)])
DB_SCHEMAS_SCHEMA = pa.schema(
    [pa.field("catalog_name", pa.utf8()), pa.field("db_schema_name", pa.utf8(), nullable=False)]
)
TABLES_SCHEMA = pa.schema(
    [
        pa.field("catalog_name", pa.utf8()),
        pa.field("db_schema_name", pa.utf8()),
        pa.field("table_name", pa.utf8(), nullable=False),
        pa.field("table_type", pa.utf8(), nullable=False),
    ]
)
TABLES_WITH_SCHEMA = TABLES_SCHEMA.append(pa.field("table_schema", pa.binary(), nullable=False))
TABLE_TYPES_SCHEMA = pa.schema([pa.field("table_type", pa.utf8(), nullable=False)])
PRIMARY_KEYS_SCHEMA = pa.schema(
    [
        pa.field("catalog_name", pa.utf8()),
        pa.field("db_schema_name", pa.utf8()),
        pa.field("table_name", pa.utf8(), nullable=False),
        pa.field("column_name", pa.utf8(), nullable=False),
        pa.field("key_name", pa.utf8()),
        pa.field("key_sequence", pa.int32(), nullable=False),
    ]
)
_KEY_SIDE = [
    ("catalog_name", pa.utf8(), True),
    ("db_schema_name", pa.utf8(), True),
    ("table_name", pa.utf8(), False),
    ("column_name", pa.utf8(), False),
]
FOREIGN_KEYS_SCHEMA = pa.schema(
    [pa.field(f"{side}_{n}", t, nullable=ok) for side in ("pk", "fk") for n, t, ok in _KEY_SIDE]
    + [
        pa.field("key_sequence", pa.int32(), nullable=False),
        pa.field("fk_key_name", pa.utf8()),
        pa.field("pk_key_name", pa.utf8()),
        pa.field("update_rule", pa.uint8(), nullable=False),
        pa.field("delete_rule", pa.uint8(), nullable=False),
    ]
)
_INFO_VALUE = pa.dense_union(
    [
        pa.field("string_value", pa.utf8()),
        pa.field("bool_value", pa.bool_()),
        pa.field("bigint_value", pa.int64()),
        pa.field("int32_bitmask", pa.int32()),
        pa.field("string_list", pa.list_(pa.utf8())),
        pa.field("int32_to_int32_list_map", pa.map_(pa.int32(), pa.list_(pa.int32()))),
    ]
)
SQL_INFO_SCHEMA = pa.schema(
    [pa.field("info_name", pa.uint32(), nullable=False), pa.field("value", _INFO_VALUE)]
)
TABLE_TYPE = "TABLE"
ARTIFACT_TYPE = "VIEW"  # a named artifact: a stored query result, read-only like a view


def sql_info() -> dict[int, Any]:
    """What the server says of itself (``CommandGetSqlInfo``), by info id."""
    return {
        pb.FLIGHT_SQL_SERVER_NAME: "Quiver",
        pb.FLIGHT_SQL_SERVER_VERSION: __version__,
        pb.FLIGHT_SQL_SERVER_ARROW_VERSION: pa.__version__,
        pb.FLIGHT_SQL_SERVER_READ_ONLY: True,
        pb.FLIGHT_SQL_SERVER_SQL: True,
        pb.FLIGHT_SQL_SERVER_SUBSTRAIT: False,
        pb.FLIGHT_SQL_SERVER_TRANSACTION: pb.SQL_SUPPORTED_TRANSACTION_NONE,
        pb.FLIGHT_SQL_SERVER_CANCEL: False,
        pb.SQL_DDL_CATALOG: False,
        pb.SQL_DDL_SCHEMA: False,
        pb.SQL_DDL_TABLE: False,
        pb.SQL_IDENTIFIER_CASE: pb.SQL_CASE_SENSITIVITY_CASE_INSENSITIVE,
        pb.SQL_IDENTIFIER_QUOTE_CHAR: '"',
        pb.SQL_QUOTED_IDENTIFIER_CASE: pb.SQL_CASE_SENSITIVITY_CASE_INSENSITIVE,
        pb.SQL_ALL_TABLES_ARE_SELECTABLE: True,
        pb.SQL_SEARCH_STRING_ESCAPE: "\\",
        pb.SQL_SCHEMA_TERM: "schema",
        pb.SQL_CATALOG_TERM: "catalog",
        pb.SQL_CATALOG_AT_START: True,
        pb.SQL_TRANSACTIONS_SUPPORTED: False,
    }


def _info_table(ids: list[int]) -> pa.Table:
    info = sql_info()
    wanted = [i for i in (ids or sorted(info)) if i in info]
    codes: list[int] = []
    offsets: list[int] = []
    children: list[list[Any]] = [[] for _ in _INFO_VALUE.type_codes]
    for i in wanted:
        value = info[i]
        code = 1 if isinstance(value, bool) else 0 if isinstance(value, str) else 3
        if code == 3 and i in (pb.FLIGHT_SQL_SERVER_TRANSACTION, pb.SQL_IDENTIFIER_CASE):
            code = 3
        codes.append(code)
        offsets.append(len(children[code]))
        children[code].append(value)
    arrays = [
        pa.array(values, type=field.type)
        for values, field in zip(children, _INFO_VALUE, strict=True)
    ]
    union = pa.UnionArray.from_dense(
        pa.array(codes, pa.int8()),
        pa.array(offsets, pa.int32()),
        arrays,
        [f.name for f in _INFO_VALUE],
    )
    return pa.Table.from_arrays([pa.array(wanted, pa.uint32()), union], schema=SQL_INFO_SCHEMA)


def like(pattern: str | None) -> re.Pattern[str] | None:
    """A SQL LIKE pattern as a regex (None matches everything)."""
    if pattern is None:
        return None
    out, escaped = [], False
    for char in pattern:
        if escaped:
            out.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            out.append(".*")
        elif char == "_":
            out.append(".")
        else:
            out.append(re.escape(char))
    return re.compile("".join(out), re.DOTALL)


def _matches(pattern: re.Pattern[str] | None, value: str) -> bool:
    return pattern is None or pattern.fullmatch(value) is not None


def _catalogs(core: Core, catalog: str | None) -> list[str]:
    names = sorted([*core.settings.warehouses, NAMES_CATALOG])
    return [c for c in names if catalog is None or c == catalog]


def _schemas(core: Core, catalog: str, pattern: re.Pattern[str] | None) -> list[str]:
    if catalog == NAMES_CATALOG:
        found = [NAMES_SCHEMA]
    else:
        location = table_ref(core.settings.warehouses[catalog], "x", "x").warehouse
        found = [".".join(n) for n in core.warehouses.catalog(location).list_namespaces()]
    return [s for s in sorted(found) if _matches(pattern, s)]


def _tables(
    core: Core, catalog: str, schema: str, pattern: re.Pattern[str] | None, with_schema: bool
) -> Iterator[tuple[str, str, pa.Schema | None]]:
    if catalog == NAMES_CATALOG:
        for named in core.store.list_names(None):
            if _matches(pattern, named.name):
                arrow = core.store.get(named.artifact_id, named.version).schema
                yield named.name, ARTIFACT_TYPE, arrow if with_schema else None
        return
    location = core.settings.warehouses[catalog]
    ref = table_ref(location, schema, "x")
    for ident in sorted(core.warehouses.catalog(ref.warehouse).list_tables(schema)):
        name = ident[-1]
        if not _matches(pattern, name):
            continue
        arrow = None
        if with_schema:
            arrow = core.warehouses.load(table_ref(location, schema, name)).schema().as_arrow()
        yield name, TABLE_TYPE, arrow


def _tables_table(core: Core, cmd: pb.CommandGetTables) -> pa.Table:
    catalog = cmd.catalog if cmd.HasField("catalog") else None
    schema_like = like(
        cmd.db_schema_filter_pattern if cmd.HasField("db_schema_filter_pattern") else None
    )
    table_like = like(
        cmd.table_name_filter_pattern if cmd.HasField("table_name_filter_pattern") else None
    )
    types = set(cmd.table_types)
    rows: list[list[Any]] = []
    for cat in _catalogs(core, catalog):
        for schema in _schemas(core, cat, schema_like):
            for name, kind, arrow in _tables(core, cat, schema, table_like, cmd.include_schema):
                if types and kind not in types:
                    continue
                row: list[Any] = [cat, schema, name, kind]
                if cmd.include_schema:
                    assert arrow is not None
                    row.append(arrow.serialize().to_pybytes())
                rows.append(row)
    out = TABLES_WITH_SCHEMA if cmd.include_schema else TABLES_SCHEMA
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in out]
    return pa.Table.from_arrays(
        [pa.array(c, f.type) for c, f in zip(columns, out, strict=True)], schema=out
    )


def schema_of(command: Message) -> pa.Schema:
    """The schema of a metadata command's answer (GetFlightInfo, GetSchema)."""
    if isinstance(command, pb.CommandGetSqlInfo):
        return SQL_INFO_SCHEMA
    if isinstance(command, pb.CommandGetCatalogs):
        return CATALOGS_SCHEMA
    if isinstance(command, pb.CommandGetDbSchemas):
        return DB_SCHEMAS_SCHEMA
    if isinstance(command, pb.CommandGetTables):
        return TABLES_WITH_SCHEMA if command.include_schema else TABLES_SCHEMA
    if isinstance(command, pb.CommandGetTableTypes):
        return TABLE_TYPES_SCHEMA
    if isinstance(command, pb.CommandGetPrimaryKeys):
        return PRIMARY_KEYS_SCHEMA
    if isinstance(command, pb.CommandGetExportedKeys | pb.CommandGetImportedKeys):
        return FOREIGN_KEYS_SCHEMA
    if isinstance(command, pb.CommandGetCrossReference):
        return FOREIGN_KEYS_SCHEMA
    raise InvalidArgument(f"not a metadata command: {type(command).__name__}")


METADATA_COMMANDS = (
    pb.CommandGetSqlInfo,
    pb.CommandGetCatalogs,
    pb.CommandGetDbSchemas,
    pb.CommandGetTables,
    pb.CommandGetTableTypes,
    pb.CommandGetPrimaryKeys,
    pb.CommandGetExportedKeys,
    pb.CommandGetImportedKeys,
    pb.CommandGetCrossReference,
)


def answer(core: Core, command: Message) -> pa.Table:
    """The rows of a metadata command (DoGet of its ticket)."""
    if isinstance(command, pb.CommandGetSqlInfo):
        return _info_table(list(command.info))
    if isinstance(command, pb.CommandGetCatalogs):
        return pa.table({"catalog_name": _catalogs(core, None)}, schema=CATALOGS_SCHEMA)
    if isinstance(command, pb.CommandGetDbSchemas):
        catalog = command.catalog if command.HasField("catalog") else None
        pattern = like(
            command.db_schema_filter_pattern
            if command.HasField("db_schema_filter_pattern")
            else None
        )
        pairs = [(c, s) for c in _catalogs(core, catalog) for s in _schemas(core, c, pattern)]
        return pa.table(
            {"catalog_name": [c for c, _ in pairs], "db_schema_name": [s for _, s in pairs]},
            schema=DB_SCHEMAS_SCHEMA,
        )
    if isinstance(command, pb.CommandGetTables):
        return _tables_table(core, command)
    if isinstance(command, pb.CommandGetTableTypes):
        return pa.table({"table_type": [TABLE_TYPE, ARTIFACT_TYPE]}, schema=TABLE_TYPES_SCHEMA)
    return schema_of(command).empty_table()


def warm_up(core: Core, limit: int = WARM_TABLES) -> int:
    """Open the SQL parser's database and the configured warehouses' catalogs, and load
    their tables' current metadata and ``sql@v1``'s plan of their files (the first
    ``limit`` tables), so a first query on a new server does not pay for them (~12 ms
    for the parser once per process, ~25 ms a table: a SQLAlchemy engine, the metadata
    file, the manifests). How many tables were loaded.

    Best effort: a warehouse that cannot be read now is left for its first query to
    report. A table changed later is reloaded by the query that meets the change."""
    open_parser()
    loaded = 0
    executor = core.registry.get(SQL_EXECUTOR) if SQL_EXECUTOR in core.registry else None
    plan_ahead = getattr(executor, "plan_ahead", None)  # sql@v1's plan of the files
    for catalog, location in sorted(core.settings.warehouses.items()):
        try:
            iceberg = core.warehouses.catalog(table_ref(location, "x", "x").warehouse)
            for namespace in iceberg.list_namespaces():
                for ident in iceberg.list_tables(namespace):
                    if loaded >= limit:
                        return loaded
                    ref = table_ref(location, ".".join(namespace), ident[-1])
                    resolved = core.warehouses.resolve(ref)
                    if plan_ahead is not None:
                        plan_ahead(resolved)
                    loaded += 1
        except Exception as exc:  # best effort: the first query says what is wrong
            log.info("warehouse %s not loaded ahead: %s", catalog, exc)
    return loaded
