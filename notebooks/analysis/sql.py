"""Static analysis of SQL cells with a real parser (sqlglot, DuckDB dialect).

A SQL cell reads the unqualified tables its queries name, which the DAG
matches to upstream variables; CTE names, tables a statement creates or
writes, qualified names (``db.t``, catalog tables) and table functions
(``read_parquet(...)``) are not variables. It defines one variable: the one
named by ``-- @name <var>`` in its leading comments, else ``sql_<cell id>``
(non-identifier characters of the id become ``_``).

sqlglot is imported by the first SQL cell analysed, not with the package: it is
a slow import that a process without SQL cells never needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from notebooks.analysis.cells import CellAnalysis, Diagnostic, parse_annotations

if TYPE_CHECKING:
    from sqlglot import exp


def default_sql_name(cell_id: str) -> str:
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in cell_id)
    return f"sql_{cleaned}"


def _written_tables(stmt: exp.Expression) -> set[int]:
    from sqlglot import exp

    if not isinstance(stmt, (exp.Create, exp.Insert, exp.Update, exp.Delete, exp.Drop, exp.Merge)):
        return set()
    target = stmt.this
    if isinstance(target, exp.Schema):
        target = target.this
    return {id(target)} if isinstance(target, exp.Table) else set()


def tables_read(statements: list[exp.Expression | None]) -> list[str]:
    from sqlglot import exp

    names: dict[str, None] = {}
    for stmt in statements:
        if stmt is None:
            continue
        ctes = {cte.alias_or_name.lower() for cte in stmt.find_all(exp.CTE)}
        written = _written_tables(stmt)
        for table in stmt.find_all(exp.Table):
            if id(table) in written or not isinstance(table.this, exp.Identifier):
                continue
            if table.args.get("db") or table.args.get("catalog"):
                continue
            name = table.name
            if name.lower() in ctes or not name.isidentifier() or name.startswith("_"):
                continue
            names[name] = None
    return list(names)


def analyse_sql(source: str, cell_id: str) -> CellAnalysis:
    import sqlglot
    from sqlglot.errors import ParseError, TokenError

    annotations, diags = parse_annotations(source, "--")
    try:
        statements = sqlglot.parse(source, read="duckdb")
    except (ParseError, TokenError) as exc:
        errors = getattr(exc, "errors", None) or [{}]
        first = errors[0]
        message = first.get("description") or str(exc).splitlines()[0]
        return CellAnalysis(
            diagnostics=(*diags, Diagnostic("error", "syntax_error", message, first.get("line"))),
            annotations=annotations,
        )
    if not any(s is not None for s in statements):
        return CellAnalysis(diagnostics=tuple(diags), annotations=annotations)
    name = annotations.name or default_sql_name(cell_id)
    refs = tables_read(statements)
    return CellAnalysis(
        defines=(name,),
        references=tuple(refs),
        diagnostics=tuple(diags),
        annotations=annotations,
    )
