"""The workers a server knows: the catalog a notebook sees, and running a cell on one.

:class:`Workers` is made once per server. It holds the server's configured
workers, the health book (``health.py``) and one backend per engine address.
``catalog`` answers ``GET …/workers`` (API.md §8): the built-in ``local``
worker first, then the server's workers, then the notebook's ``[[workers]]``,
then names cells or the notebook refer to that nothing defines. ``remote``
answers how a cell assigned to a worker runs: None for the local kernel, else
a callable with the kernel's calling convention. A worker that cannot run the
cell (undefined, a transport Quiver does not run, unhealthy, missing packages)
answers an error at once, naming the worker and why.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from flight import QuiverClient
from notebooks.execution import KernelDied
from notebooks.workers.health import HealthBook, Target, health_url, now_ms
from notebooks.workers.on_dask import DaskBackend, needed_modules
from notebooks.workers.on_flight import FlightBackend
from notebooks.workers.spec import LOCAL, RUNNABLE, WorkerSpec, parse_specs

Console = Callable[[str, str], None]


class Backend(Protocol):
    def execute(
        self,
        request: dict[str, Any],
        *,
        on_console: Console,
        timeout: float | None,
        cancel: threading.Event,
    ) -> dict[str, Any]: ...

    def close(self) -> None: ...


def failed(name: str, message: str) -> dict[str, Any]:
    """A kernel-shaped answer for a cell that could not start on its worker."""
    return {
        "status": "error",
        "variables": {},
        "display": None,
        "error": {"ename": "WorkerError", "evalue": message, "traceback": None},
    }


class Remote:
    """A cell's run on one worker; called like the local kernel's ``execute``."""

    def __init__(self, workers: Workers, spec: WorkerSpec | None, name: str) -> None:
        self.workers = workers
        self.spec = spec
        self.name = name
        self.transport = spec.transport if spec is not None else "unknown"

    def execute(
        self,
        request: dict[str, Any],
        *,
        on_console: Console,
        timeout: float | None,
        cancel: threading.Event,
    ) -> dict[str, Any]:
        spec, name = self.spec, self.name
        if spec is None:
            return failed(name, f"worker {name!r} is not defined (no server or notebook worker)")
        if self.transport not in RUNNABLE:
            return failed(
                name,
                f"worker {name!r} uses the {self.transport!r} transport, which Quiver does not "
                f"run; cells run on: local, {', '.join(RUNNABLE)}",
            )
        url = (spec.config.url or "").strip()
        if not url:
            return failed(name, f"worker {name!r} has no config.url")
        record = self.workers.health.probe((self.transport, url), token_of(spec))
        if record.health != "healthy":
            return failed(name, f"worker {name!r} is unavailable: {record.last_error}")
        for what in request.get("inputs", {}).values():
            if what.get("kind") == "memory":
                return failed(
                    name,
                    f"worker {name!r} cannot receive an input that lives only in the local "
                    "kernel (it could not be serialised); make it a table or a picklable value",
                )
        backend = self.workers.backend(self.transport, url, spec)
        if isinstance(backend, DaskBackend):
            try:
                missing = backend.missing(needed_modules(request["source"], request["inputs"]))
            except Exception as exc:  # the scheduler went away between probe and run
                return failed(name, f"worker {name!r} is unavailable: {exc}")
            if missing:
                names = sorted({m for found in missing.values() for m in found})
                return failed(
                    name,
                    f"worker {name!r} cannot run this cell: its Dask workers lack "
                    f"{', '.join(names)} ({', '.join(sorted(missing))}); install them there",
                )
        try:
            return backend.execute(request, on_console=on_console, timeout=timeout, cancel=cancel)
        except KernelDied:
            raise  # a time-out: the runner reports it as for the local kernel
        except Exception as exc:  # the engine failed (lost worker, lost scheduler, ...)
            return failed(name, f"worker {name!r} failed: {type(exc).__name__}: {exc}")


def token_of(spec: WorkerSpec) -> str | None:
    """The worker's token: from the environment variable it names (never from the toml)."""
    if spec.config.token_env:
        return os.environ.get(spec.config.token_env)
    return spec.config.token


