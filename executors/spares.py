"""Sandboxed DuckDB databases opened ahead of the queries that take them.

A ``sql@v1`` query needs a database of its own: file access and the locked
configuration are database-wide, so a database cannot be shared by queries
allowed different files. Opening one costs ~12 ms, a good share of a small
query, so spares are opened *before* they are needed — when a service starts
(:func:`prepare`, on the caller's thread) and after each query, once its result
is published (on the build's own thread) — and a query takes one (:func:`take`).

Only the threads that call :func:`prepare` ever open a spare (and those that
call :func:`retire` close a finished query's database): no thread of this
module's own. Those threads may be daemons, which Python does not wait for at
exit, so the exit hook waits for any of them inside DuckDB before the teardown
begins (a thread stopped inside DuckDB's native code aborts the process,
"exception not rethrown"), lets none start after, and closes the spares.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading

import duckdb

from foundation import Settings

Key = tuple[tuple[str, str], ...]

SPARES = 2
"""Spares kept per configuration: a query that follows another at once finds one
ready while the first one's build opens the next."""

WAIT_S = 0.5
"""How long :func:`take` waits for a spare another thread is opening."""

EXIT_WAIT_S = 10.0
"""How long the exit hook waits for databases being opened or closed."""

_spares: dict[Key, list[duckdb.DuckDBPyConnection]] = {}
_opening: set[Key] = set()
_closing = 0  # finished queries' databases being closed now
_exiting = False
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
    """A spare database of this configuration, now yours; None when there is none.

    When none is ready, one being opened is waited for (up to :data:`WAIT_S`): it is
    ready sooner than a second one opened alongside it."""
    key = _key(options)
    with _changed:
        _changed.wait_for(lambda: bool(_spares.get(key)) or key not in _opening, timeout=WAIT_S)
        ready = _spares.get(key)
        return ready.pop() if ready else None


def prepare(settings: Settings) -> None:
    """Open spare sandboxed databases for ``settings`` here and now, one at a time, up
    to :data:`SPARES`; unless another thread is opening one (or the process is
    exiting). A failure to open is left to the query that needs one to report."""
    options = config(settings, sandboxed=True)
    key = _key(options)
    while True:
        with _changed:
            if _exiting or key in _opening or len(_spares.get(key, ())) >= SPARES:
                return
            _opening.add(key)
        kept = False
        try:
            con = duckdb.connect(config=options)
            with _changed:
                kept = not _exiting and len(_spares.get(key, ())) < SPARES
                if kept:
                    _spares.setdefault(key, []).append(con)
            if not kept:  # the process is exiting: closed while still counted as opening
                con.close()
        except duckdb.Error:
            pass
        finally:
            with _changed:
                _opening.discard(key)
                _changed.notify_all()
        if not kept:
            return


def retire(con: duckdb.DuckDBPyConnection) -> None:
    """Close a finished query's database, unless the process is exiting (its teardown
    then drops it, on the main thread)."""
    global _closing
    with _changed:
        if _exiting:
            return
        _closing += 1
    try:
        with contextlib.suppress(duckdb.Error):
            con.close()
    finally:
        with _changed:
            _closing -= 1
            _changed.notify_all()


def held() -> int:
    """How many spare databases are open now."""
    with _changed:
        return sum(len(ready) for ready in _spares.values())


def close_all() -> None:
    """Close every spare."""
    with _changed:
        spares = [con for ready in _spares.values() for con in ready]
        _spares.clear()
    for con in spares:
        with contextlib.suppress(duckdb.Error):
            con.close()


@atexit.register
def _at_exit() -> None:
    """Before the interpreter's teardown: let a database being opened or closed finish
    (bounded), start no other, and close the spares.

    This matters because the threads that call :func:`prepare` and :func:`retire` may be
    daemons: a thread inherits its creator's daemon flag, and a build started from a
    gRPC handler thread (a foreign thread, which Python counts as a daemon) is one.
    Python does not wait for daemons at exit, and one still inside DuckDB when the
    teardown begins is stopped there, which aborts the process ("exception not
    rethrown")."""
    global _exiting
    with _changed:
        _exiting = True
        _changed.wait_for(lambda: not _opening and not _closing, timeout=EXIT_WAIT_S)
    close_all()


def _forget_after_fork() -> None:
    """A forked child starts with no spares: a DuckDB database does not survive a fork
    (and another thread may have held the lock)."""
    global _changed, _closing
    _spares.clear()
    _opening.clear()
    _closing = 0
    _changed = threading.Condition()


os.register_at_fork(after_in_child=_forget_after_fork)
