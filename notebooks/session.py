"""A notebook session: the one coordinator that owns a notebook's mutable state.

Every mutation (cells added, edited, removed, reordered; rename; a run
recorded) goes through a :class:`Session` method holding its lock, writes the
disk first, then recomputes the derived state — analyses, DAG, staleness —
with the pure :func:`~notebooks.model.snapshot.derive`. Readers get immutable
snapshots (``Derived``), so serialising never races an edit. The directory on disk
is the truth: :meth:`Session.reload` rebuilds everything from it.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from foundation import Conflict, InvalidArgument, NotFound
from notebooks.analysis import EXTENSIONS, Env, analyse, source_hash
from notebooks.env import Environment, busy
from notebooks.model import (
    CellEntry,
    CellResult,
    CellState,
    Derived,
    NotebookDir,
    ResultStore,
    RuntimeState,
    analyse_cell,
    check_name,
    derive,
    iso,
    merged_env,
    mounts_read,
    now,
    read_env,
    resolved_timeout,
    resolved_worker,
)
from notebooks.presence import LOCAL, Presence


@dataclass(frozen=True)
class Edit:
    """What one source edit did."""

    cell: CellState
    changed: tuple[str, ...]
    """Cells whose status, staleness reasons or causality changed (the edited one too)."""
    presence_changed: bool


HISTORY_LIMIT = 50
"""Runs remembered per cell for profiling."""


MountFacts = Callable[[Sequence[Any], Sequence[Any], Mapping[str, str], bool], dict[str, str]]
"""(notebook mounts, cell mounts, env, fresh) -> mount name -> fingerprint (``exchange``)."""


class Session:
    """One open notebook. Thread-safe: every public method takes the session lock."""

    def __init__(
        self,
        nb: NotebookDir,
        *,
        clock: Callable[[], float] = time.monotonic,
        mounts: MountFacts | None = None,
    ) -> None:
        self.id = str(uuid.uuid4())
        self.mount_facts = mounts
        self._fresh_mounts = False  # a reload lists remote mounts again
        self.nb = nb
        self.clock = clock
        self.lock = threading.RLock()
        self.created_at = iso(now())
        self.last_used = clock()
        self.executing = False  # set by the executor (issue 6)
        self._env_idle = threading.Event()  # cleared while an environment job runs
        self._env_idle.set()
        self.env: Env = Env(hash="")
        self._environment: Environment | None = None
        self.runtime = RuntimeState(nb.state_dir)
        self.result_store = ResultStore(nb.state_dir)
        self.results: dict[str, CellResult] = {}
        self.derived = Derived()
        self.render_cache: dict[str, object] = {}  # encoded Cell JSON, see serialize.cell_json
        self.presence = Presence(clock=clock)
        self.queued: frozenset[str] = frozenset()
        """Cells a run is going to execute (set by the executor): their sources are busy."""
        self.history: dict[str, list[tuple[float, bool]]] = {}
        """Per cell, ``(duration_ms, cache_hit)`` of its runs in this session, oldest first."""
        self.reload()

    @property
    def path(self) -> str:
        return str(self.nb.path)

    def touch(self) -> None:
        self.last_used = self.clock()

    # -- derived state -----------------------------------------------------------------------

    def reload(self) -> None:
        """Rebuild everything from disk (the truth)."""
        with self.lock:
            self.nb.load()
            self.nb.ensure_state_dir()
            self.runtime.load()
            self.env = read_env(self.nb.path)
            cells = tuple(analyse_cell(self.nb, e) for e in self.nb.cell_entries())
            self.results = {}
            for c in cells:
                last = self.runtime.cells.get(c.id, {}).get("last_result")
                result = self.result_store.get(last) if isinstance(last, str) else None
                if result is not None and result.cell_id == c.id:
                    self.results[c.id] = result
            self._fresh_mounts = True
            try:
                self._derive(cells)
            finally:
                self._fresh_mounts = False

    @property
    def env_busy(self) -> bool:
        """Is an environment job running (set by the jobs)?"""
        return not self._env_idle.is_set()

    @env_busy.setter
    def env_busy(self, value: bool) -> None:
        if value:
            self._env_idle.clear()
        else:
            self._env_idle.set()

    def wait_env_idle(self, timeout: float) -> bool:
        """Wait until no environment job runs (at most ``timeout`` s); whether none does."""
        return self._env_idle.wait(timeout)

    @property
    def environment(self) -> Environment:
        """The notebook's Python environment (its job, its job history, its sync record)."""
        with self.lock:
            found = self._environment
            if found is None or found.path != self.nb.path:
                found = self._environment = Environment(self.nb.path)
            return found

    def refresh_env(self) -> None:
        with self.lock:
            self.env = read_env(self.nb.path)
            self._derive(self.derived.cells)

    def _derive(self, cells: Sequence[CellState]) -> None:
        self.derived = derive(
            cells,
            self.nb,
            self.runtime,
            self.env,
            self.results,
            self.derived.running,
            lambda cell, env: self.mount_fingerprints(cell, env=env),
        )

    def set_running(self, cell_id: str | None) -> None:
        with self.lock:
            self.derived = dataclasses.replace(self.derived, running=cell_id)

    def cell_env(self, cell: CellState) -> dict[str, str]:
        """The environment variables ``cell`` runs with: the notebook's ``[env]``, then the
        cell's own ``env`` on top."""
        return merged_env(self.derived.notebook_env, cell)

    def mount_fingerprints(
        self, cell: CellState, *, fresh: bool = False, env: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Fingerprints of the mounts ``cell`` reads (``fresh``: no remote listing held over)."""
        notebook, own = mounts_read(cell, self.nb.get("mounts") or [])
        if self.mount_facts is None or not (notebook or own):
            return {}
        env = self.cell_env(cell) if env is None else env
        return self.mount_facts(notebook, own, env, fresh or self._fresh_mounts)

    def cell_worker(self, cell: CellState) -> str | None:
        return resolved_worker(cell, self.nb.get("worker"))

    def cell_timeout(self, cell: CellState) -> float | None:
        return resolved_timeout(cell, self.nb.get("timeout"))

    def _require_cell(self, cell_id: str, message: str) -> CellState:
        cell = self.derived.cell(cell_id)
        if cell is None:
            raise NotFound(message)
        return cell

    def ensure_env_idle(self) -> None:
        """409 ``ENVIRONMENT_BUSY`` while an environment job runs."""
        if self.env_busy:
            raise busy("Environment operation in progress", self.environment.job)

    def ensure_not_busy(self) -> None:
        self.ensure_env_idle()
        if self.executing:
            raise Conflict("Notebook deletion is blocked while notebook execution is running.")

    # -- mutations ---------------------------------------------------------------------------

    def add_cell(
        self, language: str, after_cell_id: str | None = None, *, cell_id: str | None = None
    ) -> CellState:
        with self.lock:
            cells = self.derived.cells
            if after_cell_id is not None:
                anchor = self.derived.cell(after_cell_id)
                if anchor is None:
                    raise InvalidArgument(f"after_cell_id '{after_cell_id}' not found")
                later = [c.entry.order for c in cells if c.entry.order > anchor.entry.order]
                order = (anchor.entry.order + min(later)) / 2 if later else anchor.entry.order + 1
            else:
                order = max((c.entry.order for c in cells), default=-1.0) + 1
            existing = {c.id for c in cells}
            new_id = cell_id or uuid.uuid4().hex[:8]
            while new_id in existing:
                new_id = uuid.uuid4().hex[:8]
            entry = CellEntry(new_id, f"{new_id}.{EXTENSIONS[language]}", language, float(order))
            self.nb.write_cell(entry.file, "")
            self.nb.add_cell(entry)
            cell = analyse_cell(self.nb, entry, "")
            self._derive((*cells, cell))
            return cell

    def update_source(self, cell_id: str, source: str) -> CellState:
        with self.lock:
            old = self._require_cell(cell_id, f"Cell {cell_id} not found in notebook.toml")
            if old.file_diagnostics:
                raise InvalidArgument(f"Cell file {old.entry.file!r} is outside cells/")
            self.nb.write_cell(old.entry.file, source)
            cell = CellState(
                entry=old.entry,
                source=source,
                source_hash=source_hash(source),
                test_source=old.test_source,
                analysis=analyse(old.entry.language, source, cell_id),
            )
            self._derive(tuple(cell if c.id == cell_id else c for c in self.derived.cells))
            return cell

    def status_view(self) -> dict[str, tuple[Any, ...]]:
        """Each cell's shown status, staleness reasons and causality details."""
        return self.derived.status_view()

    def edit_source(
        self,
        cell_id: str,
        source: str,
        *,
        author: str = LOCAL,
        force: bool = False,
        lock_s: float = 5.0,
        socket: Hashable | None = None,
    ) -> Edit:
        """The one edit path of a cell's source (REST ``PUT cells/{id}`` and the WebSocket's
        ``cell_source_update``).

        Refused with :class:`Conflict` (detail ``code``) while the cell runs or waits in
        a run (``cell_busy``: its result would be stored under a source it no longer
        has), and while another author's edit of it is less than ``lock_s`` old unless
        ``force`` (``cell_locked``, naming ``held_by``). Otherwise the file is written,
        the cell re-analysed, the DAG and staleness recomputed.
        """
        with self.lock:
            self._require_cell(cell_id, f"Cell {cell_id} not found in notebook.toml")
            if cell_id == self.derived.running or cell_id in self.queued:
                message = (
                    f"Cannot update cell {cell_id} while it is executing; "
                    "retry after the cell finishes"
                )
                raise Conflict(
                    message, detail={"code": "cell_busy", "cell_id": cell_id, "message": message}
                )
            held_by = self.presence.holder(cell_id, author, lock_s)
            if held_by is not None and not force:
                message = (
                    f"{held_by} changed cell {cell_id} moments ago; "
                    "retry in a few seconds, or send force to take it over"
                )
                detail = {"code": "cell_locked", "cell_id": cell_id, "held_by": held_by}
                raise Conflict(message, detail={**detail, "message": message})
            before = self.status_view()
            cell = self.update_source(cell_id, source)
            after = self.status_view()
        moved = self.presence.edited(cell_id, author, socket=socket)
        changed = tuple(cid for cid, view in after.items() if before.get(cid) != view)
        return Edit(cell, changed, moved)

    def delete_cell(self, cell_id: str) -> None:
        with self.lock:
            cell = self._require_cell(cell_id, "Cell not found")
            self.nb.remove_cell(cell_id)
            if not cell.file_diagnostics:
                self.nb.delete_cell_file(cell.entry.file)
            self.runtime.forget(cell_id)
            self.results.pop(cell_id, None)
            self.history.pop(cell_id, None)
            self.presence.forget(cell_id)
            self._derive(tuple(c for c in self.derived.cells if c.id != cell_id))

    def reorder(self, cell_ids: Sequence[str]) -> None:
        """Listed known ids take orders 0, 1, …; unlisted cells follow in their old order."""
        with self.lock:
            known = {c.id for c in self.derived.cells}
            listed = list(dict.fromkeys(cid for cid in cell_ids if cid in known))
            rest = [c.id for c in self.derived.cells if c.id not in set(listed)]
            orders = {cid: float(i) for i, cid in enumerate([*listed, *rest])}
            self.nb.set_orders(orders)
            cells = tuple(
                dataclasses.replace(c, entry=dataclasses.replace(c.entry, order=orders[c.id]))
                for c in self.derived.cells
            )
            self._derive(cells)

    def configure(self, key: str, value: Any) -> None:
        """Set a notebook-level setting (``env``, ``timeout``; None removes it), then
        recompute what depends on it (an env change makes cells stale)."""
        with self.lock:
            if self.nb.set_value(key, value):
                self._derive(self.derived.cells)

    def configure_cell(self, cell_id: str, key: str, value: Any) -> CellState:
        """Set a cell-level setting of its ``notebook.toml`` entry (``mounts``; None
        removes it), then recompute what depends on it; the cell as it is now."""
        with self.lock:
            old = self._require_cell(cell_id, "Cell not found")
            if not self.nb.set_cell_value(cell_id, key, value):
                return old
            entry = next(e for e in self.nb.cell_entries() if e.id == cell_id)
            cell = dataclasses.replace(old, entry=entry)
            self._derive(tuple(cell if c.id == cell_id else c for c in self.derived.cells))
            return cell

    def rename(self, name: str) -> None:
        check_name(name)
        with self.lock:
            self.nb.set_name(name)

    def record_run(
        self, cell_id: str, inputs: Mapping[str, str] | None = None, status: str = "ready"
    ) -> None:
        """Record that ``cell_id`` ran against the current state (the executor's hook)."""
        with self.lock:
            cell = self._require_cell(cell_id, "Cell not found")
            st = self.derived.staleness[cell_id]
            ups = self.derived.dag.upstream.get(cell_id, ())
            consumed = (
                dict(inputs)
                if inputs is not None
                else {up: self.derived.staleness[up].provenance_hash for up in ups}
            )
            self.runtime.record_run(
                cell_id,
                source_hash=cell.source_hash,
                env=self.env,
                provenance_hash=st.provenance_hash,
                inputs=consumed,
                status=status,
            )
            self._derive(self.derived.cells)

    def record_result(self, result: CellResult, source_hash: str) -> None:
        """Record a finished run of ``result.cell_id`` (the executor's hook).

        ``source_hash`` and the result's provenance hash are those the run
        started with, so an edit made while the cell ran leaves it stale.
        ``error`` runs are recorded too: their downstream cells become stale.
        """
        with self.lock:
            self._require_cell(result.cell_id, "Cell not found")
            if result.status == "ready" and not result.cache_hit:
                # (a cache hit was just read from that very file)
                self.result_store.put(result)
            self.runtime.record_run(
                result.cell_id,
                source_hash=source_hash,
                env=self.env,
                provenance_hash=result.provenance_hash,
                inputs=result.inputs,
                status="error" if result.status == "error" else "ready",
                extra={"last_result": result.provenance_hash if result.status == "ready" else None},
                durable=False,
            )
            self.results[result.cell_id] = result
            runs = self.history.setdefault(result.cell_id, [])
            runs.append((result.duration_ms, result.cache_hit))
            del runs[:-HISTORY_LIMIT]
            self._derive(self.derived.cells)