class Workers:
    """The server's worker model. Thread-safe."""

    def __init__(
        self,
        server_workers: Iterable[dict[str, Any]] = (),
        *,
        probe_interval: float = 30.0,
        probe_timeout: float = 2.0,
        editable: bool = True,
    ) -> None:
        self.server, problems = parse_specs(list(server_workers), "server")
        if problems:
            raise ValueError("; ".join(problems))
        self.editable = editable
        self.health = HealthBook(interval=probe_interval, timeout=probe_timeout)
        self._backends: dict[Target, Backend] = {}
        self._data: dict[str, QuiverClient] = {}
        self._lock = threading.Lock()

    # -- catalog ---------------------------------------------------------------------------

    def specs(self, notebook_workers: Any) -> list[tuple[WorkerSpec, str]]:
        """Defined workers with their source, server ones first; a name defined twice keeps
        its first definition."""
        out: list[tuple[WorkerSpec, str]] = []
        seen = {LOCAL}
        notebook, _ = parse_specs(notebook_workers, "notebook")
        for spec, source in [*((s, "server") for s in self.server),
                             *((s, "notebook") for s in notebook)]:  # fmt: skip
            if spec.name not in seen:
                seen.add(spec.name)
                out.append((spec, source))
        return out

    def find(self, notebook_workers: Any, name: str) -> WorkerSpec | None:
        for spec, _ in self.specs(notebook_workers):
            if spec.name == name:
                return spec
        return None

    def catalog(
        self, notebook_workers: Any, referenced: Iterable[str], *, refresh: bool = False
    ) -> list[dict[str, Any]]:
        """The ``WorkerCatalogEntry`` list of API.md §2.6, ``local`` first."""
        entries = [_local_entry()]
        defined = self.specs(notebook_workers)
        targets = []
        for spec, _ in defined:
            url = health_url(spec)
            if url is not None:
                targets.append(((spec.transport, url), token_of(spec)))
        self.health.watch(targets)
        if refresh:
            for target, token in targets:
                self.health.probe(target, token)
        for spec, source in defined:
            url = health_url(spec)
            config = spec.config.model_dump(exclude_none=True)
            config.pop("token", None)  # shown nowhere
            entry = {
                "name": spec.name, "backend": spec.backend, "runtime_id": spec.runtime_id,
                "config": config, "source": source,
                "allowed": source == "server" or self.editable, "enabled": True,
                "transport": spec.transport, "health_url": url,
            }  # fmt: skip
            if spec.backend == LOCAL:
                entry.update(_local_entry() | {k: entry[k] for k in ("name", "source", "config")})
            elif url is None:
                entry.update(_quiet("unknown", "no health URL is known for this worker"))
            else:
                entry.update(self.health.record((spec.transport, url)).fields())
            entries.append(entry)
        names = {e["name"] for e in entries}
        for name in sorted(set(referenced) - names):
            entry = {
                "name": name, "backend": "executor", "runtime_id": None, "config": {},
                "source": "referenced", "allowed": False, "enabled": True,
                "transport": "unknown", "health_url": None,
            }  # fmt: skip
            entry.update(_quiet("unavailable", f"worker {name!r} is not defined"))
            entries.append(entry)
        return entries

    # -- running ---------------------------------------------------------------------------

    def remote(self, notebook_workers: Any, name: str | None) -> Remote | None:
        """How a cell assigned to ``name`` runs: None for the local kernel."""
        if not name or name == LOCAL:
            return None
        spec = self.find(notebook_workers, name)
        if spec is not None and spec.backend == LOCAL:
            return None
        return Remote(self, spec, name)

    def backend(self, transport: str, url: str, spec: WorkerSpec) -> Backend:
        with self._lock:
            found = self._backends.get((transport, url))
            if found is None:
                if transport == "dask":
                    found = DaskBackend(url)
                elif transport == "flight":
                    found = FlightBackend(url, token_of(spec))
                else:
                    raise ValueError(f"no backend for the {transport!r} transport")
                self._backends[(transport, url)] = found
            return found

    def data_client(self, location: str) -> QuiverClient:
        """A client of the node at ``location`` that keeps a remote cell's tables (with the
        token of the worker that points there)."""
        with self._lock:
            client = self._data.get(location)
            if client is None:
                backend = self._backends.get(("flight", location))
                token = backend.token if isinstance(backend, FlightBackend) else None
                client = self._data[location] = QuiverClient(location, token=token)
            return client

    def close(self) -> None:
        self.health.close()
        with self._lock:
            backends, self._backends = list(self._backends.values()), {}
            clients, self._data = list(self._data.values()), {}
        for backend in backends:
            backend.close()
        for client in clients:
            client.close()


def kept_at(variables: dict[str, dict[str, Any]]) -> str | None:
    """The node keeping a cell result's tables when a flight worker ran it (else None)."""
    for var in variables.values():
        if var.get("location"):
            return str(var["location"])
    return None


def _local_entry() -> dict[str, Any]:
    return {
        "name": LOCAL, "backend": LOCAL, "runtime_id": None, "config": {}, "source": "builtin",
        "allowed": True, "enabled": True, "transport": LOCAL, "health_url": None,
        **_quiet("healthy", None),
    }  # fmt: skip


def _quiet(health: str, error: str | None) -> dict[str, Any]:
    """Health fields of a worker nobody probes."""
    return {
        "health": health, "health_checked_at": now_ms() if error else None,
        "last_error": error, "health_history": [], "probe_count": 0,
        "healthy_probe_count": 0, "unavailable_probe_count": 0, "unknown_probe_count": 0,
        "consecutive_failures": 0, "last_healthy_at": None, "last_unavailable_at": None,
        "last_unknown_at": None, "last_status_change_at": None, "last_probe_duration_ms": None,
    }  # fmt: skip
