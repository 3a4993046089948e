"""SQL cells: DuckDB SQL over upstream tables and warehouse tables, run by the Flight service.

A SQL cell names upstream table variables by their name (``select * from
events``) and warehouse tables or artifacts by their URI as a quoted
identifier (``select * from "file:///data/wh#db.events"``, ``from
"strata://artifact/<id>@v=1"``). The query is rewritten to the ``sql@v1``
executor's convention (inputs bound as ``input0``, ``input1``, … in order)
and materialized through Flight, so its result is an artifact cached by
provenance like any other table; no kernel is involved.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flight import QuiverClient
from foundation import QuiverError, Unavailable
from notebooks.model import clip

log = logging.getLogger(__name__)

SQL_EXECUTOR = "sql@v1"
PREVIEW_ROWS = 20
_URI = re.compile(r"^(file://|strata://|/)")


class SqlCellError(Exception):
    """A SQL cell that cannot run; the message points at the query."""


@dataclass(frozen=True)
class Rewritten:
    sql: str
    inputs: list[str]
    """Input URIs in binding order (``input0``, ``input1``, …)."""
    names: dict[str, str]
    """``inputN`` -> the name the user wrote, for error messages."""


def rewrite(source: str, tables: Mapping[str, str | None]) -> Rewritten:
    """Bind ``tables`` (upstream variable -> artifact URI, None if not a table) and URIs.

    Raises :class:`SqlCellError` for a parse error, several statements, or
    an upstream variable that is not a table.
    """
    import sqlglot  # here, not with the module: a slow import only SQL cells need
    from sqlglot import exp
    from sqlglot.errors import ParseError, TokenError

    try:
        statements = [s for s in sqlglot.parse(source, read="duckdb") if s is not None]
    except (ParseError, TokenError) as exc:
        errors = getattr(exc, "errors", None) or [{}]
        first = errors[0]
        where = f" (line {first['line']}, column {first.get('col')})" if first.get("line") else ""
        message = first.get("description") or str(exc).splitlines()[0]
        raise SqlCellError(f"SQL syntax error{where}: {message}") from None
    if len(statements) != 1:
        raise SqlCellError(f"a SQL cell runs exactly one query; found {len(statements)}")
    stmt = statements[0]
    ctes = {cte.alias_or_name.lower() for cte in stmt.find_all(exp.CTE)}
    bound: dict[str, str] = {}  # uri -> inputN
    names: dict[str, str] = {}
    for table in list(stmt.find_all(exp.Table)):
        if not isinstance(table.this, exp.Identifier) or table.args.get("db"):
            continue
        name = table.name
        if name.lower() in ctes:
            continue
        if name in tables:
            uri = tables[name]
            if uri is None:
                raise SqlCellError(
                    f"SQL reads {name!r}, which is not a table (pyarrow, polars or pandas)"
                )
            alias = table.alias or name
        elif _URI.match(name):
            uri, alias = name, table.alias
        else:
            continue
        if uri not in bound:
            bound[uri] = f"input{len(bound)}"
            names[bound[uri]] = name
        new = exp.Table(this=exp.to_identifier(bound[uri]))
        if alias:
            new.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
        table.replace(new)
    return Rewritten(stmt.sql(dialect="duckdb"), list(bound), names)


def explain_error(message: str, rewritten: Rewritten) -> str:
    for placeholder, name in sorted(rewritten.names.items(), key=lambda kv: -len(kv[0])):
        message = message.replace(placeholder, name)
    return message


def run_sql(
    client: QuiverClient,
    source: str,
    tables: Mapping[str, str | None],
    variable: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Materialize the cell; its variable report (kind ``arrow``) and a table display."""
    rewritten = rewrite(source, tables)
    try:
        res = client.materialize(rewritten.inputs, SQL_EXECUTOR, {"sql": rewritten.sql})
        reader = client.stream(res)
        head: Any = None
        for batch in reader:  # follows a build to its end; keeps the first rows
            if head is None:
                head = batch.slice(0, PREVIEW_ROWS)
        status = client.status(res["artifact_uri"])
    except QuiverError as exc:
        raise SqlCellError(clip(explain_error(exc.message, rewritten), 2_000)) from None
    schema = status.get("schema") or res.get("schema") or []
    columns = [{"name": f["name"], "type": f["type"]} for f in schema]
    preview = head.to_pylist() if head is not None else []
    var = {
        "kind": "arrow",
        "format": "pyarrow",
        "type": "pyarrow.lib.Table",
        "artifact_uri": res["artifact_uri"],
        "rows": status.get("row_count"),
        "bytes": status.get("byte_size") or 0,
        "columns": columns,
        "preview": _plain(preview),
        "inputs": rewritten.inputs,
    }
    display = {
        "mime": "application/vnd.quiver.table+json",
        "data": {
            "columns": [c["name"] for c in columns],
            "rows": var["preview"],
            "row_count": var["rows"],
        },
    }
    return {variable: var}, display


def _plain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    import json

    return json.loads(json.dumps(rows, default=str))


class SqlBuild:
    """The Flight client as one SQL cell run uses it, able to cancel the cell's build.

    ``run_sql`` materializes the query (the build starts on the server and the
    call answers at once) and then follows the build to its end. Standing in
    for the client, this learns which build that is, so that :meth:`cancel`
    from another thread can stop it with the Flight ``cancel`` action: the
    DuckDB query is interrupted, the build fails and nothing is published,
    and the follow ends with an error. A cancel before the build exists stops
    the run from starting one, or stops it as soon as it is known.
    """

    def __init__(self, client: QuiverClient) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._uri: str | None = None
        self._sent = False
        self.cancelled = False

    def materialize(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if self.cancelled:
            raise Unavailable("the run was cancelled")
        res = self._client.materialize(*args, **kwargs)
        if res.get("state") == "building":
            with self._lock:
                self._uri = res["artifact_uri"]
            if self.cancelled:
                self._stop()
        return res

    def cancel(self) -> None:
        self.cancelled = True
        self._stop()

    def _stop(self) -> None:
        with self._lock:
            uri, sent = self._uri, self._sent
            self._sent = self._sent or uri is not None
        if uri is None or sent:
            return
        try:  # the build then fails, and the follow in run_sql ends with its error
            self._client.action("cancel", {"artifact_uri": uri, "wait_seconds": 0})
        except QuiverError as exc:
            log.warning("could not cancel the build of %s: %s", uri, exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)
