"""The notebook WebSocket's messages besides running cells (API.md §13.4).

``cell_source_update`` is the browser client's edit path: it goes through
:meth:`notebooks.session.Session.edit_source`, the same as REST
``PUT cells/{id}``, and differs only in what it answers. Presence
(``cell_focus``; join and leave are in the socket loop), ``profiling_request``
and ``impact_preview_request`` answer from the session's state. Types for
features Quiver does not have answer ``error {code: "unsupported"}`` naming the
feature: :func:`handlers` builds the table, and a feature that arrives later
(environments: ``dependency_add``/``dependency_remove``) passes its own
handlers in, replacing those answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from foundation import Conflict
from notebooks import dag_update, impact_preview, profiling_summary, status_payload
from rest.notebook_ws import Conversation, Handler

UNSUPPORTED: dict[str, str] = {
    "cell_run_tests": "Cell tests (cell_run_tests)",
    "variant_set_active": "Cell variants (variant_set_active)",
    "variant_add": "Cell variants (variant_add)",
    "widget_update": "Widgets (widget_update)",
    "read_confirm": "Large-read confirmation (read_confirm)",
}
"""Message types of Strata 0.11's client for features this server does not have."""


def _unsupported(feature: str) -> Handler:
    def answer(talk: Conversation, payload: dict[str, Any]) -> None:
        talk.error(f"{feature} is not supported by this server", code="unsupported")

    return answer


def source_update(talk: Conversation, payload: dict[str, Any]) -> None:
    """``cell_source_update {cell_id, source, author?, force?}``."""
    cell_id, source = payload.get("cell_id"), payload.get("source")
    if not cell_id or not isinstance(source, str):
        talk.error("Missing cell_id or source")
        return
    cell_id = str(cell_id)
    limit = talk.settings.notebook_max_source_chars
    if len(source) > limit:
        size = "1MB" if limit == 1_000_000 else f"{limit} characters"
        talk.error(f"Cell source exceeds {size} limit")
        return
    session = talk.session
    if session.derived.cell(cell_id) is None:
        talk.error(f"Cell {cell_id} not found")
        return
    try:
        edit = session.edit_source(
            cell_id,
            source,
            author=talk.author(payload),
            force=bool(payload.get("force")),
            lock_s=talk.settings.notebook_cell_lock_s,
            socket=talk.client,
        )  # fmt: skip
    except Conflict as exc:
        detail = exc.detail if isinstance(exc.detail, dict) else {}
        extra = {k: v for k, v in detail.items() if k in ("code", "cell_id", "held_by")}
        talk.error(exc.message, **extra)
        return
    hub = talk.hub
    if edit.presence_changed:
        hub.publish_presence(session)
    with session.lock:
        own = dag_update(session)
        others = dag_update(session, source_of=cell_id)
        statuses = [status_payload(session, cid) for cid in edit.changed]
    hub.publish(session.id, "dag_update", own, sender=talk.client, to_others=others)
    for status in statuses:
        hub.publish(session.id, "cell_status", status)


def focus(talk: Conversation, payload: dict[str, Any]) -> None:
    """``cell_focus {cell_id | null, author?}``: an unknown cell is ignored."""
    cell_id = payload.get("cell_id")
    session = talk.session
    if cell_id is not None and session.derived.cell(str(cell_id)) is None:
        return
    author = talk.author(payload)
    where = None if cell_id is None else str(cell_id)
    if session.presence.focus(talk.client, author, where):
        talk.hub.publish_presence(session)


def profiling(talk: Conversation, payload: dict[str, Any]) -> None:
    with talk.session.lock:
        summary = profiling_summary(talk.session)
    talk.reply("profiling_summary", summary)


def impact(talk: Conversation, payload: dict[str, Any]) -> None:
    """``impact_preview_request {cell_id}``, planned by the runner's cascade planner."""
    cell_id = payload.get("cell_id")
    session = talk.session
    if not cell_id or session.derived.cell(str(cell_id)) is None:
        talk.error(f"Cell {cell_id} not found" if cell_id else "Missing cell_id")
        return
    executions = talk.executions
    plan = executions.runner(session).plan(str(cell_id)) if executions else [str(cell_id)]
    with session.lock:
        preview = impact_preview(session, str(cell_id), plan)
    talk.reply("impact_preview", preview)


def _inspect(action: str) -> Handler:
    """``inspect_open {cell_id}`` / ``inspect_eval {cell_id, expr}`` / ``inspect_close``:
    the REPL of ``notebooks.inspect``, answered ``inspect_result`` to the asker."""

    def answer(talk: Conversation, payload: dict[str, Any]) -> None:
        cell_id = payload.get("cell_id")
        if not cell_id:
            talk.error("Missing cell_id")
            return
        cell_id = str(cell_id)
        reply: dict[str, Any] = {"cell_id": cell_id, "action": action}
        if talk.executions is None:
            talk.reply("inspect_result", {**reply, "ok": False,
                       "error": "Cell execution is not configured on this server"})  # fmt: skip
            return
        inspections = talk.executions.inspections(talk.session)
        if action == "open":
            if talk.session.derived.cell(cell_id) is None:
                reply.update(ok=False, error=f"Cell {cell_id} not found")
            else:
                specs = talk.executions.runner(talk.session).input_specs(cell_id)
                reply.update(inspections.open(cell_id, specs))
        elif action == "eval":
            expr = payload.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                talk.error("Missing expr")
                return
            reply.update(expr=expr, **inspections.evaluate(cell_id, expr))
        else:
            inspections.close(cell_id)
            reply.update(ok=True, result="closed")
        talk.reply("inspect_result", reply)

    return answer


def handlers(extra: Mapping[str, Handler] | None = None) -> dict[str, Handler]:
    """The message table: edits, presence, profiling, impact previews, ``unsupported``
    answers; ``extra`` (a later feature's handlers) replaces entries of it."""
    table: dict[str, Handler] = {kind: _unsupported(f) for kind, f in UNSUPPORTED.items()}
    table.update(
        {
            "cell_source_update": source_update,
            "cell_focus": focus,
            "profiling_request": profiling,
            "impact_preview_request": impact,
            "inspect_open": _inspect("open"),
            "inspect_eval": _inspect("eval"),
            "inspect_close": _inspect("close"),
        }
    )
    table.update(extra or {})
    return table
