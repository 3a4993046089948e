"""Shutdown has a deadline: stuck clients and builds cannot hold a server open.

In-process ``QuiverFlightServer.close()`` with a stuck reader, a stuck follower
and a stuck build, and a real ``quiver serve`` subprocess stopped by SIGTERM
while a Flight reader, a REST reader and an upload all stall.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.flight as fl
import pytest

from flight import QuiverFlightServer
from tests.fixtures_flight import act, gated_request
from tests.flight.test_flight_cli import start_serve
from tests.processes import start_quiver, stop
from tests.servers import stalled_get

BIG_ROWS = 4_000_000  # 32 MB: far more than gRPC's and TCP's buffers hold for a stuck reader
DEADLINE_S = 1.0
MARGIN_S = 4.0  # beyond the deadline: the cancel grace, dropping connections, process exit


def put_big(client: fl.FlightClient, name: str) -> dict[str, Any]:
    """Upload a ``BIG_ROWS``-row table under ``name``; the DoPut answer."""
    table = pa.table({"x": pa.array(range(BIG_ROWS), pa.int64())})
    command = json.dumps({"name": name, "metadata": {}})
    writer, answers = client.do_put(fl.FlightDescriptor.for_command(command), table.schema)
    writer.write_table(table, max_chunksize=256 * 1024)
    writer.done_writing()
    answer = json.loads(answers.read().to_pybytes())
    writer.close()
    return answer


def stuck_reader(client: fl.FlightClient, name: str) -> fl.FlightStreamReader:
    """A DoGet of ``name`` that read one batch and then stopped reading."""
    reader = client.do_get(fl.Ticket(f"strata://name/{name}".encode()))
    reader.read_chunk()  # the call is running on the server
    return reader


def read_rows(client: fl.FlightClient, name: str) -> int:
    return client.do_get(fl.Ticket(f"strata://name/{name}".encode())).read_all().num_rows


def clean_flight_error(reader: fl.FlightStreamReader) -> fl.FlightError:
    """Read the rest of ``reader``, which must end with a Flight error; that error."""
    with pytest.raises(fl.FlightUnavailableError) as caught:
        reader.read_all()
    assert "Traceback" not in str(caught.value)
    return caught.value


def timed_close(server: QuiverFlightServer, **kwargs: float | bool) -> float:
    start = time.monotonic()
    server.close(**kwargs)
    return time.monotonic() - start


# --- in process --------------------------------------------------------------------------
def test_close_cancels_a_reader_that_stopped_reading(make_server, caplog) -> None:
    server = make_server(shutdown_timeout_s=DEADLINE_S)
    client = fl.connect(server.location)
    put_big(client, "big")
    reader = stuck_reader(client, "big")
    with caplog.at_level(logging.INFO, logger="quiver.flight"):
        took = timed_close(server)
    assert DEADLINE_S <= took < DEADLINE_S + MARGIN_S
    # gRPC held the stream: its connection was dropped to end the call
    assert "dropped 1 stuck client connection(s)" in caplog.text
    clean_flight_error(reader)
    client.close()


def test_close_drops_only_the_connections_it_accepted(make_server, caplog) -> None:
    server = make_server(shutdown_timeout_s=DEADLINE_S)
    port = server.port
    # Another server of this process with the same port number on another loopback
    # address, and a client socket of this process whose own port is that number.
    other = socket.socket()
    theirs_client = socket.socket()
    try:
        other.bind(("127.0.0.2", port))
        theirs_client.bind(("127.0.0.3", port))
    except OSError as exc:  # only 127.0.0.1 is loopback here (macOS)
        other.close()
        theirs_client.close()
        pytest.skip(f"no second loopback address: {exc}")
    other.listen()
    theirs_client.connect(("127.0.0.2", port))
    theirs_server, _ = other.accept()
    client = fl.connect(server.location)
    put_big(client, "big")
    reader = stuck_reader(client, "big")
    with caplog.at_level(logging.INFO, logger="quiver.flight"):
        timed_close(server)
    assert "dropped 1 stuck client connection(s)" in caplog.text
    clean_flight_error(reader)
    # both ends of the other connection are untouched
    theirs_server.sendall(b"ping")
    assert theirs_client.recv(4) == b"ping"
    theirs_client.sendall(b"pong")
    assert theirs_server.recv(4) == b"pong"
    for sock in (theirs_server, theirs_client, other):
        sock.close()
    client.close()


def test_close_ends_a_follower_with_shutting_down(make_server, tmp_path: Path) -> None:
    server = make_server()
    client = fl.connect(server.location)
    answer = act(client, "materialize", gated_request("never"))  # its gate stays shut
    reader = client.do_get(fl.Ticket(answer["ticket"].encode()))
    assert reader.read_chunk().data.num_rows == 1000  # the next read waits for the build
    took = timed_close(server, timeout=0.3)
    assert took < 0.3 + MARGIN_S
    error = clean_flight_error(reader)
    assert "server shutting down" in str(error)
    assert json.loads(error.extra_info)["code"] == "unavailable"
    client.close()
    # the build was cancelled: failed, and nothing half-written remains
    restarted = make_server()
    client = fl.connect(restarted.location)
    assert act(client, "status", {"artifact_uri": answer["artifact_uri"]})["state"] == "failed"
    assert not list((tmp_path / "data" / "tmp").glob("*.arrow"))
    client.close()


def test_close_cancels_a_build_nobody_reads_at_the_deadline(make_server) -> None:
    server = make_server()
    client = fl.connect(server.location)
    answer = act(client, "materialize", {**gated_request("idle"), "mode": "async"})
    client.close()
    took = timed_close(server, timeout=0.3)
    assert 0.3 <= took < 0.3 + MARGIN_S
    restarted = make_server()
    client = fl.connect(restarted.location)
    assert act(client, "status", {"artifact_uri": answer["artifact_uri"]})["state"] == "failed"
    client.close()


def test_close_refuses_new_calls_and_lets_a_running_reader_finish(make_server) -> None:
    server = make_server()
    client = fl.connect(server.location)
    put_big(client, "big")
    reader = client.do_get(fl.Ticket(b"strata://name/big"))
    first = reader.read_chunk().data.num_rows  # the call is running
    closer = threading.Thread(target=server.close, kwargs={"timeout": 60})
    closer.start()
    newcomer = fl.connect(server.location)
    options = fl.FlightCallOptions(timeout=5)
    give_up = time.monotonic() + 30
    with pytest.raises(fl.FlightUnavailableError):  # as soon as gRPC's shutdown began
        while time.monotonic() < give_up:
            # A call caught inside gRPC at the very moment its shutdown begins is
            # answered CANCELLED by gRPC itself; the calls after it, UNAVAILABLE.
            with contextlib.suppress(fl.FlightCancelledError):
                act(newcomer, "health", options=options)
    rest = reader.read_all().num_rows  # the running stream goes on meanwhile
    closer.join(60)
    assert not closer.is_alive()
    assert first + rest == BIG_ROWS
    newcomer.close()
    client.close()


# --- the quiver command ---------------------------------------------------------------------
def stalled_upload(client: fl.FlightClient, name: str) -> fl.FlightStreamWriter:
    """A DoPut that sent one batch and then nothing; returns once its build has begun."""
    schema = pa.schema([("x", pa.int64())])
    command = json.dumps({"name": name, "metadata": {}})
    writer, _ = client.do_put(fl.FlightDescriptor.for_command(command), schema)
    writer.write_batch(pa.record_batch([pa.array(range(1000), pa.int64())], schema))
    deadline = time.monotonic() + 30
    while not act(client, "list", {"state": "building"})["artifacts"]:
        assert time.monotonic() < deadline, "the upload never reached the server"
    return writer


def kill_if_running(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def test_sigterm_with_stuck_clients_exits_within_the_deadline(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("QUIVER_SHUTDOWN_TIMEOUT_S", str(DEADLINE_S))
    data = tmp_path / "data"
    proc, where = start_serve(data)
    with contextlib.ExitStack() as held:  # a failed assertion still closes every stalled client
        held.callback(kill_if_running, proc)
        client = fl.connect(where["flight"])
        held.callback(client.close)
        big = put_big(client, "big")
        flight_reader = stuck_reader(client, "big")
        rest_reader = stalled_get(
            where["rest"], f"/v1/artifacts/{big['artifact_id']}/v/{big['version']}/data"
        )
        held.callback(rest_reader.close)
        uploader = fl.connect(where["flight"])
        held.callback(uploader.close)
        upload = stalled_upload(uploader, "partial")

        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=DEADLINE_S + 30)
        took = time.monotonic() - start
        assert proc.returncode == 0
        assert "stopped" in out
        assert took < DEADLINE_S + MARGIN_S, f"stopping took {took:.1f} s"
        assert "Traceback" not in (tmp_path / "serve-stderr.txt").read_text()
        clean_flight_error(flight_reader)
        with pytest.raises(fl.FlightError):
            upload.close()

    # nothing half-written: no build left open, no temporary file
    db = sqlite3.connect(f"file:{data / 'store.db'}?mode=ro", uri=True)
    states = dict(db.execute("SELECT state, count(*) FROM artifacts GROUP BY state").fetchall())
    db.close()
    assert states == {"ready": 1}
    assert not list((data / "tmp").glob("*.arrow"))

    proc, where = start_quiver(
        ["flight", "--data-dir", str(data), "--flight-port", "0"], tmp_path / "flight-stderr.txt"
    )
    try:
        client = fl.connect(where["flight"])
        assert read_rows(client, "big") == BIG_ROWS
        with pytest.raises(fl.FlightServerError, match="partial"):
            act(client, "name-get", {"name": "partial"})
        client.close()
    finally:
        stop(proc)
