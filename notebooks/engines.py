"""How a cell's code runs: the session's kernel, remote workers, and SQL builds.

:class:`Engines` owns what :class:`~notebooks.runner.Runner` hands a cell to:
the session's warm kernel process (started early, restarted when the
environment changes, killed when a cancel cannot reach it), a remote worker
when the cell names one (``notebooks.workers``), and the SQL build of a SQL
cell on the Flight server. It runs one Python or SQL cell and returns its
:class:`~notebooks.model.CellResult`; *which* cells run, in what order and from
which cache is the runner's business.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable
from typing import Any, cast

from flight import QuiverClient
from foundation import Conflict, QuiverError
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
from notebooks.model import CellResult, CellState, clip, display_output, pickle_size
from notebooks.session import Session
from notebooks.workers import Workers

Emit = Callable[[str, dict[str, Any]], None]
CANCEL_GRACE_S = 5.0


class Engines:
    """The kernel, remote workers and SQL builds of one session. Thread-safe.

    ``cancelled`` is the runner's cancel flag (set while a cancel is under
    way); ``send`` reports console frames as the kernel writes.
    """

    def __init__(
        self,
        session: Session,
        flight: FlightConfig,
        client: QuiverClient,
        *,
        cancelled: threading.Event,
        send: Emit,
        default_timeout: float | None = None,
        python: str | None = None,
        workers: Workers | None = None,
    ) -> None:
        self.session = session
        self.flight = flight
        self.client = client
        self.workers = workers
        self.default_timeout = default_timeout
        self.python = python or kernel_python(session.nb.path)
        self.cancelled = cancelled
        self._send = send
        self._kernel_lock = threading.Lock()
        self._kernel: KernelProcess | None = None
        self.kernel_id = ""
        self._kernel_used = False
        self._sql_lock = threading.Lock()
        self._sql: SqlBuild | None = None
        self._closed = False

    # -- the kernel --------------------------------------------------------------------------

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
                self.kernel_id = uuid.uuid4().hex[:12]
                self._kernel_used = False
            return self._kernel

    def reset_kernel(self) -> None:
        """The environment changed: the kernel restarts on the notebook's venv. A warm
        kernel's successor starts now, so the next run finds it (nearly) ready."""
        self.python = kernel_python(self.session.nb.path)
        was_warm = self.kernel_alive
        self.drop_kernel()
        if was_warm:
            with contextlib.suppress(QuiverError, OSError):  # closed meanwhile: the run says
                self.start_kernel()

    def drop_kernel(self) -> None:
        with self._kernel_lock:
            kernel, self._kernel = self._kernel, None
        if kernel is not None:
            kernel.kill()

    def close(self) -> None:
        with self._kernel_lock:
            self._closed = True
            kernel, self._kernel = self._kernel, None
        self.cancel_sql()
        if kernel is not None:
            kernel.interrupt()
            kernel.shutdown(timeout=2)

    # -- cancel ------------------------------------------------------------------------------

    def interrupt(self, still_cancelling: Callable[[], bool]) -> None:
        """KeyboardInterrupt in the kernel; past :data:`CANCEL_GRACE_S` with the cancel
        still under way (``still_cancelling``), the kernel is killed instead."""
        kernel = self._kernel
        if kernel is None:
            return
        kernel.interrupt()
        watched = self.kernel_id

        def kill_if_stuck() -> None:
            # A cell blocked where SIGINT cannot reach it: restart the kernel.
            if still_cancelling() and self.kernel_id == watched:
                stuck = self._kernel
                if stuck is not None:
                    stuck.kill()

        timer = threading.Timer(CANCEL_GRACE_S, kill_if_stuck)
        timer.daemon = True
        timer.start()

    def cancel_sql(self) -> None:
        """Cancel the SQL cell's build on the Flight server (its DuckDB query stops)."""
        with self._sql_lock:
            sql = self._sql
        if sql is not None:
            sql.cancel()

    # -- one cell ----------------------------------------------------------------------------

    def run_python(
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
                    request, on_console=on_console, timeout=timeout, cancel=self.cancelled
                )
            else:
                kernel = self.start_kernel()
                result.execution_method = "warm" if self._kernel_used else "cold"
                self._kernel_used = True
                answer = kernel.execute(request, on_console=on_console, timeout=timeout)
        except KernelDied as exc:
            if remote is None:
                self.drop_kernel()
            result.stdout, result.stderr = clip("".join(out)), clip("".join(err))
            if self.cancelled.is_set() and not exc.timed_out:
                result.status, result.error = "cancelled", "Execution cancelled"
                return result
            result.status = "error"
            result.error = (
                f"TimeoutError: {exc.reason}" if exc.timed_out else f"KernelDied: {exc.reason}"
            )
            return result
        result.stdout, result.stderr = clip("".join(out)), clip("".join(err))
        result.kernel = self.kernel_id if remote is None else None
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

    def run_sql(
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
        if self.cancelled.is_set():  # a cancel that came before self._sql was set
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
