"""What the model is told about the notebook, bounded so a large notebook stays cheap.

The system prompt carries the cells in order (each source clipped, the whole
list capped), the DAG's edges, the focused cell's whole source and, for the
tables it reads (or, with no focused cell, every table output), the schema
and a few preview rows — never a whole table: the rows come from the preview
the run already recorded, nothing is read from Flight.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from notebooks.session import Session

CELL_CHARS = 2_000
CELLS_CHARS = 24_000
FOCUS_CHARS = 20_000
PREVIEW_ROWS = 5
TABLES = 8
HISTORY_ITEMS = 20

INTRO = (
    "You are the assistant of a Quiver notebook: cells of Python, SQL, Markdown or prompt "
    "templates whose variables flow between cells along a DAG. Answer concisely; put code "
    "for a cell in one fenced block."
)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n... [{len(text) - limit} more chars]"


def table_preview(var: Mapping[str, Any], rows: int = PREVIEW_ROWS) -> str:
    """A table output as its schema and a Markdown preview of its first ``rows`` rows."""
    columns = [c for c in var.get("columns") or () if isinstance(c, Mapping)]
    names = [str(c.get("name")) for c in columns]
    schema = ", ".join(f"{c.get('name')}: {c.get('type')}" for c in columns)
    lines = [f"table, {var.get('rows', '?')} rows; schema: {schema}"]
    preview = list(var.get("preview") or ())[:rows]
    if names and preview:
        lines.append("| " + " | ".join(names) + " |")
        lines.append("|" + "---|" * len(names))
        for row in preview:
            values = [row.get(n) for n in names] if isinstance(row, Mapping) else [row]
            lines.append("| " + " | ".join(clip(str(v), 80) for v in values) + " |")
    return "\n".join(lines)


def value_text(var: Mapping[str, Any], limit: int = 4_000) -> str:
    """One output variable as text for a model: tables as a preview, values as JSON or repr."""
    kind = var.get("kind")
    if kind == "arrow":
        return table_preview(var)
    if kind == "json":
        value = var.get("value")
        return clip(value if isinstance(value, str) else json.dumps(value, default=str), limit)
    return clip(str(var.get("repr") or f"<{var.get('type', 'value')}>"), limit)


def _tables(session: Session, producers: Iterable[str]) -> list[str]:
    d = session.derived
    out: list[str] = []
    for cid in producers:
        result = d.results.get(cid)
        if result is None or result.status != "ready":
            continue
        for name, var in result.variables.items():
            if var.get("kind") == "arrow" and len(out) < TABLES:
                out.append(f"`{name}` (from cell {cid}): {table_preview(var)}")
    return out


def notebook_context(session: Session, cell_id: str | None = None) -> str:
    """The system prompt for a chat about ``session`` (focused on ``cell_id`` if it exists)."""
    with session.lock:
        d = session.derived
        parts = [INTRO, f"Notebook: {session.nb.name}"]
        listing: list[str] = []
        used = 0
        for cell in d.cells:
            st = d.staleness.get(cell.id)
            status = "running" if d.running == cell.id else (st.status if st else "idle")
            head = f"### cell {cell.id} ({cell.entry.language}, {status})"
            if cell.analysis.defines:
                head += f" defines {', '.join(cell.analysis.defines)}"
            block = f"{head}\n{clip(cell.source, CELL_CHARS)}"
            if used + len(block) > CELLS_CHARS:
                listing.append(f"... {len(d.cells) - len(listing)} more cells not shown")
                break
            listing.append(block)
            used += len(block)
        parts.append("## Cells in order\n" + ("\n\n".join(listing) or "(no cells)"))
        edges = [
            f"{e.from_cell_id} -> {e.to_cell_id}" + (f" ({e.variable})" if e.variable else "")
            for e in d.dag.edges
        ]
        parts.append("## DAG edges\n" + ("\n".join(edges[:200]) or "(none)"))
        focus = d.cell(cell_id) if cell_id else None
        if focus is not None:
            parts.append(
                f"## The user is looking at cell {focus.id} ({focus.entry.language})\n"
                + clip(focus.source, FOCUS_CHARS)
            )
            result = d.results.get(focus.id)
            if result is not None and result.status == "error" and result.error:
                parts.append(f"Its last run failed: {clip(result.error, 2_000)}")
            producers: Iterable[str] = d.dag.upstream.get(focus.id, ())
        else:
            producers = [c.id for c in d.cells]
        tables = _tables(session, producers)
        if tables:
            parts.append("## Tables (schema and first rows)\n" + "\n\n".join(tables))
    return "\n\n".join(parts)


def chat_messages(message: str, history: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]:
    """The conversation for the provider: the last turns of ``history``, then ``message``."""
    turns = [
        {"role": h["role"], "content": h["content"]}
        for h in list(history)[-HISTORY_ITEMS:]
        if h.get("role") in ("user", "assistant") and h.get("content")
    ]
    return [*turns, {"role": "user", "content": message}]
