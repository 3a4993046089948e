"""Actions about this server itself: its caches, its dependencies, its runtime.

``cache-clear`` drops in-memory caches (never an artifact), ``dependencies``
checks the store, the warehouses and the disk now, ``runtime`` reports memory,
garbage collection, resource limits and the process. Registered through the
same :func:`flight.dispatch.action` decorator as every action.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import threading
import time
import uuid
from typing import Any

import pyarrow as pa

from flight.args import Empty
from flight.core import Core
from flight.dispatch import action
from flight.protocol import parse_model

try:
    import resource
except ImportError:  # not on Windows
    resource = None  # type: ignore[assignment]

MIN_FREE_DISK_BYTES = 64 * 1024**2
"""Below this much free space in the data directory, ``dependencies`` reports the disk failing."""


# --- caches ------------------------------------------------------------------------------
@action(
    "cache-clear",
    "Drop this server's in-memory caches (warehouse catalogs, table metadata, scan plans, "
    "decoded schemas, idle DuckDB databases); never deletes an artifact. Answers what was "
    "cleared.",
)
def _cache_clear(core: Core, body: Any) -> Any:
    parse_model(Empty, body, "cache-clear request")
    before = pa.default_memory_pool().bytes_allocated()
    executors: dict[str, dict[str, int]] = {}
    for name in core.registry.names():
        clear = getattr(core.registry.get(name), "clear_caches", None)
        if callable(clear):
            executors[name] = clear()
    cleared = {
        "warehouses": core.warehouses.clear(),
        "store": core.store.clear_caches(),
        "executors": executors,
    }
    collected = gc.collect()
    pa.default_memory_pool().release_unused()
    return {
        "status": "cleared",
        "cleared": cleared,
        "gc_collected": collected,
        "arrow_bytes_before": before,
        "arrow_bytes_after": pa.default_memory_pool().bytes_allocated(),
        "artifacts_deleted": 0,
    }


# --- dependencies ------------------------------------------------------------------------
def _store_check(core: Core) -> dict[str, Any]:
    store = core.store
    check: dict[str, Any] = {"status": "ok", "path": str(store.root)}
    try:
        check["artifacts"] = store.stats()["artifacts"]
        check["readable"] = True
    except Exception as exc:
        check.update(status="error", readable=False, detail=f"store.db cannot be read: {exc}")
    probe = store.tmp_dir / f".probe-{uuid.uuid4().hex}"
    try:
        probe.write_bytes(b"quiver")
        ok = probe.read_bytes() == b"quiver"
        writable = ok and os.access(store.root / "store.db", os.W_OK)
        check["writable"] = writable
        if not writable:
            check.update(status="error", detail="store.db is not writable")
    except OSError as exc:
        check.update(status="error", writable=False, detail=f"cannot write in the store: {exc}")
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    return check


def disk_json(core: Core) -> dict[str, Any]:
    """Free space of the data directory beside the store's size and cap."""
    stats = core.store.stats()
    by_state = stats["by_state"]
    stored = sum(by_state.get(s, {}).get("bytes", 0) for s in ("ready", "superseded"))
    usage = shutil.disk_usage(core.settings.data_dir)
    cap = core.store.max_bytes
    return {
        "path": str(core.settings.data_dir),
        "store_bytes": stored,
        "max_bytes": cap,
        "used_fraction": round(stored / cap, 6) if cap else None,
        "disk_free_bytes": usage.free,
        "disk_total_bytes": usage.total,
    }


def _disk_check(core: Core) -> dict[str, Any]:
    try:
        disk = disk_json(core)
    except Exception as exc:
        return {"status": "error", "detail": f"cannot measure the data directory: {exc}"}
    check: dict[str, Any] = {"status": "ok", **disk}
    free = disk["disk_free_bytes"]
    if free < MIN_FREE_DISK_BYTES:
        check.update(status="error", detail=f"only {free} bytes free (need {MIN_FREE_DISK_BYTES})")
    elif disk["max_bytes"] and disk["max_bytes"] - disk["store_bytes"] > free:
        check["warning"] = (
            f"the store may grow {disk['max_bytes'] - disk['store_bytes']} more bytes before "
            f"its cap, but the disk has {free} free"
        )
    return check


@action(
    "dependencies",
    "What this server depends on, checked now: the store (read, write), every warehouse "
    "opened so far, free disk space of the data directory. {status, checks}.",
)
def _dependencies(core: Core, body: Any) -> Any:
    parse_model(Empty, body, "dependencies request")
    items = [{"warehouse": w, **core.warehouses.probe(w)} for w in core.warehouses.seen()]
    checks = {
        "store": _store_check(core),
        "warehouses": {
            "status": "ok" if all(i["status"] == "ok" for i in items) else "error",
            "items": items,
        },
        "disk": _disk_check(core),
    }
    ok = all(c["status"] == "ok" for c in checks.values())
    return {"status": "ok" if ok else "error", "checks": checks}


