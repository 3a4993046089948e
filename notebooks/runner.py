"""Running cells: one warm kernel per session, cascades, the result cache, run frames.

:class:`Runner` is the one coordinator of execution for a session. It owns
the session's kernel (``kernel/process.py``) and a lock that lets one run
at a time; a second request gets :class:`~foundation.errors.Conflict`. Every
step reports what happens as protocol frames (API.md §13.3) through the
``emit`` callback — ``cell_status``, ``cell_console`` (as the kernel writes),
``cell_output``, ``cell_error``, ``cascade_progress`` — whoever started the
run (REST or WebSocket); the transport decides who receives them. A run's
last frames go out after its lock is released: a cell reported done is done,
and running the next one at once is never refused.

A cell's provenance hash (``staleness.provenance``: source, environment,
upstream provenance hashes, worker) keys its result. ``normal`` runs the
target's stale or missing upstream cells first, in topological order, and
takes any cell whose hash already has a result (its artifacts still on the
Flight server) from the cache; ``rerun`` does the same but always runs the
target; ``force`` runs the target alone against the upstream results that
exist.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from flight import QuiverClient
from foundation import Conflict, InvalidArgument, NotFound
from notebooks.analysis import mount_inputs, provenance
from notebooks.engines import Engines
from notebooks.execution import FlightConfig, KernelProcess
from notebooks.frames import status_payload
from notebooks.model import CellResult, CellState, error_output, markdown_output
from notebooks.reuse import cached_result, cell_inputs, upstream_needs
from notebooks.session import Session
from notebooks.workers import Workers

log = logging.getLogger(__name__)

MODES = ("normal", "rerun", "force")
Emit = Callable[[str, dict[str, Any]], None]
PromptHook = Callable[["Runner", CellState, str, dict[str, str], bool], CellResult]
"""Runs a prompt cell (``notebooks.ai``): runner, cell, provenance, inputs, use_cache."""


def _no_emit(kind: str, payload: dict[str, Any]) -> None:
    return None


class Cancelled(Exception):
    pass


class Runner:
    """Executes the cells of one session. Thread-safe; one run at a time."""

    def __init__(
        self,
        session: Session,
        flight: FlightConfig,
        client: QuiverClient,
        *,
        default_timeout: float | None = None,
        emit: Emit = _no_emit,
        python: str | None = None,
        workers: Workers | None = None,
        prompts: PromptHook | None = None,
    ) -> None:
        self.session = session
        self.client = client
        self.prompts = prompts
        self.emit = emit
        self._run_lock = threading.Lock()
        self.current: str | None = None
        self._cancel = threading.Event()
        self._frames = threading.Lock()
        self._held: list[tuple[str, dict[str, Any]]] = []
        self.engines = Engines(
            session,
            flight,
            client,
            cancelled=self._cancel,
            send=self._send,
            default_timeout=default_timeout,
            python=python,
            workers=workers,
        )

    # -- the kernel (notebooks.engines) ------------------------------------------------------

    @property
    def python(self) -> str:
        """The interpreter the session's kernel runs on."""
        return self.engines.python

    @property
    def kernel_alive(self) -> bool:
        """Is a kernel process running for this session (started, not yet stopped)?"""
        return self.engines.kernel_alive

    def start_kernel(self) -> KernelProcess:
        """The live kernel, started if needed (started early so a first run finds it warm)."""
        return self.engines.start_kernel()

    def reset_kernel(self) -> None:
        """The environment changed: the kernel restarts on the notebook's venv."""
        self.engines.reset_kernel()

    def close(self) -> None:
        self._cancel.set()
        self.engines.close()

    # -- public ------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._run_lock.locked()

    def input_specs(self, cell_id: str) -> dict[str, dict[str, Any]]:
        """How a kernel would load each input of ``cell_id`` now (from the last results of
        its upstream cells): name -> input spec (``outputs.input_spec``)."""
        return cell_inputs(self.session, self._cell(cell_id))[0]

    def plan(self, cell_id: str) -> list[str]:
        """Cells a ``normal`` run of ``cell_id`` would execute, in order, the target last."""
        cell = self._cell(cell_id)
        return [*upstream_needs(self.session, self.engines, cell.id), cell.id]

    def execute(self, cell_id: str, mode: str = "normal", plan_id: str | None = None) -> dict:
        """Run one cell (with its cascade); the API.md §5 result. Blocks until done."""
        if mode not in MODES:
            raise InvalidArgument(f"unknown run mode '{mode}'")
        self._cell(cell_id)
        with self._exclusive():
            return self._execute(cell_id, mode, plan_id)

    def run_all(self, *, rerun: bool = False, continue_on_error: bool = True) -> list[dict]:
        """Every cell in topological order (cache on unless ``rerun``)."""
        with self._exclusive():
            d = self.session.derived
            order = d.dag.topological_order or tuple(c.id for c in d.cells)
            failed: set[str] = set()
            out = []
            self.session.queued = frozenset(order)
            for cid in order:
                cell = self.session.derived.cell(cid)
                if cell is None or cell.entry.language == "markdown":
                    continue
                ups = set(self.session.derived.dag.upstream.get(cid, ()))
                if ups & failed:
                    failed.add(cid)
                    self._hold("cell_status", status_payload(self.session, cid))
                    continue
                result = self._run_cell(cell, use_cache=not rerun)
                out.append(result.response())
                if result.status != "ready":
                    failed.add(cid)
                    if result.status == "cancelled" or not continue_on_error:
                        break
            return out

    def cancel(self, cell_id: str | None = None) -> bool:
        """Stop the running cell (and the rest of its cascade). False when nothing runs.

        A Python cell gets a KeyboardInterrupt in the kernel; a SQL cell's build
        is cancelled on the Flight server (its DuckDB query stops at once) and
        the kernel is left alone.
        """
        if not self.busy or (cell_id is not None and self.current not in (cell_id, None)):
            return False
        self._cancel.set()
        current = self.current
        cell = self.session.derived.cell(current) if current is not None else None
        if cell is not None and cell.entry.language == "sql":
            self.engines.cancel_sql()
        elif current is not None:
            self.engines.interrupt(lambda: self.busy and self._cancel.is_set())
        return True

    # -- internals ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _exclusive(self) -> Any:
        session = self.session
        session.ensure_env_idle()
        if not self._run_lock.acquire(blocking=False):
            raise Conflict(f"Notebook is already executing cell {self.current}")
        session.executing = True
        self._cancel.clear()
        try:
            yield
        finally:
            self.current = None
            session.queued = frozenset()
            session.executing = False
            session.set_running(None)
            # "Done" means done: the run's last frames (its cell's outcome) go out
            # only once the lock is free, so a client that runs the next cell on
            # seeing them is never told the notebook is still executing. Under
            # ``_frames`` a run starting meanwhile cannot send its first frame
            # before them.
            with self._frames:
                self._run_lock.release()
                self._flush()

    # -- frames --------------------------------------------------------------------------------
    # A run reports progress (``running``, console, cascade steps) at once, and each
    # cell's outcome (output or error, then statuses) just before the run's next
    # frame, or after the run lock is released when it was the run's last.

    def _send(self, kind: str, payload: dict[str, Any]) -> None:
        with self._frames:
            self._flush()
            self.emit(kind, payload)

    def _hold(self, kind: str, payload: dict[str, Any]) -> None:
        with self._frames:
            self._held.append((kind, payload))

    def _flush(self) -> None:
        held, self._held = self._held, []
        for kind, payload in held:
            self.emit(kind, payload)

    def _cell(self, cell_id: str) -> CellState:
        cell = self.session.derived.cell(cell_id)
        if cell is None:
            raise NotFound("Cell not found")
        return cell

    def _execute(self, cell_id: str, mode: str, plan_id: str | None) -> dict:
        target = self._cell(cell_id)
        steps = [] if mode == "force" else upstream_needs(self.session, self.engines, cell_id)
        plan_id = plan_id or uuid.uuid4().hex[:8]
        total = len(steps) + 1
        self.session.queued = frozenset([*steps, cell_id])
        for done, cid in enumerate(steps):
            if steps:
                self._send(
                    "cascade_progress",
                    {"plan_id": plan_id, "current_cell_id": cid, "completed": done, "total": total},
                )
            cell = self.session.derived.cell(cid)
            if cell is None:
                continue
            result = self._run_cell(cell, use_cache=True)
            if result.status != "ready":
                for rest in [*steps[done + 1 :], cell_id]:
                    self._hold("cell_status", status_payload(self.session, rest))
                cancelled = result.status == "cancelled"
                what = "was cancelled" if cancelled else f"failed: {result.error}"
                failed = CellResult(cell_id, "", "cancelled" if cancelled else "error")
                failed.error = f"upstream cell {cid} {what}"
                failed.displays = [error_output(failed.error)]
                return failed.response()
        if steps:
            self._send(
                "cascade_progress",
                {"plan_id": plan_id, "current_cell_id": cell_id, "completed": len(steps),
                 "total": total},
            )  # fmt: skip
        target = self._cell(cell_id)
        return self._run_cell(target, use_cache=mode == "normal").response()

    # -- one cell ----------------------------------------------------------------------------

    def _run_cell(self, cell: CellState, *, use_cache: bool) -> CellResult:
        try:
            return self._run_one(cell, use_cache=use_cache)
        finally:  # its source may be edited again
            self.session.queued = self.session.queued - {cell.id}

    def _run_one(self, cell: CellState, *, use_cache: bool) -> CellResult:
        session = self.session
        if self._cancel.is_set():
            result = CellResult(cell.id, "", "cancelled", error="Execution cancelled")
            self._hold("cell_status", status_payload(session, cell.id))
            return result
        if cell.entry.language == "markdown":
            result = CellResult(cell.id, cell.source_hash, "ready", execution_method="rendered")
            result.displays = [markdown_output(cell.source)]
            return result
        specs, consumed = cell_inputs(session, cell)
        mounted = session.mount_fingerprints(cell, fresh=True)
        consumed.update(mount_inputs(mounted))
        use_cache = use_cache and "rw" not in mounted.values()  # rw mounts: never cached
        prov = provenance(
            cell.source_hash,
            session.env.hash,
            consumed,
            session.cell_worker(cell),
            session.cell_env(cell),
        )
        source_hash = cell.source_hash
        before = session.status_view()
        self.current = cell.id
        if use_cache and cell.entry.language != "prompt":  # prompts cache by model too
            started = time.perf_counter()
            cached = cached_result(session, self.engines, self.client, cell.id, prov)
            if cached is not None:
                cached.duration_ms = round((time.perf_counter() - started) * 1000, 3)
                session.record_result(cached, source_hash)
                self._announce(cached, before)
                return cached
        session.set_running(cell.id)
        self._send("cell_status", {"cell_id": cell.id, "status": "running"})
        started = time.perf_counter()
        if cell.entry.language == "sql":
            result = self.engines.run_sql(cell, prov, specs, consumed)
        elif cell.entry.language == "python":
            result = self.engines.run_python(cell, prov, specs, consumed)
        elif cell.entry.language == "prompt" and self.prompts is not None:
            result = self.prompts(self, cell, prov, consumed, use_cache)
        else:
            result = CellResult(cell.id, prov, "error")
            result.error = f"{cell.entry.language} cells cannot run here (no AI model configured)"
        result.duration_ms = round((time.perf_counter() - started) * 1000, 3)
        if result.status == "cancelled":
            session.set_running(None)
            self._hold("cell_status", status_payload(session, cell.id) | {"status": "idle"})
            return result
        if result.status == "error" and not result.displays:
            result.displays = [error_output(result.error or "error", result.traceback)]
        session.set_running(None)
        session.record_result(result, source_hash)
        if result.status == "ready":
            session.result_store.prune()
        self._announce(result, before)
        return result

    def _announce(self, result: CellResult, before: Mapping[str, tuple[Any, ...]]) -> None:
        session, cid = self.session, result.cell_id
        if result.status == "ready":
            payload = result.response()
            payload["duration_ms"] = int(result.duration_ms)
            payload.pop("status", None)
            self._hold("cell_output", payload)
        else:
            error: dict[str, Any] = {"cell_id": cid, "error": result.error}
            if result.traceback:
                error["traceback"] = result.traceback
            self._hold("cell_error", error)
        self._hold("cell_status", status_payload(session, cid))
        after = session.status_view()
        for other, view in after.items():
            if other != cid and before.get(other) != view:
                self._hold("cell_status", status_payload(session, other))
