"""The WebSocket messages of Strata 0.11's browser client besides running cells (API.md §13.4):
edits, presence, profiling, impact previews and the features answered ``unsupported``.
Real uvicorn, real kernels, two sockets on one session where it matters."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fixtures_execution import Nb, Socket


def of(kind: str, cid: str | None = None):
    def match(f: dict) -> bool:
        return f["type"] == kind and (cid is None or f["payload"].get("cell_id") == cid)

    return match


def entry(frame: dict, cid: str) -> dict:
    return next(c for c in frame["payload"]["cells"] if c["id"] == cid)


def test_an_edit_goes_to_disk_and_its_source_only_to_the_other_sockets(nb: Nb) -> None:
    a = nb.add("x = 1")
    b = nb.add("y = x + 1")
    assert nb.run(b)["status"] == "ready"
    with nb.socket() as ws1, nb.socket() as ws2:
        ws1.send("cell_source_update", cell_id=a, source="x = 2\nz = 3")
        own = ws1.recv_until(of("dag_update"))[-1]
        other = ws2.recv_until(of("dag_update"))[-1]
        assert own["seq"] == other["seq"]  # one frame, two shapes
        assert "source" not in entry(own, a)
        assert entry(other, a)["source"] == "x = 2\nz = 3"
        assert all("source" not in c for c in other["payload"]["cells"] if c["id"] != a)
        assert entry(own, a)["defines"] == ["x", "z"]
        assert entry(own, a)["updated_by"] == "local"
        assert own["payload"]["edges"] == [{"from_cell_id": a, "to_cell_id": b, "variable": "x"}]
        for ws in (ws1, ws2):  # cell_status for the cells whose status changed: both
            statuses = ws.recv_until(of("cell_status", b))
            changed = {
                f["payload"]["cell_id"]: f["payload"] for f in statuses if of("cell_status")(f)
            }
            assert changed[a]["status"] == "stale"  # it ran before: its source changed
            assert changed[b]["status"] == "stale"
            assert changed[b]["staleness_reasons"] == ["upstream"]
        assert not [f for f in ws1.quiet() if f["type"] == "cell_status"]  # nothing more
    path = Path(nb.manager.get(nb.sid).path) / "cells" / f"{a}.py"
    assert path.read_text() == "x = 2\nz = 3"
    assert nb.cells()[a]["source"] == "x = 2\nz = 3"
    assert nb.run(b)["outputs"]["y"]["preview"] == 3  # the edit is what runs


def test_an_edit_brings_shadow_warnings_and_a_failure_its_traceback(nb: Nb) -> None:
    """What the web UI shows beside a cell without asking for the whole notebook again."""
    a = nb.add("x = 1")
    b = nb.add("y = 2")
    with nb.socket() as ws:
        ws.send("cell_source_update", cell_id=b, source="x = 3\nraise ValueError('no')")
        update = ws.recv_until(of("dag_update"))[-1]
        assert entry(update, b)["shadow_warnings"] == [
            f"'x' redefines the variable produced by cell {a}"
        ]
        assert "shadow_warnings" not in entry(update, a)
        ws.send("cell_execute_force", cell_id=b)
        error = ws.recv_until(of("cell_error", b))[-1]["payload"]
        assert error["error"] == "ValueError: no"
        assert "line 2" in error["traceback"] and "ValueError: no" in error["traceback"]
    shown = nb.cells()[b]["display_outputs"]
    assert shown[-1]["content_type"] == "error" and "line 2" in shown[-1]["traceback"]


def test_edit_refusals(nb: Nb) -> None:
    a = nb.add("x = 1")
    with nb.socket() as ws:
        for payload, message in [
            ({"source": "x"}, "Missing cell_id or source"),
            ({"cell_id": a}, "Missing cell_id or source"),
            ({"cell_id": a, "source": "x" * 1_000_001}, "Cell source exceeds 1MB limit"),
            ({"cell_id": "nope", "source": "x"}, "Cell nope not found"),
        ]:
            ws.send("cell_source_update", **payload)
            assert ws.recv_until(of("error"))[-1]["payload"] == {"error": message}
    assert nb.cells()[a]["source"] == "x = 1"


def test_a_running_or_queued_cell_is_busy(nb: Nb, tmp_path) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    up = nb.add(f"with open({str(gate)!r}) as f:\n    got = f.read()")
    down = nb.add("n = len(got)")
    free = nb.add("w = 1")
    with nb.socket() as ws:
        ws.send("cell_execute_rerun", cell_id=down)  # runs up (blocked), then down
        ws.recv_until(of("cell_status", up))
        for cid in (up, down):  # running, and waiting in the run
            ws.send("cell_source_update", cell_id=cid, source="x = 0")
            err = ws.recv_until(of("error"))[-1]["payload"]
            assert err["code"] == "cell_busy" and err["cell_id"] == cid
            assert "while it is executing" in err["error"]
        r = nb.client.put(f"{nb.base}/cells/{up}", json={"source": "x = 0"})
        assert r.status_code == 409
        assert r.json()["detail"]["code"] == "cell_busy"
        ws.send("cell_source_update", cell_id=free, source="w = 2")  # not in the run
        ws.recv_until(of("dag_update"))
        with open(gate, "w") as f:
            f.write("go")
        ws.recv_until(lambda f: of("cell_status", down)(f) and f["payload"]["status"] == "ready")
        ws.send("cell_source_update", cell_id=up, source="got = 'x'")  # done: editable
        ws.recv_until(of("dag_update"))
    assert nb.cells()[up]["source"] == "got = 'x'"


def test_another_authors_recent_edit_locks_the_cell_unless_forced(nb: Nb) -> None:
    a = nb.add("x = 1")
    with nb.socket() as ada, nb.socket() as bob:
        # the fixture's anonymous REST edit ("local") holds it: ada takes it over
        ada.send("cell_source_update", cell_id=a, source="x = 2", author="ada")
        assert ada.recv_until(of("error"))[-1]["payload"]["held_by"] == "local"
        ada.send("cell_source_update", cell_id=a, source="x = 2", author="ada", force=True)
        ada.recv_until(of("dag_update"))
        bob.send("cell_source_update", cell_id=a, source="x = 3", author="bob")
        err = bob.recv_until(of("error"))[-1]["payload"]
        assert err["code"] == "cell_locked" and err["held_by"] == "ada" and err["cell_id"] == a
        ada.send("cell_source_update", cell_id=a, source="x = 4", author="ada")  # not herself
        ada.recv_until(of("dag_update"))
        r = nb.client.put(f"{nb.base}/cells/{a}", json={"source": "x = 5", "author": "bob"})
        assert r.status_code == 409
        detail = r.json()["detail"]
        assert detail["code"] == "cell_locked" and detail["held_by"] == "ada"
        assert "moments ago" in detail["message"]
        assert nb.cells()[a]["source"] == "x = 4"
        bob.send("cell_source_update", cell_id=a, source="x = 6", author="bob", force=True)
        bob.recv_until(lambda f: of("dag_update")(f) and "source" not in entry(f, a))  # his
        assert nb.cells()[a]["source"] == "x = 6"
        # now bob holds it: a REST edit by ada is refused, forced it goes through
        r = nb.client.put(f"{nb.base}/cells/{a}", json={"source": "x = 7", "author": "ada"})
        assert r.status_code == 409
        r = nb.client.put(
            f"{nb.base}/cells/{a}", json={"source": "x = 7", "author": "ada", "force": True}
        )
        assert r.status_code == 200 and r.json()["cell"]["source"] == "x = 7"


def test_the_lock_window_is_a_setting(make_nb, settings) -> None:
    settings.notebook_cell_lock_s = 0.0
    nb = make_nb()
    a = nb.add("x = 1")
    for author in ("ada", "bob"):
        r = nb.client.put(f"{nb.base}/cells/{a}", json={"source": "x = 2", "author": author})
        assert r.status_code == 200


def presence_of(ws: Socket, who: dict | None = None) -> dict:
    """The next presence frame (with ``who``: the first showing those identities on those
    cells)."""

    def match(f: dict) -> bool:
        if f["type"] != "presence":
            return False
        seen = {p["principal"]: p["focused_cell_id"] for p in f["payload"]["principals"]}
        return who is None or seen == who

    return ws.recv_until(match)[-1]["payload"]


def test_presence_on_join_focus_and_leave(nb: Nb) -> None:
    a = nb.add("x = 1")
    with nb.socket() as ws1:
        first = presence_of(ws1)
        assert first["you"] == "local"
        since = first["principals"][0]["since"]
        assert first["principals"] == [
            {"principal": "local", "focused_cell_id": None, "since": since}
        ]
        with nb.socket() as ws2:
            presence_of(ws1)  # ws2 joined
            ws2.send("cell_focus", cell_id=a, author="bob")
            assert presence_of(ws1, {"local": None, "bob": a})["you"] == "local"
            assert presence_of(ws2, {"local": None, "bob": a})["you"] == "bob"  # its own
            ws2.send("cell_focus", cell_id="nope")  # unknown: ignored
            ws2.send("cell_focus", cell_id=a, author="bob")  # no change: no frame
            assert not [f for f in ws1.quiet() if f["type"] == "presence"]
            ws2.send("cell_focus", cell_id=None, author="bob")
            presence_of(ws1, {"local": None, "bob": None})
        left = presence_of(ws1)  # ws2 left
        assert [p["principal"] for p in left["principals"]] == ["local"]


def test_profiling_summary(nb: Nb) -> None:
    a = nb.add("import pyarrow as pa\nt = pa.table({'v': list(range(100))})")
    b = nb.add("n = t.num_rows")
    nb.run(b)  # a and b run
    nb.run(b)  # a cache hit for b
    with nb.socket() as ws:
        ws.send("profiling_request")
        summary = ws.recv_until(of("profiling_summary"))[-1]["payload"]
    profiles = {p["cell_id"]: p for p in summary["cell_profiles"]}
    assert profiles[a]["cell_name"] == "pa" and profiles[b]["cell_name"] == "n"
    assert profiles[a]["execution_count"] == 1 and profiles[b]["execution_count"] == 2
    assert profiles[b]["cache_hit"] is True and profiles[a]["artifact_uri"].startswith("strata://")
    assert summary["cache_hits"] == 1 and summary["cache_misses"] == 2
    assert summary["total_artifact_bytes"] > 0
    assert summary["team_contributors"] == [] and summary["team_cache_hits"] == 0
    assert set(summary) >= {"total_execution_ms", "cache_savings_ms", "team_promotions"}


def test_impact_preview_uses_the_cascade_planner(nb: Nb) -> None:
    a = nb.add("x = 1")
    b = nb.add("y = x + 1")
    c = nb.add("z = y + 1")
    nb.run(c)
    nb.edit(a, "x = 10")
    with nb.socket() as ws:
        ws.send("impact_preview_request", cell_id=b)
        preview = ws.recv_until(of("impact_preview"))[-1]["payload"]
        assert preview["target_cell_id"] == b
        assert [(s["cell_id"], s["reason"]) for s in preview["upstream"]] == [
            (a, "stale"),
            (b, "target"),
        ]
        assert preview["downstream"] == []  # c is stale already
        nb.run(b)
        ws.send("impact_preview_request", cell_id=a)
        preview = ws.recv_until(of("impact_preview"))[-1]["payload"]
        assert [s["cell_id"] for s in preview["upstream"]] == [a]
        assert [(d["cell_id"], d["new_status"]) for d in preview["downstream"]] == [
            (b, "stale:upstream")
        ]  # c never ran since: not ready, not listed
        ws.send("impact_preview_request", cell_id="nope")
        assert ws.recv_until(of("error"))[-1]["payload"] == {"error": "Cell nope not found"}


@pytest.mark.parametrize(
    ("kind", "feature"),
    [
        ("cell_run_tests", "Cell tests"),
        ("variant_set_active", "Cell variants"),
        ("variant_add", "Cell variants"),
        ("widget_update", "Widgets"),
        ("read_confirm", "Large-read confirmation"),
    ],
)
def test_features_this_server_lacks_answer_unsupported(nb: Nb, kind: str, feature: str) -> None:
    with nb.socket() as ws:
        ws.send(kind, package="pandas", cell_id="x")
        err = ws.recv_until(of("error"))[-1]["payload"]
    assert err["code"] == "unsupported"
    assert err["error"] == f"{feature} ({kind}) is not supported by this server"


def test_a_viewer_may_send_widget_updates_and_hears_unsupported(nb: Nb) -> None:
    with nb.socket("?role=viewer") as ws:
        ws.send("widget_update", cell_id="x", name="n", value=1)
        assert ws.recv_until(of("error"))[-1]["payload"]["code"] == "unsupported"
        ws.send("cell_source_update", cell_id="x", source="y")
        assert ws.recv_until(of("error"))[-1]["payload"]["code"] == "read_only"


def test_the_inspect_repl(nb: Nb, monkeypatch: pytest.MonkeyPatch) -> None:
    import notebooks.inspect

    monkeypatch.setattr(notebooks.inspect, "EVAL_TIMEOUT_S", 1.0)
    a = nb.add("import pyarrow as pa\nt = pa.table({'x': [1, 2, 3]})\nn = 5")
    b = nb.add("s = n + t.num_rows")
    assert nb.run(b)["status"] == "ready"
    with nb.socket() as ws:

        def ask(kind: str, **payload) -> dict:
            ws.send(kind, cell_id=b, **payload)
            return ws.recv_until(of("inspect_result"))[-1]["payload"]

        ws.send("inspect_eval", cell_id=b, expr="n")
        closed = ws.recv_until(of("inspect_result"))[-1]["payload"]
        assert closed == {"cell_id": b, "action": "eval", "ok": False, "expr": "n",
                          "error": "No inspect session open for this cell"}  # fmt: skip
        opened = ask("inspect_open")
        assert (opened["ok"], opened["result"], opened["action"]) == (True, "ready", "open")
        assert opened["stdout"].startswith("loaded: ") and {"n", "t"} <= set(
            opened["stdout"].removeprefix("loaded: ").split(", ")
        )
        got = ask("inspect_eval", expr="t.num_rows + n")
        assert (got["ok"], got["result"], got["type"], got["expr"]) == (
            True,
            "8",
            "int",
            "t.num_rows + n",
        )
        got = ask("inspect_eval", expr="print('hi')\nz = 40")
        assert got["ok"] and got["stdout"] == "hi\n" and "result" not in got
        assert ask("inspect_eval", expr="z + 2")["result"] == "42"
        failed = ask("inspect_eval", expr="1 / 0")
        assert failed["ok"] is False and failed["error"].startswith("ZeroDivisionError")
        big = ask("inspect_eval", expr="'x' * 50_000")
        assert len(big["result"]) < 10_100
        slow = ask("inspect_eval", expr="while True: pass")
        assert slow["ok"] is False and "timed out after 1s" in slow["error"]
        assert ask("inspect_eval", expr="n")["result"] == "5"  # interrupted, not lost
        assert ask("inspect_close") == {
            "cell_id": b,
            "action": "close",
            "ok": True,
            "result": "closed",
        }
        assert ask("inspect_eval", expr="n")["ok"] is False
    runner = nb.executions.get(nb.sid)
    assert runner is not None and runner.kernel_alive  # the session's kernel untouched
    assert nb.run(a)["cache_hit"] is True
