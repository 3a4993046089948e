"""The server keeps the store's SQLite locks for its whole life.

Closing any descriptor of a file drops every POSIX lock the process holds on
it, so code that opens and closes ``store.db`` (or duplicates a descriptor of
it and closes the copy) leaves SQLite unprotected: an outside reader then
deletes the WAL the server still writes into, and what is committed after that
is lost on the next crash.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.flight as fl
import pytest

from flight.sockets import drop_connections
from tests.fixtures_flight import DEMO_ROWS, GATES, act, cmd, gated_request
from tests.flight.test_flight_cli import start_serve
from tests.processes import start_quiver, stop
from tests.sqlite_locks import HAVE_PROC_LOCKS, deleted_files, sqlite_locks

pytestmark = pytest.mark.skipif(not HAVE_PROC_LOCKS, reason="needs /proc/locks (Linux)")

HELD = {"store.db", "store.db-shm"}


def put(client: fl.FlightClient, name: str, rows: int) -> dict[str, Any]:
    table = pa.table({"x": pa.array(range(rows), pa.int64()), "tag": [name] * rows})
    command = json.dumps({"name": name, "metadata": {}})
    writer, answers = client.do_put(fl.FlightDescriptor.for_command(command), table.schema)
    writer.write_table(table)
    writer.done_writing()
    answer = json.loads(answers.read().to_pybytes())
    writer.close()
    return answer


def outside_read(db: Path) -> int:
    """What an operator's ``sqlite3 store.db 'select count(*) ...'`` does: open, read, close."""
    con = sqlite3.connect(db)
    try:
        (count,) = con.execute("SELECT count(*) FROM artifacts WHERE state='ready'").fetchone()
    finally:
        con.close()
    return count


def test_locks_held_after_start_serving_and_dropping_connections(make_server) -> None:
    server = make_server()
    db = server.core.store.root / "store.db"
    assert sqlite_locks(os.getpid(), db) == HELD

    client = fl.connect(server.location)
    put(client, "up", 1000)
    GATES["locks"] = threading.Event()
    GATES["locks"].set()  # the gated build runs through
    info = client.get_flight_info(cmd(gated_request("locks")))
    assert client.do_get(info.endpoints[0].ticket).read_all().num_rows == 4000
    act(client, "list", {})
    assert sqlite_locks(os.getpid(), db) == HELD

    assert drop_connections(server.port) >= 1  # the client's connection
    assert sqlite_locks(os.getpid(), db) == HELD
    client.close()


def test_outside_reader_keeps_the_wal_and_later_builds_survive_kill_9(tmp_path, demo_table) -> None:
    data = tmp_path / "data"
    db = data / "store.db"
    proc, where = start_serve(data)
    try:
        assert sqlite_locks(proc.pid, db) == HELD
        client = fl.connect(where["flight"])
        put(client, "before", 100)
        assert sqlite_locks(proc.pid, db) == HELD

        assert outside_read(db) == 1
        assert not deleted_files(proc.pid), "the outside reader unlinked a file the server uses"

        for i in range(3):
            put(client, f"after-{i}", 100 + i)
        scan = {
            "inputs": [demo_table.uri],
            "transform": {"executor": "scan@v1", "params": {"columns": ["id"]}},
            "name": "scanned",
        }
        info = client.get_flight_info(cmd(scan))
        assert client.do_get(info.endpoints[0].ticket).read_all().num_rows == DEMO_ROWS
        # committed where other processes see it, not into an unlinked WAL
        assert outside_read(db) == 5
        assert sqlite_locks(proc.pid, db) == HELD
        client.close()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()

    proc, where = start_quiver(
        ["flight", "--data-dir", str(data), "--flight-port", "0"], tmp_path / "flight-stderr.txt"
    )
    try:
        client = fl.connect(where["flight"])
        for name, rows in [("before", 100), ("after-0", 100), ("after-1", 101), ("after-2", 102)]:
            table = client.do_get(fl.Ticket(f"strata://name/{name}".encode())).read_all()
            assert table.num_rows == rows
            assert table.column("tag").to_pylist() == [name] * rows
        got = client.do_get(fl.Ticket(b"strata://name/scanned")).read_all()
        assert got.num_rows == DEMO_ROWS
        client.close()
    finally:
        stop(proc)
