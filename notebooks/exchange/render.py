"""A notebook as one readable document: Markdown or self-contained HTML (API.md §9).

Cells in order with their sources (highlighted in HTML), console output,
display outputs (tables as bounded tables, PNG images inline as data URIs,
Markdown rendered) and errors; ``app_view`` hides the code. The HTML page
fetches nothing (inline styles, no scripts) and escapes every text it did not
generate itself: sources, console, table values, a Markdown cell's raw HTML and
HTML outputs (shown as text).
"""

from __future__ import annotations

import functools
import html
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from notebooks.exchange.export import Picture

TABLE_ROWS = 50
"""Rows of a table output shown (the rest is counted)."""
TEXT_LIMIT = 20_000
PNG_URL = re.compile(r"^data:image/png;base64,[A-Za-z0-9+/=\s]*$")
STYLE = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
.cell{border-top:1px solid #ddd;padding:.75rem 0}
pre{background:#f6f8fa;padding:.5rem;overflow:auto;font-size:.85rem}
pre.stderr,pre.error{background:#fff0f0;color:#a00}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}
.more{color:#666;font-size:.8rem} img{max-width:100%}
"""


def _clip(text: str) -> str:
    if len(text) <= TEXT_LIMIT:
        return text
    return text[:TEXT_LIMIT] + f"\n… [{len(text) - TEXT_LIMIT} more]"


def _rows(shown: dict[str, Any]) -> tuple[list[str], list[list[Any]], int]:
    preview = shown.get("preview") or []
    raw_cols = shown.get("columns") or []
    columns = [str(c.get("name") if isinstance(c, dict) else c) for c in raw_cols]
    rows: list[list[Any]] = []
    for row in preview[:TABLE_ROWS]:
        if isinstance(row, dict):
            columns = columns or [str(k) for k in row]
            rows.append([row.get(c) for c in columns])
        elif isinstance(row, list):
            rows.append(row)
    total = shown.get("rows")
    return columns, rows, int(total) if isinstance(total, int) else len(preview)


def _cell_outputs(row: dict[str, Any]) -> tuple[str, str, list[dict[str, Any]], str | None]:
    result = row.get("result") or {}
    displays = [d for d in result.get("displays") or [] if isinstance(d, dict)]
    error = result.get("error") if result.get("status") == "error" else None
    if error:
        displays = [d for d in displays if d.get("content_type") != "error"]
        tb = result.get("traceback")
        error = f"{error}\n{tb}" if tb else error
    return str(result.get("stdout") or ""), str(result.get("stderr") or ""), displays, error


# -- Markdown ----------------------------------------------------------------------------------


def _md_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    text = html.escape(text, quote=False)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _fence(text: str, lang: str = "") -> str:
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}\n"


def _md_display(shown: dict[str, Any]) -> str:
    kind = shown.get("content_type")
    if kind == "arrow/ipc":
        columns, rows, total = _rows(shown)
        if not columns:
            return ""
        lines = ["| " + " | ".join(_md_cell(c) for c in columns) + " |",
                 "|" + "---|" * len(columns)]  # fmt: skip
        lines += ["| " + " | ".join(_md_cell(v) for v in r) + " |" for r in rows]
        more = f"\n*{total - len(rows)} more rows*\n" if total > len(rows) else ""
        return "\n".join(lines) + "\n" + more
    if kind == "image/png" and PNG_URL.match(str(shown.get("inline_data_url") or "")):
        return f"![output]({shown['inline_data_url']})\n"
    if kind == "text/markdown":
        return str(shown.get("markdown_text") or "") + "\n"
    if kind == "error":
        return _fence(_clip(str(shown.get("error") or "")))
    text = shown.get("text") or shown.get("html") or shown.get("preview")
    if text is None:
        return ""
    return _fence(_clip(text if isinstance(text, str) else json.dumps(text, default=str)))


def markdown(pic: Picture, *, app_view: bool = False) -> Iterator[str]:
    """The document, piece by piece."""
    yield f"# {pic.name}\n\n"
    for row in pic.cells:
        if row["language"] == "markdown":
            yield row["source"].rstrip() + "\n\n"
            continue
        if not app_view:
            yield _fence(row["source"], "sql" if row["language"] == "sql" else "python") + "\n"
        stdout, stderr, displays, error = _cell_outputs(row)
        if stdout:
            yield _fence(_clip(stdout), "text") + "\n"
        if stderr:
            yield _fence(_clip(stderr), "text") + "\n"
        for shown in displays:
            yield _md_display(shown) + "\n"
        if error:
            yield "**Error**\n\n" + _fence(_clip(error), "text") + "\n"


# -- HTML ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Html:
    """The Markdown renderer and the highlighters of the HTML page."""

    markdown: Callable[[str], str]
    python: Callable[[str], str]
    sql: Callable[[str], str]


@functools.cache
def _html() -> _Html:
    """Built on the first HTML export: markdown-it and pygments are a slow import that
    most processes never need."""
    from markdown_it import MarkdownIt
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer, SqlLexer

    md = MarkdownIt("commonmark", {"html": False})  # raw HTML in Markdown is shown, never run
    formatter = HtmlFormatter(noclasses=True, nowrap=False)
    py, sql = PythonLexer(), SqlLexer()
    return _Html(
        md.render,
        lambda source: highlight(source, py, formatter),
        lambda source: highlight(source, sql, formatter),
    )


def _safe_markdown(text: str) -> str:
    out = _html().markdown(text)
    # an image in user Markdown may not make the page fetch anything
    return re.sub(r'src="(?!data:image/(?:png|gif|jpeg);base64,)[^"]*"', 'src=""', out)


def _html_display(shown: dict[str, Any]) -> str:
    kind = shown.get("content_type")
    esc = html.escape
    if kind == "arrow/ipc":
        columns, rows, total = _rows(shown)
        head = "".join(f"<th>{esc(str(c))}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{esc('' if v is None else str(v))}</td>" for v in r) + "</tr>"
            for r in rows
        )
        more = f'<div class="more">{total - len(rows)} more rows</div>' if total > len(rows) else ""
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"
    url = str(shown.get("inline_data_url") or "")
    if kind == "image/png" and PNG_URL.match(url):
        return f'<img alt="output" src="{esc(url)}">'
    if kind == "text/markdown":
        return _safe_markdown(str(shown.get("markdown_text") or ""))
    if kind == "error":
        return f'<pre class="error">{esc(_clip(str(shown.get("error") or "")))}</pre>'
    text = shown.get("text") or shown.get("html") or shown.get("preview")
    if text is None:
        return ""
    shown_text = text if isinstance(text, str) else json.dumps(text, default=str)
    return f"<pre>{esc(_clip(shown_text))}</pre>"


def html_page(pic: Picture, *, app_view: bool = False) -> Iterator[str]:
    """The self-contained page, piece by piece."""
    title = html.escape(pic.name)
    yield (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">"
        f"<title>{title}</title><style>{STYLE}</style></head><body>\n<h1>{title}</h1>\n"
    )
    for row in pic.cells:
        cid = html.escape(row["id"])
        if row["language"] == "markdown":
            rendered = _safe_markdown(row["source"])
            yield f'<div class="cell markdown" id="cell-{cid}">{rendered}</div>\n'
            continue
        parts = [f'<div class="cell code" id="cell-{cid}">']
        if not app_view:
            tools = _html()
            highlighted = tools.sql if row["language"] == "sql" else tools.python
            parts.append(highlighted(row["source"]))
        stdout, stderr, displays, error = _cell_outputs(row)
        if stdout:
            parts.append(f'<pre class="stdout">{html.escape(_clip(stdout))}</pre>')
        if stderr:
            parts.append(f'<pre class="stderr">{html.escape(_clip(stderr))}</pre>')
        parts.extend(_html_display(shown) for shown in displays)
        if error:
            parts.append(f'<pre class="error">{html.escape(_clip(error))}</pre>')
        parts.append("</div>\n")
        yield "".join(parts)
    yield "</body></html>\n"
