"""The other side of the ``flight`` transport: this node runs cells another node sends.

Three Flight actions, registered from here through the Flight layer's action
hook (the Flight layer knows nothing of notebooks): ``cell-run`` starts a cell
in a kernel subprocess of this node and answers a run id at once, ``cell-poll``
answers the console written since an offset and, once finished, the kernel's
answer (it waits up to ``wait_s`` for news), ``cell-cancel`` interrupts it.
Inputs are read by artifact URI from the node that holds them (the input's
``location``); outputs are put to this node's Flight service and stay here,
their answer naming this node as their ``location``.

A node runs cells only once :func:`enable_remote_cells` gave its server the
service (``quiver serve`` and ``quiver flight`` do); otherwise the actions say so.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from flight import Core, action
from foundation import InvalidArgument, NotFound, Unavailable
from notebooks.execution import KernelDied, KernelProcess

KEEP_FINISHED_S = 300.0
MAX_WAIT_S = 5.0


class _Run:
    def __init__(self, run_id: str, cell_id: str) -> None:
        self.id = run_id
        self.cell_id = cell_id
        self.console: list[dict[str, str]] = []
        self.answer: dict[str, Any] | None = None
        self.finished_at: float | None = None
        self.kernel: KernelProcess | None = None
        self.changed = threading.Condition()


class CellService:
    """Runs cells for other nodes in kernels of this one. Thread-safe."""

    def __init__(
        self, location: str, token: str | None, workdir: Path, python: str = sys.executable
    ) -> None:
        self.location = location
        self.token = token
        self.workdir = workdir
        self.python = python
        self._runs: dict[str, _Run] = {}
        self._idle: list[KernelProcess] = []
        self._lock = threading.Lock()
        self._closed = False

    def start(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("source"), str):
            raise InvalidArgument("cell-run needs a JSON object with the cell's source")
        run = _Run(uuid.uuid4().hex, str(body.get("cell_id", "")))
        request = {
            **body,
            "flight": {"location": self.location, "token": self.token},
        }
        timeout = body.get("timeout")
        with self._lock:
            if self._closed:
                raise Unavailable("this node is shutting down")
            self._forget_old()
            self._runs[run.id] = run
        thread = threading.Thread(
            target=self._run, args=(run, request, timeout), name="quiver-remote-cell", daemon=True
        )
        thread.start()
        return {"run_id": run.id}

    def _run(self, run: _Run, request: dict[str, Any], timeout: Any) -> None:
        def console(stream: str, text: str) -> None:
            with run.changed:
                run.console.append({"stream": stream, "text": text})
                run.changed.notify_all()

        try:
            kernel = self._kernel()
            run.kernel = kernel
            answer = kernel.execute(
                request,
                on_console=console,
                timeout=float(timeout) if isinstance(timeout, int | float) else None,
            )
            self._give_back(kernel)
        except KernelDied as exc:
            answer = {"status": "timeout" if exc.timed_out else "died", "reason": exc.reason}
        except Exception as exc:  # could not start a kernel here
            answer = {"status": "died", "reason": f"{type(exc).__name__}: {exc}"}
        for var in (answer.get("variables") or {}).values():
            if var.get("kind") == "arrow":
                var["location"] = self.location  # the table stays on this node
        with run.changed:
            run.answer = answer
            run.finished_at = time.monotonic()
            run.changed.notify_all()

    def poll(self, body: Any) -> dict[str, Any]:
        run = self._get(body)
        offset = int(body.get("offset") or 0)
        wait = min(float(body.get("wait_s") or 0), MAX_WAIT_S)
        with run.changed:
            run.changed.wait_for(
                lambda: len(run.console) > offset or run.answer is not None, timeout=wait
            )
            frames = run.console[offset:]
            return {
                "console": frames,
                "offset": offset + len(frames),
                "answer": run.answer,
            }

    def cancel(self, body: Any) -> dict[str, Any]:
        run = self._get(body)
        kernel = run.kernel
        if run.answer is None and kernel is not None:
            kernel.interrupt()
            return {"cancelled": True}
        return {"cancelled": False}

    def _get(self, body: Any) -> _Run:
        run_id = body.get("run_id") if isinstance(body, dict) else None
        with self._lock:
            run = self._runs.get(str(run_id))
        if run is None:
            raise NotFound(f"no cell run {run_id!r} on this node")
        return run

    def _kernel(self) -> KernelProcess:
        with self._lock:
            while self._idle:
                kernel = self._idle.pop()
                if kernel.alive:
                    return kernel
        self.workdir.mkdir(parents=True, exist_ok=True)
        return KernelProcess(self.python, cwd=self.workdir)

    def _give_back(self, kernel: KernelProcess) -> None:
        with self._lock:
            if not self._closed and kernel.alive:
                self._idle.append(kernel)
                return
        kernel.kill()

    def _forget_old(self) -> None:
        now = time.monotonic()
        for run_id, run in list(self._runs.items()):
            if run.finished_at is not None and now - run.finished_at > KEEP_FINISHED_S:
                del self._runs[run_id]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            kernels, self._idle = self._idle, []
            running = [r.kernel for r in self._runs.values() if r.answer is None and r.kernel]
        for kernel in itertools.chain(kernels, running):
            kernel.kill()


_SERVICES: dict[int, CellService] = {}


def enable_remote_cells(server: Any, token: str | None) -> CellService:
    """Let ``server`` (a started ``QuiverFlightServer``) run cells for other nodes."""
    core = server.core
    service = CellService(server.location, token, core.settings.data_dir / "remote-cells")
    _SERVICES[id(core)] = service
    return service


def disable_remote_cells(server: Any) -> None:
    service = _SERVICES.pop(id(server.core), None)
    if service is not None:
        service.close()


def _service(core: Core) -> CellService:
    service = _SERVICES.get(id(core))
    if service is None:
        raise Unavailable("this Quiver node does not run notebook cells for other nodes")
    return service


@action("cell-run", "Run a notebook cell sent by another node; answers its run_id at once.")
def _cell_run(core: Core, body: Any) -> Any:
    return _service(core).start(body)


@action("cell-poll", "A remote cell run's console since offset, and its answer once done.")
def _cell_poll(core: Core, body: Any) -> Any:
    return _service(core).poll(body)


@action("cell-cancel", "Interrupt a remote cell run.")
def _cell_cancel(core: Core, body: Any) -> Any:
    return _service(core).cancel(body)
