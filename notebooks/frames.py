"""Payloads of the notebook WebSocket's frames (API.md §13) built from a session's state.

Pure functions of a :class:`~notebooks.session.Session` (and, for the impact
preview, of the cells a run would execute): the transport decides who gets them.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from notebooks.model import CellState
from notebooks.session import Session


def cell_name(cell: CellState) -> str:
    """How profiling and previews name a cell: its first definition, else its id."""
    return cell.analysis.defines[0] if cell.analysis.defines else cell.id


def status_payload(session: Session, cell_id: str) -> dict[str, Any]:
    """``cell_status``: the cell's status, with reasons and causality when it is stale."""
    derived = session.derived
    st = derived.staleness.get(cell_id)
    status = "running" if derived.running == cell_id else st.status if st else "idle"
    payload: dict[str, Any] = {"cell_id": cell_id, "status": status}
    if st is not None and st.reasons:
        payload["staleness_reasons"] = list(st.reasons)
        payload["causality"] = st.causality()
    return payload


def dag_update(session: Session, *, source_of: str | None = None) -> dict[str, Any]:
    """``dag_update``: edges and each cell's analysis; ``source_of`` also carries that
    cell's new source (what the editor's other connections need to show it)."""
    derived = session.derived
    dag = derived.dag
    cells = []
    for c in derived.cells:
        entry: dict[str, Any] = {
            "id": c.id,
            "defines": list(c.analysis.defines),
            "references": list(c.analysis.references),
            "upstream_ids": list(dag.upstream.get(c.id, ())),
            "downstream_ids": list(dag.downstream.get(c.id, ())),
            "is_leaf": not dag.downstream.get(c.id),
            "annotation_diagnostics": [d.to_dict() for d in c.analysis.diagnostics],
            "variant_group": None,
            "variant_name": None,
            "variant_active": True,
            "is_module_cell": c.analysis.module_exports is not None,
        }
        if c.analysis.module_exports is not None:
            entry["module_exports"] = [{"name": n, "kind": k} for n, k in c.analysis.module_exports]
        shadows = dag.shadow_warnings.get(c.id)
        if shadows:
            entry["shadow_warnings"] = list(shadows)
        editor = session.presence.last_editor(c.id)
        if editor is not None:
            entry["updated_by"] = editor
        if c.id == source_of:
            entry["source"] = c.source
        cells.append(entry)
    return {
        "edges": [
            {"from_cell_id": e.from_cell_id, "to_cell_id": e.to_cell_id, "variable": e.variable}
            for e in dag.edges
        ]
        if dag.error is None
        else [],
        "roots": list(dag.roots),
        "leaves": list(dag.leaves),
        "topological_order": list(dag.topological_order),
        "cells": cells,
        "variant_groups": [],
    }


def profiling_summary(session: Session) -> dict[str, Any]:
    """``profiling_summary``: run time, cache use and output sizes of this session's runs.

    A cache hit saves what the cell's last real run before it took.
    """
    derived = session.derived
    total_ms = 0.0
    hits = misses = 0
    saved_ms = 0.0
    artifact_bytes = 0
    profiles = []
    for cell in derived.cells:
        runs = session.history.get(cell.id, [])
        last_real: float | None = None
        for duration, hit in runs:
            total_ms += duration
            if hit:
                hits += 1
                saved_ms += last_real or 0.0
            else:
                misses += 1
                last_real = duration
        result = derived.results.get(cell.id)
        if result is not None:
            artifact_bytes += sum(
                int(v.get("bytes") or 0)
                for v in result.variables.values()
                if v.get("kind") == "arrow"
            )
        st = derived.staleness.get(cell.id)
        profiles.append(
            {
                "cell_id": cell.id,
                "cell_name": cell_name(cell),
                "status": "running"
                if derived.running == cell.id
                else (st.status if st else "idle"),
                "duration_ms": int(runs[-1][0]) if runs else 0,
                "cache_hit": runs[-1][1] if runs else bool(result and result.cache_hit),
                "artifact_uri": result.artifact_uri if result is not None else None,
                "execution_count": len(runs),
            }
        )
    return {
        "total_execution_ms": int(total_ms),
        "cache_hits": hits,
        "cache_misses": misses,
        "cache_savings_ms": int(saved_ms),
        "total_artifact_bytes": artifact_bytes,
        "cell_profiles": profiles,
        "team_cache_savings_ms": 0,
        "team_cache_hits": 0,
        "team_contributors": [],
        "team_promotions": [],
    }


def impact_preview(session: Session, cell_id: str, upstream: list[str]) -> dict[str, Any]:
    """``impact_preview``: the cells a run of ``cell_id`` executes (``upstream``, from the
    cascade planner, the target last), the ready cells downstream it will make stale, and
    the run time the steps took last."""
    derived = session.derived
    steps = []
    for cid in upstream:
        cell = derived.cell(cid)
        if cell is None:
            continue
        result = derived.results.get(cid)
        st = derived.staleness.get(cid)
        if cid == cell_id:
            reason = "target"
        elif st is not None and st.status == "stale":
            reason = "stale"
        else:
            reason = "missing"
        steps.append(
            {
                "cell_id": cid,
                "cell_name": cell_name(cell),
                "reason": reason,
                "skip": False,
                "estimated_ms": int(result.duration_ms) if result is not None else 0,
            }
        )
    downstream = []
    seen: set[str] = set()
    todo = deque(derived.dag.downstream.get(cell_id, ()))
    while todo:
        cid = todo.popleft()
        if cid in seen:
            continue
        seen.add(cid)
        cell = derived.cell(cid)
        st = derived.staleness.get(cid)
        if cell is not None and st is not None and st.status == "ready":
            downstream.append(
                {
                    "cell_id": cid,
                    "cell_name": cell_name(cell),
                    "current_status": "ready",
                    "new_status": "stale:upstream",
                }
            )
        todo.extend(derived.dag.downstream.get(cid, ()))
    return {
        "target_cell_id": cell_id,
        "upstream": steps,
        "downstream": downstream,
        "estimated_ms": sum(s["estimated_ms"] for s in steps),
    }
