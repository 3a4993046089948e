"""Sandboxed DuckDB databases opened ahead of the queries that take them.

A ``sql@v1`` query needs a database of its own: file access and the locked
configuration are database-wide, so a database cannot be shared by queries
allowed different files. Opening one costs ~12 ms, a good share of a small
query, so one is opened *before* it is needed — when a service starts
(:func:`prepare`, on the caller's thread) and after each query, once its result
is published (on the build's own thread) — and a query takes it (:func:`take`).

Only the threads that call :func:`prepare` ever open a spare: no thread of this
module's own, so nothing is left inside DuckDB while the interpreter exits (a
daemon thread still in DuckDB's native code then aborts the process,
"exception not rethrown"). Build threads are not daemons: Python waits for them
before its exit hooks, and the exit hook here closes the spares left.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading

import duckdb

from foundation import Settings

Key = tuple[tuple[str, str], ...]

WAIT_S = 0.5
"""How long :func:`take` waits for a spare another thread is opening."""

_spares: dict[Key, duckdb.DuckDBPyConnection] = {}
_opening: set[Key] = set()
_changed = threading.Condition()


def config(settings: Settings, *, sandboxed: bool) -> dict[str, object]:
    """The DuckDB configuration of a query database under ``settings``."""
    options: dict[str, object] = {}
    if settings.duckdb_threads:
        options["threads"] = settings.duckdb_threads
    if settings.duckdb_memory_limit:
        options["memory_limit"] = settings.duckdb_memory_limit
    if sandboxed:
        options["python_enable_replacements"] = False
        options["autoinstall_known_extensions"] = False
        options["autoload_known_extensions"] = False
    return options


def _key(options: dict[str, object]) -> Key:
    return tuple(sorted((k, str(v)) for k, v in options.items()))


def take(options: dict[str, object]) -> duckdb.DuckDBPyConnection | None:
    """The spare database of this configuration, now yours; None when there is none.

    One being opened is waited for (up to :data:`WAIT_S`): it is ready sooner than
    a second one opened alongside it."""
    key = _key(options)
    with _changed:
        _changed.wait_for(lambda: key not in _opening, timeout=WAIT_S)
        return _spares.pop(key, None)


def prepare(settings: Settings) -> None:
    """Open the spare sandboxed database for ``settings`` here and now, unless one is
    ready or another thread is opening it. A failure to open is left to the query
    that needs one to report."""
    options = config(settings, sandboxed=True)
    key = _key(options)
    with _changed:
        if key in _spares or key in _opening:
            return
        _opening.add(key)
    con = None
    try:
        con = duckdb.connect(config=options)
    except duckdb.Error:
        pass
    finally:
        with _changed:
            _opening.discard(key)
            if con is not None and key not in _spares:
                _spares[key] = con
                con = None
            _changed.notify_all()
    if con is not None:  # another thread's spare got there first
        con.close()


def held() -> int:
    """How many spare databases are open now."""
    with _changed:
        return len(_spares)


@atexit.register
def close_all() -> None:
    """Close every spare: before the interpreter's teardown, not during it."""
    with _changed:
        spares = list(_spares.values())
        _spares.clear()
    for con in spares:
        with contextlib.suppress(duckdb.Error):
            con.close()


def _forget_after_fork() -> None:
    """A forked child starts with no spares: a DuckDB database does not survive a fork
    (and another thread may have held the lock)."""
    global _changed
    _spares.clear()
    _opening.clear()
    _changed = threading.Condition()


os.register_at_fork(after_in_child=_forget_after_fork)
