"""The notebook tools the agent uses, and MCP serves to coding agents outside Quiver.

Each tool is a name, a description, a JSON schema for its arguments, whether
it is destructive (then it waits for approval unless auto-approved), and a
function of one session. Every change goes through the session's own
methods — the ones the REST routes call, with the same checks — and then
``changed(session)``, which the transport makes the same broadcast a REST
edit makes. Answers are small JSON: sources and previews clipped, tables as
schema plus first rows, never whole tables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from foundation import InvalidArgument, NotFound, QuiverError, Settings
from notebooks.ai.context import clip
from notebooks.analysis import LANGUAGES
from notebooks.runner import Runner
from notebooks.serialize import cell_dict, dag_dict
from notebooks.session import Session

AGENT_AUTHOR = "ai-agent"
PREVIEW_ROWS = 5
RESULT_CHARS = 8_000

Changed = Callable[[Session], None]
RunnerFor = Callable[[Session], Runner]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    destructive: bool = False

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


def _schema(required: tuple[str, ...] = (), **props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(required),
            "additionalProperties": False}  # fmt: skip


_ID = {"type": "string", "description": "a cell id (8 hex characters)"}
_SOURCE = {"type": "string", "description": "the cell's whole source"}

TOOLS: tuple[Tool, ...] = (
    Tool("list_cells", "The notebook's cells in order: id, language, status, the variables "
         "each defines and reads, and the start of its source.", _schema()),
    Tool("read_cell", "One cell: its whole source, status, last error and its outputs "
         "(tables as schema and first rows).", _schema(("cell_id",), cell_id=_ID)),
    Tool("add_cell", "Add a cell (after another one, else at the end); answers its id.",
         _schema(("source",), source=_SOURCE,
                 language={"type": "string", "enum": list(LANGUAGES)},
                 after_cell_id={"type": "string"})),
    Tool("edit_cell", "Replace a cell's source.",
         _schema(("cell_id", "source"), cell_id=_ID, source=_SOURCE)),
    Tool("delete_cell", "Delete a cell (its file too).", _schema(("cell_id",), cell_id=_ID),
         destructive=True),
    Tool("reorder_cells", "Put the listed cells first, in this order (others keep theirs).",
         _schema(("cell_ids",), cell_ids={"type": "array", "items": {"type": "string"}})),
    Tool("run_cell", "Run a cell (its stale upstream cells first) and answer its status, "
         "error, console and outputs.", _schema(("cell_id",), cell_id=_ID)),
    Tool("get_dag", "The DAG: edges (producer, consumer, variable), topological order, "
         "roots and leaves.", _schema()),
)  # fmt: skip
BY_NAME = {t.name: t for t in TOOLS}


def output_summary(var: Mapping[str, Any]) -> dict[str, Any]:
    """One output variable, small: a table's schema and first rows, a value clipped."""
    kind = var.get("kind")
    if kind == "arrow":
        return {"type": "table", "rows": var.get("rows"), "schema": var.get("columns", []),
                "first_rows": list(var.get("preview") or ())[:PREVIEW_ROWS]}  # fmt: skip
    if kind == "json":
        value = var.get("value")
        text = value if isinstance(value, str) else None
        return {"type": var.get("type"), "value": clip(text, 4_000) if text else value}
    return {"type": var.get("type"), "repr": clip(str(var.get("repr") or ""), 2_000)}


