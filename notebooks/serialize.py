"""The JSON shapes of API.md §2 (``Cell``, ``NotebookState``, ``DAG``) as plain dicts."""

from __future__ import annotations

import json
from typing import Any

from notebooks.analysis import Dag
from notebooks.model import (
    EMPTY_CELL_FIELDS,
    CellState,
    Derived,
    narrowed_mounts,
    resolved_timeout,
    resolved_worker,
)
from notebooks.session import Session


def dag_dict(dag: Dag, *, producers: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "edges": [
            {"from_cell_id": e.from_cell_id, "to_cell_id": e.to_cell_id, "variable": e.variable}
            for e in dag.edges
        ]
        if dag.error is None
        else [],
        "topological_order": list(dag.topological_order),
        "leaves": list(dag.leaves),
        "roots": list(dag.roots),
    }
    if producers:
        out["variable_producer"] = dict(dag.variable_producer)
    if dag.error is not None:
        out["error"] = dag.error
    return out


def cell_static(cell: CellState) -> dict[str, Any]:
    """The part of a Cell fixed by its ``CellState`` (source, analysis, toml entry)."""
    entry, info = cell.entry, cell.analysis
    out: dict[str, Any] = {
        "id": cell.id,
        "source": cell.source,
        "test_source": cell.test_source,
        "test_result": None,
        "language": entry.language,
        "order": entry.order,
        "defines": list(info.defines),
        "references": list(info.references),
        "mutation_defines": list(info.mutation_defines),
        "builtin_references": list(info.builtin_references),
        "worker_override": entry.worker,
        "timeout_override": entry.timeout,
        "env_overrides": dict(entry.env),
        "mount_overrides": list(entry.mounts),
        "variant_group": None,
        "variant_name": None,
        "variant_active": True,
        "remote_worker": None,
        "remote_transport": None,
        "remote_build_id": None,
        "remote_build_state": None,
        "remote_error_code": None,
        "annotations": info.annotations.to_dict(),
    }
    if entry.language == "python":
        out["is_module_cell"] = info.module_exports is not None
        if info.module_exports is not None:
            out["module_exports"] = [{"name": n, "kind": k} for n, k in info.module_exports]
    return out


def cell_dynamic(cell: CellState, derived: Derived) -> dict[str, Any]:
    """The part of a Cell that edits and runs change: edges, staleness, diagnostics, outputs."""
    dag = derived.dag
    st = derived.staleness.get(cell.id)
    result = derived.results.get(cell.id)
    diagnostics = [
        d.to_dict()
        for d in (
            *cell.file_diagnostics,
            *cell.analysis.diagnostics,
            *dag.diagnostics.get(cell.id, ()),
        )
    ]
    downstream = list(dag.downstream.get(cell.id, ()))
    status = "running" if derived.running == cell.id else (st.status if st else "idle")
    out: dict[str, Any] = {
        "status": status,
        "worker": resolved_worker(cell, derived.notebook_worker),  # worker_override: the cell's
        "timeout": resolved_timeout(cell, derived.notebook_timeout),
        "env": {**dict(derived.notebook_env), **cell.entry.env},  # env_overrides: the cell's
        "mounts": narrowed_mounts(derived.notebook_mounts, cell.entry.mounts),  # mount_overrides
        "upstream_ids": list(dag.upstream.get(cell.id, ())),
        "downstream_ids": downstream,
        "annotation_diagnostics": diagnostics,
        "is_leaf": not downstream,
        "staleness": {"status": st.status, "reasons": list(st.reasons)} if st else None,
        "staleness_reasons": list(st.reasons) if st else [],
        **(result.cell_fields() if result is not None else EMPTY_CELL_FIELDS),
    }
    causality = st.causality() if st else None
    if causality is not None:
        out["causality"] = causality
    shadows = dag.shadow_warnings.get(cell.id)
    if shadows:
        out["shadow_warnings"] = list(shadows)
    return out


def cell_dict(cell: CellState, derived: Derived) -> dict[str, Any]:
    return {**cell_static(cell), **cell_dynamic(cell, derived)}


def cells_list(derived: Derived) -> list[dict[str, Any]]:
    return [cell_dict(c, derived) for c in derived.cells]


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def cell_json(cell: CellState, derived: Derived, cache: dict[str, Any]) -> bytes:
    """``cell_dict`` encoded, re-encoding only what changed.

    An edit changes one cell's source but can touch every cell's edges and
    staleness. The static half is encoded once per ``CellState``; the dynamic
    half is re-encoded only when what it shows changed.
    """
    dag = derived.dag
    key = (
        derived.notebook_env,
        derived.notebook_mounts,
        derived.notebook_worker,
        derived.notebook_timeout,
        dag.upstream.get(cell.id),
        dag.downstream.get(cell.id),
        derived.staleness.get(cell.id),
        dag.diagnostics.get(cell.id),
        dag.shadow_warnings.get(cell.id),
        derived.results.get(cell.id),
        derived.running == cell.id,
    )
    hit = cache.get(cell.id)
    if hit is not None and hit[0] is cell:
        static = hit[1]
        if hit[2] == key:
            return hit[3]
    else:
        static = dumps(cell_static(cell))[:-1]  # without the closing brace
    encoded = static + b"," + dumps(cell_dynamic(cell, derived))[1:]
    cache[cell.id] = (cell, static, key, encoded)
    return encoded


def cells_json(derived: Derived, cache: dict[str, Any]) -> bytes:
    """The ``[Cell]`` array, encoded; drops cache entries of cells that are gone."""
    if len(cache) > 2 * len(derived.cells) + 16:
        live = {c.id for c in derived.cells}
        for cid in [k for k in cache if k not in live]:
            cache.pop(cid, None)
    return b"[" + b",".join(cell_json(c, derived, cache) for c in derived.cells) + b"]"


def environment_dict(session: Session) -> dict[str, Any]:
    """API.md §2.4 ``EnvState`` of the session's notebook."""
    return session.environment.state()


def state_dict(session: Session) -> dict[str, Any]:
    nb = session.nb
    derived = session.derived
    return {
        "id": nb.notebook_id,
        "name": nb.name,
        "owner": nb.get("owner"),
        "worker": nb.get("worker"),
        "timeout": nb.get("timeout"),
        "env": dict(nb.get("env") or {}),
        "env_sources": {},
        "env_fetch_error": None,
        "env_fetched_at": None,
        "workers": list(nb.get("workers") or []),
        "mounts": list(nb.get("mounts") or []),
        "connections": [],
        "malformed_connections": [],
        "secret_manager_config": {},
        "r": {},
        "cells": cells_list(derived),
        "variant_groups": [],
        "created_at": _iso(nb.get("created_at")),
        "updated_at": _iso(nb.get("updated_at")),
        "environment": environment_dict(session),
        **session.environment.jobs(),
        "r_environment": {
            "has_lockfile": False,
            "current_lock_hash": None,
            "lock_hash": None,
            "r_version": None,
            "system_r_version": None,
            "last_synced_at": None,
            "sync_state": "absent",
            "sync_error": None,
            "packages": [],
            "packages_status": "absent",
            "packages_error": None,
        },
    }


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
