"""The notebook WebSocket (API.md §13) with two sockets on one session, real kernels."""

from __future__ import annotations

import os
import time

import pytest
from websockets.exceptions import InvalidStatus

from tests.fixtures_execution import Nb, Socket, open_socket, recv_until
from tests.polling import wait_until
from tests.test_notebook_execution import LONG_SQL, sql_builds


def send(ws: Socket, kind: str, **payload) -> None:
    ws.send(kind, **payload)


def is_status(cid: str, status: str):
    return lambda f: (
        f["type"] == "cell_status"
        and f["payload"]
        == {
            **f["payload"],
            "cell_id": cid,
            "status": status,
        }
    )


def test_unknown_session_is_refused(nb: Nb) -> None:
    # Closed (1008) before the handshake is accepted: over the wire, an HTTP 403.
    with pytest.raises(InvalidStatus) as info:
        open_socket(nb.url, "/v1/notebooks/ws/nope")
    assert info.value.response.status_code == 403


def test_cascade_prompt_then_broadcast_to_both_sockets(nb: Nb) -> None:
    a = nb.add("x = 1\nprint('one')\nprint('two')")
    b = nb.add("y = x + 1")
    with nb.socket() as ws1, nb.socket() as ws2:
        send(ws1, "bogus")
        err = recv_until(ws1, lambda f: f["type"] == "error")[-1]
        assert err["payload"] == {"error": "Unknown message type: bogus"}
        send(ws1, "cell_execute", cell_id=b)
        prompt = recv_until(ws1, lambda f: f["type"] == "cascade_prompt")[-1]
        assert prompt["payload"]["cells_to_run"] == [a, b]
        send(ws1, "cell_execute_cascade", cell_id=b, plan_id="wrong")
        err = recv_until(ws1, lambda f: f["type"] == "error")[-1]
        assert err["payload"]["error"] == "Cascade plan not found or expired"
        send(ws1, "cell_execute_cascade", cell_id=b, plan_id=prompt["payload"]["plan_id"])
        for ws in (ws1, ws2):
            frames = recv_until(
                ws, lambda f: f["type"] == "cell_output" and f["payload"]["cell_id"] == b
            )
            frames += recv_until(ws, is_status(b, "ready"))
            kinds = [(f["type"], f["payload"].get("cell_id")) for f in frames]
            assert kinds.index(("cell_status", a)) < kinds.index(("cell_output", a))
            assert ("cascade_progress", None) in kinds
            console = [f["payload"]["text"] for f in frames if f["type"] == "cell_console"]
            assert "".join(console) == "one\ntwo\n"
            assert kinds.index(("cell_console", a)) < kinds.index(("cell_output", a))
            out = next(
                f for f in frames if f["type"] == "cell_output" and f["payload"]["cell_id"] == b
            )
            assert out["payload"]["outputs"]["y"]["preview"] == 2
            seqs = [f["seq"] for f in frames]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
            assert all(f["ts"].endswith("Z") for f in frames)

        # a REST-triggered run broadcasts the same frames; a REST edit sends notebook_state
        nb.edit(a, "x = 5")
        for ws in (ws1, ws2):
            state = recv_until(ws, lambda f: f["type"] == "notebook_state")[-1]
            assert state["seq"] == 0
            recv_until(ws, lambda f: f["type"] == "dag_update")
        assert nb.run(b, "force")["status"] == "ready"
        for ws in (ws1, ws2):
            frames = recv_until(ws, lambda f: f["type"] == "cell_output")
            run = [f for f in frames if f["type"] != "presence"]  # the REST editor shows up
            assert run[0]["payload"] == {"cell_id": b, "status": "running"}

        send(ws2, "cell_execute_rerun", cell_id=b)  # no prompt: runs a, then b
        frames = recv_until(
            ws1, lambda f: f["type"] == "cell_output" and f["payload"]["cell_id"] == b
        )
        assert [f["payload"]["cell_id"] for f in frames if f["type"] == "cell_output"] == [a, b]
        send(ws1, "notebook_sync")
        state = recv_until(ws1, lambda f: f["type"] == "notebook_state")[-1]
        assert {c["id"]: c["status"] for c in state["payload"]["cells"]} == {a: "ready", b: "ready"}


def test_console_streams_while_running_busy_error_and_cancel(nb: Nb, tmp_path) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    slow = nb.add(
        f"print('waiting', flush=True)\nwith open({str(gate)!r}) as f:\n    got = f.read()\n"
        "print('got', got)"
    )
    spin = nb.add("print('spin', flush=True)\nwhile True:\n    pass")
    with nb.socket() as ws, nb.socket() as other:
        send(ws, "cell_execute", cell_id=slow)
        frames = recv_until(ws, lambda f: f["type"] == "cell_console")
        assert frames[-1]["payload"] == {"cell_id": slow, "stream": "stdout", "text": "waiting"}
        send(other, "cell_execute", cell_id=spin)  # one run at a time
        err = recv_until(other, lambda f: f["type"] == "error")[-1]
        assert err["payload"]["error"] == f"Notebook is already executing cell {slow}"
        with open(gate, "w") as f:
            f.write("open")
        frames = recv_until(ws, lambda f: f["type"] == "cell_output")
        texts = [f["payload"]["text"] for f in frames if f["type"] == "cell_console"]
        assert "".join(texts).startswith("\ngot open")
        recv_until(ws, is_status(slow, "ready"))

        send(ws, "cell_execute", cell_id=spin)
        recv_until(ws, lambda f: f["type"] == "cell_console")
        send(other, "cell_cancel", cell_id=spin)
        recv_until(ws, is_status(spin, "idle"))

    runner = nb.executions.get(nb.sid)
    assert runner is not None and not runner.busy