class NotebookTools:
    """The tools over sessions; ``runner_for`` runs cells, ``changed`` broadcasts edits."""

    def __init__(self, settings: Settings, runner_for: RunnerFor | None, changed: Changed) -> None:
        self.settings = settings
        self.runner_for = runner_for
        self.changed = changed

    def call(self, session: Session, name: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Run tool ``name``; a domain error becomes ``{"error": message}`` for the model."""
        tool = BY_NAME.get(name)
        if tool is None:
            return {"error": f"unknown tool {name!r}; tools: {', '.join(BY_NAME)}"}
        try:
            return getattr(self, name)(session, **dict(args))
        except TypeError as exc:
            return {"error": f"bad arguments for {name}: {exc}"}
        except QuiverError as exc:
            return {"error": exc.message}

    # -- reading ---------------------------------------------------------------------------

    def list_cells(self, session: Session) -> dict[str, Any]:
        with session.lock:
            d = session.derived
            cells = []
            for cell in d.cells:
                full = cell_dict(cell, d)
                cells.append({
                    "id": cell.id, "language": cell.entry.language, "status": full["status"],
                    "defines": full["defines"], "references": full["references"],
                    "source_start": clip(cell.source, 300),
                })  # fmt: skip
        return {"cells": cells}

    def read_cell(self, session: Session, cell_id: str) -> dict[str, Any]:
        with session.lock:
            d = session.derived
            cell = d.cell(cell_id)
            if cell is None:
                raise NotFound(f"Cell {cell_id} not found")
            full = cell_dict(cell, d)
            result = d.results.get(cell_id)
        answer: dict[str, Any] = {
            "id": cell.id, "language": cell.entry.language, "status": full["status"],
            "source": clip(cell.source, 20_000), "defines": full["defines"],
            "references": full["references"], "upstream_ids": full["upstream_ids"],
        }  # fmt: skip
        if result is not None:
            answer["outputs"] = {n: output_summary(v) for n, v in result.variables.items()}
            if result.error:
                answer["error"] = clip(result.error, 4_000)
            if result.stdout:
                answer["stdout"] = clip(result.stdout, 2_000)
        return answer

    def get_dag(self, session: Session) -> dict[str, Any]:
        with session.lock:
            return dag_dict(session.derived.dag)

    # -- changing --------------------------------------------------------------------------

    def _check_source(self, source: str) -> None:
        if len(source) > self.settings.notebook_max_source_chars:
            raise InvalidArgument("Cell source is over the size limit")

    def add_cell(
        self,
        session: Session,
        source: str,
        language: str = "python",
        after_cell_id: str | None = None,
    ) -> dict[str, Any]:
        if language not in LANGUAGES:
            raise InvalidArgument(f"unsupported cell language '{language}'")
        self._check_source(source)
        with session.lock:
            cell = session.add_cell(language, after_cell_id)
            if source:
                session.edit_source(cell.id, source, author=AGENT_AUTHOR, lock_s=0)
        self.changed(session)
        return {"cell_id": cell.id, "language": language}

    def edit_cell(self, session: Session, cell_id: str, source: str) -> dict[str, Any]:
        self._check_source(source)
        with session.lock:
            if session.derived.cell(cell_id) is None:
                raise NotFound(f"Cell {cell_id} not found")
            session.edit_source(
                cell_id, source, author=AGENT_AUTHOR, lock_s=self.settings.notebook_cell_lock_s
            )
        self.changed(session)
        return {"cell_id": cell_id, "edited": True}

    def delete_cell(self, session: Session, cell_id: str) -> dict[str, Any]:
        session.delete_cell(cell_id)
        self.changed(session)
        return {"cell_id": cell_id, "deleted": True}

    def reorder_cells(self, session: Session, cell_ids: list[str]) -> dict[str, Any]:
        session.reorder([str(c) for c in cell_ids])
        self.changed(session)
        return {"order": [c.id for c in session.derived.cells]}

    def run_cell(self, session: Session, cell_id: str) -> dict[str, Any]:
        if self.runner_for is None:
            raise InvalidArgument("Running cells is not configured on this server")
        if session.derived.cell(cell_id) is None:
            raise NotFound(f"Cell {cell_id} not found")
        answer = self.runner_for(session).execute(cell_id, "normal")
        result = session.derived.results.get(cell_id)
        out: dict[str, Any] = {"cell_id": cell_id, "status": answer.get("status")}
        if answer.get("error"):
            out["error"] = clip(str(answer["error"]), 4_000)
        if result is not None:
            out["outputs"] = {n: output_summary(v) for n, v in result.variables.items()}
            if result.stdout:
                out["stdout"] = clip(result.stdout, 2_000)
        return out
