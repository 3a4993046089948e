"""What a run can reuse, and what it must run first.

Before a cell runs, the runner asks: which of its upstream cells must run
again (:func:`upstream_needs`: not ready, no result, or a result held by a
kernel that is gone), what inputs the cell reads from the results there are
(:func:`cell_inputs`), and whether a result with the cell's provenance can
be taken as it is (:func:`cached_result`). Pure reads of the session, its
kernel and the Flight server; the decisions are :mod:`notebooks.runner`'s.
"""

from __future__ import annotations

from typing import Any

from flight import QuiverClient
from foundation import QuiverError
from notebooks.engines import Engines
from notebooks.model import CellResult, CellState, input_spec
from notebooks.session import Session


def upstream_needs(session: Session, engines: Engines, cell_id: str) -> list[str]:
    """Ancestors of ``cell_id`` that must run (not ready, no result, or held by a dead
    kernel), in topological order."""
    d = session.derived
    ancestors: set[str] = set()
    todo = list(d.dag.upstream.get(cell_id, ()))
    while todo:
        cid = todo.pop()
        if cid not in ancestors:
            ancestors.add(cid)
            todo.extend(d.dag.upstream.get(cid, ()))
    order = d.dag.topological_order or tuple(c.id for c in d.cells)
    needs = []
    for cid in order:
        if cid not in ancestors:
            continue
        cell = d.cell(cid)
        if cell is None or cell.entry.language == "markdown":
            continue
        st = d.staleness[cid]
        result = d.results.get(cid)
        if (
            st.status != "ready"
            or result is None
            or result.provenance_hash != st.provenance_hash
            or not memory_alive(engines, result)
        ):
            needs.append(cid)
    return needs


def memory_alive(engines: Engines, result: CellResult) -> bool:
    """Whether the variables ``result`` keeps in kernel memory are still there."""
    if not any(v.get("kind") == "memory" for v in result.variables.values()):
        return True
    return engines.kernel_alive and result.kernel == engines.kernel_id


def cached_result(
    session: Session, engines: Engines, client: QuiverClient, cell_id: str, prov: str
) -> CellResult | None:
    """The result of ``cell_id`` with provenance ``prov`` if it can be reused: ready, its
    memory variables in the live kernel, its artifacts still on the Flight server."""
    result = session.results.get(cell_id)
    if result is None or result.provenance_hash != prov or result.status != "ready":
        result = session.result_store.get(prov)
    if result is None or result.status != "ready" or result.cell_id != cell_id:
        return None
    if not memory_alive(engines, result):
        return None
    for uri in result.artifact_uris.values():
        try:
            if client.status(uri).get("state") not in ("ready", "superseded"):
                return None
        except QuiverError:
            return None
    return CellResult(**{**result.__dict__, "execution_method": "cached", "cache_hit": True})


def cell_inputs(
    session: Session, cell: CellState
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Input specs by variable, and upstream cell id -> provenance hash of the result used.

    The result used is each upstream cell's last finished run: after a
    cascade that is its current one; under ``force`` it may be older, and
    the target's provenance then says so (it stays stale).
    """
    d = session.derived
    specs: dict[str, dict[str, Any]] = {}
    consumed: dict[str, str] = {}
    for up in d.dag.upstream.get(cell.id, ()):
        producer = d.results.get(up)
        ok = producer is not None and producer.status == "ready"
        consumed[up] = producer.provenance_hash if ok and producer is not None else ""
    for edge in d.dag.edges:
        if edge.to_cell_id != cell.id or not edge.variable:
            continue
        producer = d.results.get(edge.from_cell_id)
        if producer is None or producer.status != "ready":
            continue
        var = producer.variables.get(edge.variable)
        if var is not None:
            specs[edge.variable] = input_spec(var, producer.provenance_hash)
    return specs, consumed
