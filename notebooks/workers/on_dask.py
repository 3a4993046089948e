"""Running a cell as a task on a Dask ``distributed`` cluster.

The task runs the very kernel code the local kernel subprocess runs
(``execution/kernel/cellrun.py``, which imports nothing from Quiver): its source
travels with the task, so a Dask worker needs the cell's packages and pyarrow,
not Quiver. Upstream tables travel by artifact URI (the task reads them from
the Flight service with DoGet), small values by value; table outputs are put
to the Flight service from the Dask worker. The server only sees the answer,
never the data.

While the task runs its console writes go to a Dask ``Queue`` that the server
drains into ``cell_console`` frames. Cancel and time-out cancel the future and
set a Dask ``Event`` the task watches: the cell's thread then gets a
``KeyboardInterrupt`` (between two Python instructions; a C call that never
returns is beyond reach). Before submitting, the workers are asked whether the
packages the cell imports are there, so a missing one is named up front.
"""

from __future__ import annotations

import ast
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from notebooks.execution import KernelDied

KERNEL_SOURCE_PATH = Path(__file__).resolve().parents[1] / "execution" / "kernel" / "cellrun.py"
CONNECT_TIMEOUT_S = 5.0
CONSOLE_EVERY_S = 0.05
"""How often console output is collected while a task runs."""

# Built from source so that cloudpickle ships them by value: the Dask workers need
# no Quiver. Names start with quiver_ so a worker's logs say whose they are.
_TASK_SOURCE = """
def quiver_cell_task(kernel_source, request, queue_name, cancel_name):
    import ctypes, sys, threading, types
    from distributed import Event, Queue

    kernel_module = types.ModuleType("quiver_kernel")
    exec(compile(kernel_source, "quiver_kernel.py", "exec"), kernel_module.__dict__)
    queue = Queue(queue_name)
    cancel = Event(cancel_name)

    class Channel:
        def send(self, message):
            queue.put(message)

    kernel = kernel_module.Kernel(Channel())
    me = threading.get_ident()
    done = threading.Event()

    def watch():
        while not done.is_set():
            if cancel.wait(0.2):
                if kernel.running and not done.is_set():
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(
                        ctypes.c_ulong(me), ctypes.py_object(KeyboardInterrupt)
                    )
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        return kernel.execute(request)
    finally:
        done.set()


def quiver_missing_modules(names):
    import importlib.util
    missing = []
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing
"""
_TASKS: dict[str, Any] = {"__name__": "quiver_remote_tasks"}
exec(compile(_TASK_SOURCE, "quiver_remote_tasks", "exec"), _TASKS)


def needed_modules(source: str, inputs: dict[str, Any]) -> list[str]:
    """Top-level packages the cell imports (the standard library left out), plus pyarrow
    when tables travel."""
    names: set[str] = set()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        tree = ast.Module(body=[], type_ignores=[])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    if any(spec.get("kind") == "arrow" for spec in inputs.values()):
        names.add("pyarrow")
    return sorted(n for n in names if n not in sys.stdlib_module_names)


class DaskBackend:
    """One Dask scheduler: a client made on first use and kept."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client: Any = None
        self._lock = threading.Lock()
        self._kernel_source = KERNEL_SOURCE_PATH.read_text()

    def client(self) -> Any:
        with self._lock:
            client = self._client
            if client is not None and client.status == "running":
                return client
            if client is not None:
                client.close()
            from distributed import Client

            self._client = Client(self.url, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
            return self._client

    def missing(self, modules: list[str]) -> dict[str, list[str]]:
        """Per Dask worker address, which of ``modules`` it cannot import."""
        if not modules:
            return {}
        client = self.client()
        answers = client.run(_TASKS["quiver_missing_modules"], modules)
        return {addr: names for addr, names in answers.items() if names}

    def execute(
        self,
        request: dict[str, Any],
        *,
        on_console: Callable[[str, str], None],
        timeout: float | None,
        cancel: threading.Event,
    ) -> dict[str, Any]:
        """Run the cell; the kernel's answer. Raises :class:`KernelDied` on time-out."""
        from distributed import Event, Queue

        client = self.client()
        run = uuid.uuid4().hex[:12]
        queue = Queue(f"quiver-console-{run}", client=client)
        stop = Event(f"quiver-cancel-{run}", client=client)
        request = {**request, "id": run}
        future = client.submit(
            _TASKS["quiver_cell_task"], self._kernel_source, request, queue.name, stop.name,
            key=f"quiver-cell-{request.get('cell_id', '')}-{run}", pure=False,
        )  # fmt: skip
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                try:
                    answer = future.result(timeout=CONSOLE_EVERY_S)
                    break
                except TimeoutError:
                    pass
                self._drain(queue, on_console)
                if cancel.is_set():
                    self._stop(future, stop)
                    return {"status": "cancelled", "variables": {}, "display": None}
                if deadline is not None and time.monotonic() > deadline:
                    self._stop(future, stop)
                    raise KernelDied(f"the cell ran past its {timeout:g} s limit", timed_out=True)
            self._drain(queue, on_console)
            return answer
        finally:
            future.release()

    @staticmethod
    def _drain(queue: Any, on_console: Callable[[str, str], None]) -> None:
        try:
            frames = queue.get(batch=True)  # all there is, without waiting
        except Exception:  # the scheduler went away: the future says so next
            return
        for frame in frames:
            if isinstance(frame, dict) and frame.get("op") == "console":
                on_console(str(frame.get("stream")), str(frame.get("text", "")))

    @staticmethod
    def _stop(future: Any, stop: Any) -> None:
        stop.set()
        future.cancel()

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