# --- runtime metrics ---------------------------------------------------------------------
class _GcPauses:
    """Python garbage-collection pauses of this process, timed by ``gc.callbacks``."""

    def __init__(self) -> None:
        self.since = time.time()
        self.count = 0
        self.total_s = 0.0
        self.max_s = 0.0
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        # Called with the GIL held by the collecting thread; collections never nest.
        if phase == "start":
            self._start = time.perf_counter()
            return
        pause = time.perf_counter() - self._start
        self.count += 1
        self.total_s += pause
        self.max_s = max(self.max_s, pause)

    def json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "total_s": round(self.total_s, 6),
            "max_s": round(self.max_s, 6),
            "since": self.since,
        }


GC_PAUSES = _GcPauses()
if not any(isinstance(cb, _GcPauses) for cb in gc.callbacks):
    gc.callbacks.append(GC_PAUSES)


def arrow_memory_json() -> dict[str, Any]:
    pool = pa.default_memory_pool()
    return {
        "backend": pool.backend_name,
        "bytes_allocated": pool.bytes_allocated(),
        "max_memory": pool.max_memory(),
        "total_bytes_allocated": pool.total_bytes_allocated(),
        "num_allocations": pool.num_allocations(),
    }


def gc_json() -> dict[str, Any]:
    return {
        "enabled": gc.isenabled(),
        "counts": list(gc.get_count()),
        "thresholds": list(gc.get_threshold()),
        "generations": gc.get_stats(),
        "frozen": gc.get_freeze_count(),
        "garbage": len(gc.garbage),
    }


_LIMITS = ("NOFILE", "NPROC", "AS", "DATA", "RSS", "STACK", "CORE", "FSIZE", "MEMLOCK")


def _open_files() -> int | None:
    for fd_dir in ("/proc/self/fd", "/dev/fd"):
        with contextlib.suppress(OSError):
            return len(os.listdir(fd_dir))
    return None


def _rss_bytes() -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return None


def resource_limits_json() -> dict[str, Any]:
    """Soft and hard limits (``null`` = unlimited), with what is in use where it is known."""
    limits: dict[str, Any] = {}
    if resource is not None:
        for name in _LIMITS:
            which = getattr(resource, f"RLIMIT_{name}", None)
            if which is None:
                continue
            soft, hard = resource.getrlimit(which)
            unlimited = resource.RLIM_INFINITY
            limits[name.lower()] = {
                "soft": None if soft == unlimited else soft,
                "hard": None if hard == unlimited else hard,
            }
    if "nofile" in limits:
        limits["nofile"]["used"] = _open_files()
    limits["threads"] = threading.active_count()
    limits["rss_bytes"] = _rss_bytes()
    if resource is not None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        limits["max_rss_bytes"] = peak * 1024 if os.uname().sysname == "Linux" else peak
    return limits


def process_json() -> dict[str, Any]:
    """This process's Arrow memory, Python gc and resource limits (§12.6 metric keys)."""
    return {
        "pid": os.getpid(),
        "arrow_memory": arrow_memory_json(),
        "gc": gc_json(),
        "gc_pauses": GC_PAUSES.json(),
        "resource_limits": resource_limits_json(),
    }


@action(
    "runtime",
    "This server process: pid, arrow_memory, gc, gc_pauses, resource_limits, thread_pools "
    "(builds) and disk_cache (store bytes vs cap, free disk).",
)
def _runtime(core: Core, body: Any) -> Any:
    parse_model(Empty, body, "runtime request")
    settings = core.settings
    building = len(core.materializer.building())
    return {
        **process_json(),
        "thread_pools": {
            "builds": {
                "max_workers": settings.build_threads,
                "busy": min(building, settings.build_threads),
                "queued": max(0, building - settings.build_threads),
            },
            "duckdb": {"threads_per_query": settings.duckdb_threads or os.cpu_count()},
        },
        "disk_cache": _disk_cache(core),
    }


def _disk_cache(core: Core) -> dict[str, Any]:
    # The process figures must survive the one measurement that can fail (the data
    # directory gone, or its file system failing): they matter most then.
    try:
        return disk_json(core)
    except Exception as exc:
        return {"path": str(core.settings.data_dir), "error": f"cannot measure: {exc}"}
