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
from typing import Any, cast

from flight import QuiverClient
from foundation import Conflict, InvalidArgument, NotFound, QuiverError
from notebooks.analysis import mount_inputs, provenance
from notebooks.env import kernel_python
from notebooks.exchange import HELPER as MOUNT_HELPER
from notebooks.exchange import cell_mounts, kernel_spec
from notebooks.execution import (
    FlightConfig,
    KernelDied,
    KernelProcess,
    SqlBuild,
    SqlCellError,
    run_sql,
)
from notebooks.frames import status_payload
from notebooks.model import (
    CellResult,
    clip,
    display_output,
    error_output,
    input_spec,
    markdown_output,
    pickle_size,
)
from notebooks.session import CellState, Session
from notebooks.workers import Workers

log = logging.getLogger(__name__)

MODES = ("normal", "rerun", "force")
Emit = Callable[[str, dict[str, Any]], None]
PromptHook = Callable[["Runner", CellState, str, dict[str, str], bool], CellResult]
"""Runs a prompt cell (``notebooks.ai``): runner, cell, provenance, inputs, use_cache."""
CANCEL_GRACE_S = 5.0


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
        self.workers = workers
        self.flight = flight
        self.client = client
        self.prompts = prompts
        self.default_timeout = default_timeout
        self.emit = emit
        self.python = python or kernel_python(session.nb.path)
        self._run_lock = threading.Lock()
        self._kernel_lock = threading.Lock()
        self._kernel: KernelProcess | None = None
        self._kernel_id = ""
        self._kernel_used = False
        self.current: str | None = None
        self._cancel = threading.Event()
        self._sql_lock = threading.Lock()
        self._sql: SqlBuild | None = None
        self._closed = False
        self._frames = threading.Lock()
        self._held: list[tuple[str, dict[str, Any]]] = []

    # -- kernel ------------------------------------------------------------------------------

    @property
    def kernel_alive(self) -> bool:
        """Is a kernel process running for this session (started, not yet stopped)?"""
        kernel = self._kernel
        return kernel is not None and kernel.alive

    def start_kernel(self) -> KernelProcess:
        """The live kernel, started if needed (started early so a first run finds it warm)."""
        with self._kernel_lock:
            if self._closed:
                raise Conflict("The notebook session is closed")
            if self._kernel is None or not self._kernel.alive:
                env = {str(k): str(v) for k, v in (self.session.nb.get("env") or {}).items()}
                self._kernel = KernelProcess(self.python, cwd=self.session.nb.path, env=env)
                self._kernel_id = uuid.uuid4().hex[:12]
                self._kernel_used = False
            return self._kernel

    def reset_kernel(self) -> None:
        """The environment changed: the kernel restarts on the notebook's venv. A warm
        kernel's successor starts now, so the next run finds it (nearly) ready."""
        self.python = kernel_python(self.session.nb.path)
        was_warm = self.kernel_alive
        self._drop_kernel()
        if was_warm:
            with contextlib.suppress(QuiverError, OSError):  # closed meanwhile: the run says
                self.start_kernel()

    def _drop_kernel(self) -> None:
        with self._kernel_lock:
            kernel, self._kernel = self._kernel, None
        if kernel is not None:
            kernel.kill()

    def close(self) -> None:
        with self._kernel_lock:
            self._closed = True
            kernel, self._kernel = self._kernel, None
        self._cancel.set()
        self._cancel_sql()
        if kernel is not None:
            kernel.interrupt()
            kernel.shutdown(timeout=2)

    # -- public ------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._run_lock.locked()

    def input_specs(self, cell_id: str) -> dict[str, dict[str, Any]]:
        """How a kernel would load each input of ``cell_id`` now (from the last results of
        its upstream cells): name -> input spec (``outputs.input_spec``)."""
        return self._inputs(self._cell(cell_id))[0]

    def plan(self, cell_id: str) -> list[str]:
        """Cells a ``normal`` run of ``cell_id`` would execute, in order, the target last."""
        cell = self._cell(cell_id)
        return [*self._upstream_needs(cell.id), cell.id]

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
            self._cancel_sql()
            return True
        kernel = self._kernel
        if kernel is not None and current is not None:
            kernel.interrupt()
            watched = self._kernel_id
            timer = threading.Timer(CANCEL_GRACE_S, self._kill_if_stuck, args=(watched,))
            timer.daemon = True
            timer.start()
        return True

    def _cancel_sql(self) -> None:
        with self._sql_lock:
            sql = self._sql
        if sql is not None:
            sql.cancel()

    def _kill_if_stuck(self, kernel_id: str) -> None:
        # A cell blocked where SIGINT cannot reach it: restart the kernel.
        if self.busy and self._cancel.is_set() and self._kernel_id == kernel_id:
            kernel = self._kernel
            if kernel is not None:
                kernel.kill()

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

    def _upstream_needs(self, cell_id: str) -> list[str]:
        """Ancestors of ``cell_id`` that must run (not ready, no result, or held by a dead
        kernel), in topological order."""
        d = self.session.derived
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
                or not self._memory_alive(result)
            ):
                needs.append(cid)
        return needs

    def _memory_alive(self, result: CellResult) -> bool:
        if not any(v.get("kind") == "memory" for v in result.variables.values()):
            return True
        kernel = self._kernel
        return kernel is not None and kernel.alive and result.kernel == self._kernel_id

    def _execute(self, cell_id: str, mode: str, plan_id: str | None) -> dict:
        target = self._cell(cell_id)
        steps = [] if mode == "force" else self._upstream_needs(cell_id)
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
        specs, consumed = self._inputs(cell)
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
            cached = self._cached(cell.id, prov)
            if cached is not None:
                cached.duration_ms = round((time.perf_counter() - started) * 1000, 3)
                session.record_result(cached, source_hash)
                self._announce(cached, before)
                return cached
        session.set_running(cell.id)
        self._send("cell_status", {"cell_id": cell.id, "status": "running"})
        started = time.perf_counter()
        if cell.entry.language == "sql":
            result = self._run_sql(cell, prov, specs, consumed)
        elif cell.entry.language == "python":
            result = self._run_python(cell, prov, specs, consumed)
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

    def _cached(self, cell_id: str, prov: str) -> CellResult | None:
        result = self.session.results.get(cell_id)
        if result is None or result.provenance_hash != prov or result.status != "ready":
            result = self.session.result_store.get(prov)
        if result is None or result.status != "ready" or result.cell_id != cell_id:
            return None
        if not self._memory_alive(result):
            return None
        for uri in result.artifact_uris.values():
            try:
                if self.client.status(uri).get("state") not in ("ready", "superseded"):
                    return None
            except QuiverError:
                return None
        return CellResult(**{**result.__dict__, "execution_method": "cached", "cache_hit": True})

    def _inputs(self, cell: CellState) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """Input specs by variable, and upstream cell id -> provenance hash of the result used.

        The result used is each upstream cell's last finished run: after a
        cascade that is its current one; under ``force`` it may be older, and
        the target's provenance then says so (it stays stale).
        """
        d = self.session.derived
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

    def _run_python(
        self, cell: CellState, prov: str, specs: dict[str, Any], consumed: dict[str, str]
    ) -> CellResult:
        session = self.session
        result = CellResult(cell.id, prov, "ready", inputs=consumed)
        out: list[str] = []
        err: list[str] = []
        cid = cell.id

        def on_console(stream: str, text: str) -> None:
            (out if stream == "stdout" else err).append(text)
            self._send("cell_console", {"cell_id": cid, "stream": stream, "text": text})

        upstream_uris = [s["uri"] for s in specs.values() if s.get("kind") == "arrow"]
        request = {
            "cell_id": cid,
            "source": cell.source,
            "inputs": specs,
            "exports": list(cell.analysis.produces),
            "env": session.cell_env(cell),
            "token": prov,
            "flight": {"location": self.flight.location, "token": self.flight.token},
            "put_metadata": {
                "notebook_id": session.nb.notebook_id,
                "cell_id": cid,
                "cell_provenance": prov,
                "inputs": upstream_uris,
            },
        }
        mounts = cell_mounts(session.nb.get("mounts") or [], cell.entry.mounts)
        if mounts:
            request["mounts"] = [kernel_spec(m) for m in mounts]
            request["mount_helper"] = MOUNT_HELPER
        timeout = session.cell_timeout(cell) or self.default_timeout
        worker = session.cell_worker(cell)
        remote = self.workers.remote(session.nb.get("workers"), worker) if self.workers else None
        try:
            if remote is not None:  # another engine runs it (notebooks.workers)
                result.execution_method = "executor"
                result.remote = {"remote_worker": remote.name, "remote_transport": remote.transport}
                answer = remote.execute(
                    request, on_console=on_console, timeout=timeout, cancel=self._cancel
                )
            else:
                kernel = self.start_kernel()
                result.execution_method = "warm" if self._kernel_used else "cold"
                self._kernel_used = True
                answer = kernel.execute(request, on_console=on_console, timeout=timeout)
        except KernelDied as exc:
            if remote is None:
                self._drop_kernel()
            result.stdout, result.stderr = clip("".join(out)), clip("".join(err))
            if self._cancel.is_set() and not exc.timed_out:
                result.status, result.error = "cancelled", "Execution cancelled"
                return result
            result.status = "error"
            result.error = (
                f"TimeoutError: {exc.reason}" if exc.timed_out else f"KernelDied: {exc.reason}"
            )
            return result
        result.stdout, result.stderr = clip("".join(out)), clip("".join(err))
        result.kernel = self._kernel_id if remote is None else None
        if answer.get("status") == "cancelled":
            result.status, result.error = "cancelled", "Execution cancelled"
            return result
        if answer.get("status") != "ok":
            e = answer.get("error") or {}
            result.status = "error"
            result.error = f"{e.get('ename', 'Error')}: {e.get('evalue', '')}"
            result.traceback = e.get("traceback")
            return result
        variables = answer.get("variables") or {}
        for var in variables.values():
            if var.get("kind") == "pickle":
                var["bytes"] = pickle_size(var)
        result.variables = variables
        shown = display_output(answer.get("display"))
        result.displays = [shown] if shown else []
        return result

    def _run_sql(
        self, cell: CellState, prov: str, specs: dict[str, Any], consumed: dict[str, str]
    ) -> CellResult:
        result = CellResult(cell.id, prov, "ready", inputs=consumed, execution_method="executor")
        tables: dict[str, str | None] = {
            name: spec.get("uri") if spec.get("kind") == "arrow" else None
            for name, spec in specs.items()
        }
        variable = cell.analysis.defines[0] if cell.analysis.defines else f"sql_{cell.id}"
        sql = SqlBuild(self.client)
        with self._sql_lock:
            self._sql = sql
        if self._cancel.is_set():  # a cancel that came before self._sql was set
            sql.cancel()
        try:
            client = cast(QuiverClient, sql)  # run_sql's calls go through the stand-in
            result.variables, display = run_sql(client, cell.source, tables, variable)
        except SqlCellError as exc:
            if sql.cancelled:
                result.status, result.error = "cancelled", "Execution cancelled"
                return result
            result.status, result.error = "error", f"SQL error: {exc}"
            return result
        finally:
            with self._sql_lock:
                self._sql = None
        shown = display_output(display)
        result.displays = [shown] if shown else []
        return result
