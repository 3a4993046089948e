"""The Python client against an in-process server."""

from __future__ import annotations

import pyarrow as pa
import pytest

from flight import connect
from foundation import errors
from tests.fixtures_flight import DEMO_ROWS


def test_client_round_trip(server, demo_table) -> None:
    with connect(server.location) as q:
        res = q.materialize(demo_table.uri, params={"columns": ["id", "category"]}, name="ev")
        assert res["hit"] is False
        table = q.fetch(res)
        assert table.num_rows == DEMO_ROWS
        assert q.materialize(demo_table.uri, params={"columns": ["id", "category"]})["hit"]
        assert q.explain(demo_table.uri, params={"columns": ["id", "category"]})["would_hit"]
        assert q.fetch(res["artifact_uri"]).equals(table)
        assert q.to_polars("strata://name/ev").height == DEMO_ROWS
        assert sum(b.num_rows for b in q.stream(demo_table.uri)) == DEMO_ROWS

        up = q.put(pa.table({"x": [1, 2, 3]}), name="up", metadata={"from": "test"})
        assert up["name_uri"] == "strata://name/up" and q.fetch("strata://name/up").num_rows == 3
        assert {n["name"] for n in q.list_names()} == {"ev", "up"}
        q.set_name("alias", up["artifact_uri"])
        assert q.get_name("alias")["artifact_uri"] == up["artifact_uri"]
        q.delete_name("alias")
        assert q.status(res["artifact_uri"])["state"] == "ready"
        assert q.lineage(res["artifact_uri"])[0]["input_uri"] == demo_table.uri
        assert q.dependents(res["artifact_uri"]) == []
        assert any(e["name"] == "scan@v1" for e in q.executors())
        assert q.health()["status"] == "ok"
        q.delete(up["artifact_uri"])
        usage = q.usage()
        assert usage["stored_versions"] >= 1 and usage["needed_count"] >= 1  # "ev" is named
        would = q.gc(max_idle_days=0, dry_run=True)
        assert would["dry_run"] is True and res["artifact_uri"] not in {
            c["artifact_uri"] for c in would["collected"]}  # fmt: skip
        assert "removed" in q.gc()
        with pytest.raises(errors.NotFound):
            q.cancel("0" * 32)


def test_client_errors_are_typed(make_server) -> None:
    server = make_server(token="t")
    with connect(server.location, token="t") as q:
        with pytest.raises(errors.NotFound) as info:
            q.get_name("missing")
        assert info.value.code == "not_found" and info.value.detail == {"name": "missing"}
        with pytest.raises(errors.InvalidArgument):
            q.materialize("file:///x#a.b", executor="nope@v1")
        with pytest.raises(errors.NotFound):
            q.fetch("strata://name/missing")
    with connect(server.location, token="wrong") as q, pytest.raises(errors.Unauthenticated):
        q.health()


def test_client_status_waits_for_a_refreshed_build(server, demo_table) -> None:
    with connect(server.location) as q:
        q.fetch(q.materialize(demo_table.uri))  # v1 ready
        again = q.materialize(demo_table.uri, refresh=True)
        status = q.status(again["artifact_uri"], wait_seconds=30)
        assert status["state"] == "ready" and status["row_count"] == DEMO_ROWS
        assert status["artifact_uri"] == again["artifact_uri"] and status["version"] == 2
