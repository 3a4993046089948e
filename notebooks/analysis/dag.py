"""The notebook DAG as pure functions over cell analyses in notebook order.

Rules (stated for users in docs/notebooks.md):

- Each name a cell reads links to the *nearest earlier* cell that produces it
  (binds it or mutates it in place). A name only a later cell produces gives
  no edge; a cell never links to itself; builtins link only when an earlier
  cell rebinds them.
- ``@after <cell-id>`` adds an ordering edge with variable ``""``.
- A cell that rebinds a name an earlier cell produced gets a shadow warning.
- Topological order is Kahn's algorithm; ties go to notebook order.
- A cycle (only ``@after`` can make one), or two cells defining one name in an
  order that ``@after`` forces against notebook order, gives an error
  diagnostic on each cell involved and a DAG whose ``error`` says so, with
  empty order, roots, leaves and producer map. Edges stay, for display.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from notebooks.analysis.cells import CellAnalysis, Diagnostic


@dataclass(frozen=True)
class Edge:
    from_cell_id: str
    to_cell_id: str
    variable: str


@dataclass(frozen=True)
class Dag:
    edges: tuple[Edge, ...] = ()
    upstream: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    downstream: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    topological_order: tuple[str, ...] = ()
    roots: tuple[str, ...] = ()
    leaves: tuple[str, ...] = ()
    variable_producer: Mapping[str, str] = field(default_factory=dict)
    shadow_warnings: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    diagnostics: Mapping[str, tuple[Diagnostic, ...]] = field(default_factory=dict)
    error: str | None = None


def link(cells: Sequence[tuple[str, CellAnalysis]]) -> tuple[list[Edge], dict, dict, dict]:
    """Edges, final producer map, shadow warnings and @after diagnostics, in notebook order."""
    ids = {cid for cid, _ in cells}
    latest: dict[str, str] = {}
    edges: dict[tuple[str, str, str], None] = {}
    shadows: dict[str, list[str]] = {}
    diags: dict[str, list[Diagnostic]] = {}
    for cid, info in cells:
        for name in (*info.references, *info.builtin_references):
            producer = latest.get(name)
            if producer is not None and producer != cid:
                edges[(producer, cid, name)] = None
        for target in info.annotations.after:
            if target == cid:
                continue
            if target in ids:
                edges[(target, cid, "")] = None
            else:
                diags.setdefault(cid, []).append(
                    Diagnostic("warn", "unknown_after", f"@after names unknown cell '{target}'")
                )
        for name in info.defines:
            earlier = latest.get(name)
            if earlier is not None and earlier != cid:
                shadows.setdefault(cid, []).append(
                    f"'{name}' redefines the variable produced by cell {earlier}"
                )
        for name in info.produces:
            latest[name] = cid
    return [Edge(*key) for key in edges], latest, shadows, diags


def topological_sort(
    ids: Sequence[str], upstream: Mapping[str, Sequence[str]]
) -> tuple[list[str], list[str]]:
    """Kahn's algorithm, ties broken by position in ``ids``; returns (order, left over)."""
    position = {cid: i for i, cid in enumerate(ids)}
    indegree = {cid: len(upstream.get(cid, ())) for cid in ids}
    downstream: dict[str, list[str]] = {cid: [] for cid in ids}
    for cid in ids:
        for up in upstream.get(cid, ()):
            downstream[up].append(cid)
    ready = [position[cid] for cid in ids if indegree[cid] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        cid = ids[heapq.heappop(ready)]
        order.append(cid)
        for down in downstream[cid]:
            indegree[down] -= 1
            if indegree[down] == 0:
                heapq.heappush(ready, position[down])
    done = set(order)
    return order, [cid for cid in ids if cid not in done]


def cycles(nodes: Sequence[str], downstream: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Strongly connected components with a cycle (Tarjan, iterative), in ``nodes`` order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    allowed = set(nodes)
    counter = 0
    for start in nodes:
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            succ = [d for d in downstream.get(node, ()) if d in allowed]
            if i < len(succ):
                work.append((node, i + 1))
                nxt = succ[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1 or node in downstream.get(node, ()):
                    order = {n: k for k, n in enumerate(nodes)}
                    found.append(sorted(comp, key=order.__getitem__))
    return found


def _reaches(src: str, dst: str, downstream: Mapping[str, Sequence[str]]) -> bool:
    seen = {src}
    todo = [src]
    while todo:
        for nxt in downstream.get(todo.pop(), ()):
            if nxt == dst:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


def _order_conflicts(
    cells: Sequence[tuple[str, CellAnalysis]], downstream: Mapping[str, Sequence[str]]
) -> list[tuple[str, str, str]]:
    """(name, earlier cell, later cell) where ``@after`` makes the later definer run first."""
    definers: dict[str, list[str]] = {}
    for cid, info in cells:
        for name in info.produces:
            definers.setdefault(name, []).append(cid)
    out = []
    for name, cids in definers.items():
        for first, second in itertools.pairwise(cids):
            if _reaches(second, first, downstream):
                out.append((name, first, second))
    return out


def build_dag(cells: Sequence[tuple[str, CellAnalysis]]) -> Dag:
    """The DAG of ``cells`` (active cells, in notebook order)."""
    ids = [cid for cid, _ in cells]
    edges, producer, shadows, diags = link(cells)
    up: dict[str, list[str]] = {cid: [] for cid in ids}
    down: dict[str, list[str]] = {cid: [] for cid in ids}
    for e in edges:
        if e.from_cell_id not in up[e.to_cell_id]:
            up[e.to_cell_id].append(e.from_cell_id)
            down[e.from_cell_id].append(e.to_cell_id)
    order, left = topological_sort(ids, up)
    errors: list[str] = []
    for comp in cycles(left, down) if left else []:
        path = " -> ".join([*comp, comp[0]])
        errors.append(f"cycle between cells {path}")
        for cid in comp:
            diags.setdefault(cid, []).append(
                Diagnostic("error", "cycle", f"cell is part of a dependency cycle: {path}")
            )
    backward_after = any(
        ids.index(target) > ids.index(cid)
        for cid, info in cells
        for target in info.annotations.after
        if target in up
    )
    if backward_after:
        for name, first, second in _order_conflicts(cells, down):
            msg = (
                f"cells {first} and {second} both define '{name}', "
                f"but @after makes {second} run before {first}"
            )
            errors.append(msg)
            for cid in (first, second):
                diags.setdefault(cid, []).append(Diagnostic("error", "duplicate_definition", msg))
    common = {
        "edges": tuple(edges),
        "upstream": {k: tuple(v) for k, v in up.items()},
        "downstream": {k: tuple(v) for k, v in down.items()},
        "shadow_warnings": {k: tuple(v) for k, v in shadows.items()},
        "diagnostics": {k: tuple(v) for k, v in diags.items()},
    }
    if errors:
        return Dag(**common, error="; ".join(errors))
    return Dag(
        **common,
        topological_order=tuple(order),
        roots=tuple(cid for cid in ids if not up[cid]),
        leaves=tuple(cid for cid in ids if not down[cid]),
        variable_producer=dict(producer),
    )