def test_cell_cancel_stops_a_running_sql_query(nb: Nb) -> None:
    up = nb.add("import pyarrow as pa\nt = pa.table({'x': list(range(100_000))})")
    q = nb.add(LONG_SQL, "sql")
    assert nb.run(up)["status"] == "ready"
    flight = nb.executions.client
    with nb.socket() as ws, nb.socket() as other:
        send(ws, "cell_execute", cell_id=q)
        recv_until(ws, is_status(q, "running"))
        assert wait_until(lambda: len(sql_builds(flight, "building")) == 1)  # DuckDB is at it
        started = time.monotonic()
        send(other, "cell_cancel", cell_id=q)
        frames = recv_until(ws, is_status(q, "idle"))
        assert time.monotonic() - started < 10
        assert not [f for f in frames if f["type"] in ("cell_output", "cell_error", "error")]
        assert sql_builds(flight, "building") == [] and sql_builds(flight, "ready") == []
        runner = nb.executions.get(nb.sid)
        assert runner is not None and wait_until(lambda: not runner.busy)
        send(other, "cell_cancel", cell_id=q)  # nothing runs any more
        err = recv_until(other, lambda f: f["type"] == "error")[-1]
        assert err["payload"]["error"] == "No running cell to cancel"

        nb.edit(up, "import pyarrow as pa\nt = pa.table({'x': list(range(50))})")
        send(ws, "cell_execute", cell_id=q)
        prompt = recv_until(ws, lambda f: f["type"] == "cascade_prompt")[-1]
        send(ws, "cell_execute_cascade", cell_id=q, plan_id=prompt["payload"]["plan_id"])

        def output_of_q(f: dict) -> bool:
            return f["type"] == "cell_output" and f["payload"]["cell_id"] == q

        out = recv_until(ws, output_of_q)[-1]
        assert out["payload"]["outputs"][f"sql_{q}"]["preview"] == [{"n": 50**3, "s": 1225**3}]


def test_viewer_sockets_are_read_only(nb: Nb) -> None:
    a = nb.add("x = 1")
    with nb.socket("?role=viewer") as ws:
        send(ws, "cell_execute", cell_id=a)
        err = recv_until(ws, lambda f: f["type"] == "error")[-1]
        assert err["payload"] == {"error": "This socket is read-only", "code": "read_only"}
        send(ws, "notebook_sync")
        recv_until(ws, lambda f: f["type"] == "notebook_state")


def test_an_editor_socket_starts_the_kernel_before_the_first_run(nb: Nb) -> None:
    a = nb.add("import os\npid = os.getpid()")
    with nb.socket("?role=viewer"):
        pass
    assert nb.executions.get(nb.sid) is None  # a viewer does not run cells
    with nb.socket():
        assert wait_until(lambda: (r := nb.executions.get(nb.sid)) is not None and r.kernel_alive)
        runner = nb.executions.get(nb.sid)
        kernel = runner.start_kernel()  # the one the socket started, not a new one
        assert kernel.wait_ready()["pid"] == kernel.pid
        assert nb.run(a)["outputs"]["pid"]["preview"] == kernel.pid


def test_a_cell_reported_done_is_done(nb: Nb) -> None:
    """A run's last frames go out once the notebook is free: a client that runs the next
    cell as soon as it sees one finish is never told the notebook is still executing."""
    a = nb.add("x = 1")
    b = nb.add("y = x + 1")
    c = nb.add("raise ValueError('no')")
    runner = nb.executions.runner(nb.manager.get(nb.sid))
    busy_at_outcome: dict[str, list[bool]] = {}
    original = runner.emit

    def watch(kind: str, payload: dict) -> None:
        if kind == "cell_status" and payload["status"] in ("ready", "error", "idle"):
            busy_at_outcome.setdefault(payload["cell_id"], []).append(runner.busy)
        original(kind, payload)

    runner.emit = watch
    assert nb.run(b)["status"] == "ready"  # a cascade: a, then b
    assert nb.run(c)["status"] == "error"
    # a's outcome comes while the cascade goes on; b's and c's once the run is over
    assert busy_at_outcome == {a: [True], b: [False], c: [False]}

    with nb.socket() as ws:
        for cid, done in [(b, "ready"), (c, "error"), (b, "ready"), (a, "ready")] * 3:
            send(ws, "cell_execute_force", cell_id=cid)
            frames = recv_until(ws, is_status(cid, done))
            assert not [f for f in frames if f["type"] == "error"], frames
