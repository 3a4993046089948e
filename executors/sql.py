"""``sql@v1``: DuckDB SQL over the inputs, bound as ``input0``, ``input1``, …

Artifacts are registered as Arrow tables (memory-mapped). A table is read through
its plain ``scan@v1`` artifact when that is already built; otherwise, when a raw
read of its files shows nothing the scan hides (:func:`executors.scan.file_scan`),
it is a view over its Parquet files, so DuckDB reads only the columns and row
groups the query needs; else its scan is built first. Then the connection loses
file and network access for good, but for reading exactly those files, before the
user's SQL runs. How a table was read changes no result and no provenance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import duckdb
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from catalog import ResolvedTable, Warehouses
from executors import duck, spares
from executors.base import ResolvedInput, RunContext
from executors.scan import file_scan
from foundation import InvalidArgument

MAX_SQL_CHARS = 1_000_000
MAX_PARAMETERS = 1000

Scalar = bool | int | float | str | None


class SqlParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sql: str = Field(min_length=1, max_length=MAX_SQL_CHARS, description="One SELECT query.")
    parameters: list[Scalar] | None = Field(
        default=None,
        max_length=MAX_PARAMETERS,
        description="Values for the query's ? or $n placeholders, bound by DuckDB (never "
        "pasted into the SQL); part of the provenance.",
    )


class SqlExecutor:
    name: ClassVar[str] = "sql@v1"
    params_model: ClassVar[type[BaseModel]] = SqlParams
    ordered_inputs: ClassVar[bool] = True
    description: ClassVar[str] = (
        "DuckDB SQL over the inputs, which are bound as input0, input1, ... in order. "
        "One SELECT statement; no file or network access."
    )

    def __init__(self, warehouses: Warehouses | None = None) -> None:
        # Only the file plan cache is used here; the materialize layer resolves tables.
        self._warehouses = warehouses or Warehouses()

    def plan_ahead(self, table: ResolvedTable) -> None:
        """Plan the reading of ``table``'s files now (the plan is cached), so a first
        query on it does not wait for that (~10 ms: the manifests)."""
        file_scan(table, self._warehouses)

    def check_inputs(self, input_uris: Sequence[str]) -> None:
        if len(input_uris) > 64:
            raise InvalidArgument(f"{self.name} takes at most 64 inputs, got {len(input_uris)}")

    def identity(self, params: BaseModel) -> Any:
        assert isinstance(params, SqlParams)
        if params.parameters is None:  # the identity every query without parameters had
            return {"sql": params.sql}
        typed = [[type(v).__name__, v] for v in params.parameters]  # 1 and 1.0 and "1" differ
        return {"sql": params.sql, "parameters": typed}

    def _check_statement(self, sql: str) -> None:
        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error as exc:
            raise InvalidArgument(f"{self.name}: invalid SQL: {duck.first_line(exc)}") from None
        if len(statements) != 1:
            raise InvalidArgument(f"{self.name} runs exactly one statement, got {len(statements)}")
        kind = statements[0].type
        if kind != duckdb.StatementType.SELECT:
            raise InvalidArgument(f"{self.name} runs one SELECT query; got a {kind.name} statement")

    def run(
        self, inputs: Sequence[ResolvedInput], params: BaseModel, ctx: RunContext
    ) -> pa.RecordBatchReader:
        assert isinstance(params, SqlParams)
        self._check_statement(params.sql)
        con = duck.connect(ctx, sandboxed=True)
        try:
            files: list[str] = []
            for i, inp in enumerate(inputs):
                files += self._bind(con, f"input{i}", inp)
            duck.lock_down(con, allowed_files=files)
        except BaseException:
            con.close()
            raise
        values = params.parameters
        return duck.stream(
            con,
            lambda: (
                con.sql(params.sql, params=values) if values is not None else con.sql(params.sql)
            ),
            ctx,
            what=f"{self.name} query",
            # Once this result is published: open the next query's database, close its own.
            then=lambda: spares.prepare(ctx.settings),
        )

    def _bind(self, con: duckdb.DuckDBPyConnection, name: str, inp: ResolvedInput) -> list[str]:
        """Bind one input as ``name``; the files the query must be allowed to read."""
        if inp.kind == "table" and inp.table is not None and inp.cached_table is not None:
            cached = inp.cached_table()
            if cached is not None:
                con.register(name, cached)
                return []
            scan = file_scan(inp.table, self._warehouses)
            if scan is not None:
                con.execute(f"CREATE TEMP VIEW {name} AS {scan.sql}")
                return list(scan.files)
        con.register(name, inp.open_table())
        return []


class DuckdbSqlExecutor(SqlExecutor):
    """``duckdb_sql@v1``: the name Strata clients use for the same executor."""

    name: ClassVar[str] = "duckdb_sql@v1"
