"""What a notebook's cells add up to: one immutable snapshot, computed again on each change.

Each cell's source and its analysis (:class:`CellState`), the DAG, every cell's
staleness against the recorded runs, the last results and the notebook-level settings
the Cell JSON shows, all in one :class:`Derived`. :func:`derive` is a pure function of
the cells, the notebook's settings and its runtime records; the session
(``notebooks/session.py``) owns the lock and swaps the snapshot whole, so readers never
see half an edit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from notebooks.analysis import (
    CellAnalysis,
    CellFacts,
    Dag,
    Diagnostic,
    Env,
    Staleness,
    analyse,
    build_dag,
    compute_staleness,
    source_hash,
)
from notebooks.model.disk import CellEntry, NotebookDir
from notebooks.model.outputs import CellResult
from notebooks.model.runtime import RuntimeState


@dataclass(frozen=True)
class CellState:
    entry: CellEntry
    source: str
    source_hash: str
    test_source: str
    analysis: CellAnalysis
    file_diagnostics: tuple[Diagnostic, ...] = ()
    id: str = field(init=False)  # a plain field: read in every hot loop

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", self.entry.id)


@dataclass(frozen=True)
class Derived:
    """Everything computed from the cells, replaced as a whole on each change."""

    cells: tuple[CellState, ...] = ()  # in notebook order
    dag: Dag = field(default_factory=Dag)
    staleness: Mapping[str, Staleness] = field(default_factory=dict)
    results: Mapping[str, CellResult] = field(default_factory=dict)
    """Each cell's last finished run (its outputs, console, displays)."""
    running: str | None = None
    """The cell executing now, shown as ``running``."""
    notebook_env: tuple[tuple[str, str], ...] = ()
    """The notebook's ``[env]``, under each cell's own ``env`` in its Cell JSON."""
    notebook_mounts: tuple[Mapping[str, Any], ...] = ()
    """The notebook's ``[[mounts]]``, narrowed by each cell's own in its Cell JSON."""
    notebook_worker: str | None = None
    notebook_timeout: Any = None
    """The notebook's default ``worker`` and ``timeout``, under each cell's own."""

    def cell(self, cell_id: str) -> CellState | None:
        for cell in self.cells:
            if cell.id == cell_id:
                return cell
        return None

    def status_view(self) -> dict[str, tuple[Any, ...]]:
        """Each cell's shown status, staleness reasons and causality details."""
        out: dict[str, tuple[Any, ...]] = {}
        for c in self.cells:
            st = self.staleness.get(c.id)
            status = "running" if self.running == c.id else st.status if st else "idle"
            out[c.id] = (status, st.reasons, st.details) if st else (status, (), ())
        return out


def resolved_worker(cell: CellState, default: str | None) -> str | None:
    """The worker ``cell`` runs on: its ``# @worker`` annotation, else its toml ``worker``,
    else the notebook's default."""
    return cell.analysis.annotations.worker or cell.entry.worker or default


def resolved_timeout(cell: CellState, default: Any) -> float | None:
    """``# @timeout`` annotation, else the cell's toml ``timeout``, else the notebook's."""
    for value in (cell.analysis.annotations.timeout, cell.entry.timeout, default):
        if isinstance(value, int | float) and value > 0:
            return float(value)
    return None


def merged_env(notebook_env: tuple[tuple[str, str], ...], cell: CellState) -> dict[str, str]:
    """The environment variables ``cell`` runs with: the notebook's ``[env]``, then the
    cell's own ``env`` on top."""
    merged = dict(notebook_env)
    merged.update({str(k): str(v) for k, v in cell.entry.env.items()})
    return merged


def mounts_read(cell: CellState, notebook_mounts: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """The notebook's mounts and the cell's own that ``cell`` reads (names it refers to)."""
    refs = set(cell.analysis.references)
    return (
        [m for m in notebook_mounts if _named(m) in refs],
        [m for m in cell.entry.mounts if _named(m) in refs],
    )


def _named(mount: Any) -> Any:
    return mount.get("name") if isinstance(mount, Mapping) else None


def analyse_cell(nb: NotebookDir, entry: CellEntry, source: str | None = None) -> CellState:
    """The cell of ``entry`` with its analysis; its source read from disk unless given."""
    diags: tuple[Diagnostic, ...] = ()
    if nb.cell_path(entry.file) is None:
        diags = (Diagnostic("error", "bad_file", f"cell file {entry.file!r} is outside cells/"),)
    if source is None:
        source = nb.read_cell(entry.file)
    return CellState(
        entry=entry,
        source=source,
        source_hash=source_hash(source),
        test_source=nb.read_test(entry.id) if entry.language == "python" else "",
        analysis=analyse(entry.language, source, entry.id),
        file_diagnostics=diags,
    )


Fingerprints = Callable[[CellState, dict[str, str]], dict[str, str]]
"""(cell, its environment) -> fingerprints of the mounts the cell reads."""


def derive(
    cells: Sequence[CellState],
    nb: NotebookDir,
    runtime: RuntimeState,
    env: Env,
    results: Mapping[str, CellResult],
    running: str | None,
    fingerprints: Fingerprints,
) -> Derived:
    """The snapshot of ``cells``: in notebook order, their DAG, each one's staleness
    against the runs ``runtime`` recorded, and the notebook's settings."""
    ordered = tuple(sorted(cells, key=lambda c: c.entry.order))
    dag = build_dag([(c.id, c.analysis) for c in ordered])
    default_worker = nb.get("worker")
    nb_env = tuple((str(k), str(v)) for k, v in (nb.get("env") or {}).items())
    facts = {
        c.id: CellFacts(
            c.entry.language,
            c.source_hash,
            c.analysis.annotations.name,
            resolved_worker(c, default_worker),
            merged_env(nb_env, c),
            fingerprints(c, merged_env(nb_env, c)),
        )
        for c in ordered
    }
    order = dag.topological_order or tuple(c.id for c in ordered)
    stale = compute_staleness(
        order, facts, dag.upstream, runtime.runs(), env, runtime.env_snapshots
    )
    return Derived(
        ordered,
        dag,
        stale,
        dict(results),
        running,
        nb_env,
        tuple(nb.get("mounts") or ()),
        default_worker,
        nb.get("timeout"),
    )
