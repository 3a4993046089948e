"""The actions the REST facade needs: list, stats, build-status, name-status, lineage-graph,
and uploads deduplicated by a provenance stated in their metadata."""

from __future__ import annotations

import base64
import json

import pyarrow as pa
import pyarrow.flight as fl
import pytest

from catalog import demo_batch, write_demo_warehouse
from tests.fixtures_flight import GATES, act, gated_request
from tests.fixtures_iceberg import open_catalog


def scan(uri: str, **params: object) -> dict:
    return {"inputs": [uri], "transform": {"executor": "scan@v1", "params": params}}


def sql(uri: str, query: str) -> dict:
    return {"inputs": [uri], "transform": {"executor": "sql@v1", "params": {"sql": query}}}


def put(client: fl.FlightClient, table: pa.Table, metadata: dict, name: str | None = None) -> dict:
    command = json.dumps({"name": name, "metadata": metadata})
    writer, answers = client.do_put(fl.FlightDescriptor.for_command(command), table.schema)
    writer.write_table(table)
    writer.done_writing()
    buf = answers.read()
    writer.close()  # raises the server's error, if any
    return json.loads(buf.to_pybytes())


def flight_error(client: fl.FlightClient, name: str, body: dict) -> dict:
    with pytest.raises(fl.FlightError) as info:
        act(client, name, body)
    return json.loads(info.value.extra_info)


def test_list_sort_filter_and_name_prefix(flight_client, demo_table) -> None:
    uris = []
    for cols, name in ((["id"], "team/a"), (["value"], "team/b"), (["category"], "other")):
        request = {**scan(demo_table.uri, columns=cols), "name": name}
        res = act(flight_client, "materialize", request)
        uris.append(res["artifact_uri"])
    for uri in uris:
        _wait_ready(flight_client, uri)
    everything = act(flight_client, "list", {})
    assert everything["count"] == 3
    assert {x["artifact_uri"] for x in everything["artifacts"]} == set(uris)
    by_size = act(flight_client, "list", {"sort": "byte_size", "order": "asc"})["artifacts"]
    sizes = [x["byte_size"] for x in by_size]
    assert sizes == sorted(sizes)
    assert act(flight_client, "list", {"limit": 1})["count"] == 1
    team = act(flight_client, "list", {"name_prefix": "team/"})["artifacts"]
    assert sorted(n for x in team for n in x["names"]) == ["team/a", "team/b"]
    assert act(flight_client, "list", {"state": "failed"})["artifacts"] == []
    later = act(flight_client, "list", {"since": everything["artifacts"][0]["created_at"] + 1})
    assert later["artifacts"] == []
    err = flight_error(flight_client, "list", {"sort": "nope"})
    assert err["code"] == "invalid_argument"
    stats = act(flight_client, "stats", {})
    assert stats["artifacts"] == 3 and stats["names"] == 3 and stats["by_state"]["ready"]


def _wait_ready(client: fl.FlightClient, uri: str) -> dict:
    # A DoGet follows the build to its end: when it returns, the artifact is published.
    client.do_get(fl.Ticket(uri.encode())).read_all()
    return act(client, "status", {"artifact_uri": uri})


def test_build_status_by_build_and_stream_id(flight_client) -> None:
    res = act(flight_client, "materialize", {**gated_request("q1"), "mode": "artifact"})
    assert res["state"] == "building" and res["build_id"] == res["artifact_id"]
    building = act(flight_client, "build-status", {"build_id": res["build_id"]})
    assert building["state"] == "building" and building["artifact_uri"] == res["artifact_uri"]
    GATES["q1"].set()
    _wait_ready(flight_client, res["artifact_uri"])
    done = act(flight_client, "build-status", {"build_id": res["build_id"]})
    assert done["state"] == "ready" and done["row_count"] == 4000
    GATES["q1"].clear()  # the refresh is still building when it answers
    again = act(flight_client, "materialize", {**gated_request("q1"), "refresh": True})
    assert again["version"] == 2 and again["stream_id"] == f"{res['artifact_id']}.v2"
    second = act(flight_client, "build-status", {"build_id": again["stream_id"]})
    assert second["version"] == 2
    GATES["q1"].set()
    for missing in ("nope", f"{res['artifact_id']}.v9", "bad id!"):
        assert flight_error(flight_client, "build-status", {"build_id": missing})["code"] == (
            "not_found"
        )


def test_failed_build_status_has_error_message(flight_client) -> None:
    res = act(flight_client, "materialize", gated_request("f1", fail_at=0))
    with pytest.raises(fl.FlightError):
        flight_client.do_get(fl.Ticket(res["ticket"].encode())).read_all()
    status = act(flight_client, "build-status", {"build_id": res["stream_id"]})
    assert status["state"] == "failed" and "boom at batch 0" in status["error_message"]


def test_name_status_turns_stale_on_a_new_snapshot(flight_client, tmp_path) -> None:
    table = write_demo_warehouse(tmp_path / "wh", rows=1000, files=1)
    res = act(flight_client, "materialize", {**scan(table.uri), "name": "daily"})
    _wait_ready(flight_client, res["artifact_uri"])
    fresh = act(flight_client, "name-status", {"name": "daily"})
    assert fresh["is_stale"] is False and fresh["changed_inputs"] == []
    assert fresh["artifact_uri"] == res["artifact_uri"]
    assert list(fresh["input_versions"]) == [table.uri]
    catalog = open_catalog(tmp_path / "wh")
    catalog.load_table("db.events").append(demo_batch(1000, 1100))
    catalog.engine.dispose()
    stale = act(flight_client, "name-status", {"name": "daily"})
    assert stale["is_stale"] is True
    [change] = stale["changed_inputs"]
    assert change["input_uri"] == table.uri and change["old_version"] != change["new_version"]
    assert stale["stale_reason"].startswith("Rebuild needed: ")
    assert flight_error(flight_client, "name-status", {"name": "nope"})["code"] == "not_found"


def test_lineage_graph_and_dependents(flight_client, demo_table) -> None:
    base = act(flight_client, "materialize", scan(demo_table.uri, columns=["id"]))
    _wait_ready(flight_client, base["artifact_uri"])
    derived = act(flight_client, "materialize", sql(base["artifact_uri"], "select * from input0"))
    _wait_ready(flight_client, derived["artifact_uri"])
    graph = act(flight_client, "lineage-graph", {"artifact_uri": derived["artifact_uri"]})
    ids = {n["id"]: n for n in graph["nodes"]}
    assert ids[derived["artifact_uri"]]["depth"] == 0
    assert ids[base["artifact_uri"]]["type"] == "artifact"
    assert ids[demo_table.uri]["type"] == "table"
    assert {(e["source"], e["target"]) for e in graph["edges"]} == {
        (base["artifact_uri"], derived["artifact_uri"]),
        (demo_table.uri, base["artifact_uri"]),
    }
    shallow = act(
        flight_client, "lineage-graph", {"artifact_uri": derived["artifact_uri"], "max_depth": 1}
    )
    assert demo_table.uri not in {n["id"] for n in shallow["nodes"]}
    deps = act(flight_client, "dependents", {"artifact_uri": base["artifact_uri"], "limit": 5})
    assert [d["artifact_uri"] for d in deps["dependents"]] == [derived["artifact_uri"]]


def test_upload_with_stated_provenance_dedupes_and_records_lineage(
    flight_client, demo_table
) -> None:
    base = act(flight_client, "materialize", scan(demo_table.uri, columns=["id"]))
    _wait_ready(flight_client, base["artifact_uri"])
    meta = {"inputs": [base["artifact_uri"]], "transform": {"executor": "mine@v1", "params": {}}}
    first = put(flight_client, pa.table({"x": [1, 2, 3]}), meta, name="mine")
    assert first["deduplicated"] is False and first["name_uri"] == "strata://name/mine"
    assert first["executor"] == "mine@v1"
    # Same inputs and transform: the same artifact, whatever the bytes this time.
    second = put(flight_client, pa.table({"x": [9]}), meta)
    assert second["deduplicated"] is True and second["artifact_uri"] == first["artifact_uri"]
    other = put(flight_client, pa.table({"x": [1]}), {**meta, "transform": {"executor": "b@v1"}})
    assert other["artifact_uri"] != first["artifact_uri"]
    lineage = act(flight_client, "lineage", {"artifact_uri": first["artifact_uri"]})
    assert lineage["inputs"][0]["artifact_uri"] == base["artifact_uri"]
    bad = {"inputs": ["strata://artifact/nope@v=1"], "transform": {"executor": "x@v1"}}
    with pytest.raises(fl.FlightError, match="not found"):
        put(flight_client, pa.table({"x": [1]}), bad)
    with pytest.raises(fl.FlightError, match="transform"):
        put(flight_client, pa.table({"x": [1]}), {"transform": "x"})


def test_gc_reports_what_it_deleted(flight_client) -> None:
    res = act(flight_client, "materialize", gated_request("g1"))
    GATES["g1"].set()
    _wait_ready(flight_client, res["artifact_uri"])
    act(flight_client, "materialize", {**gated_request("g1"), "refresh": True})
    _wait_ready(flight_client, "strata://artifact/" + res["artifact_id"] + "@v=2")
    answer = act(flight_client, "gc", {})
    assert answer["deleted_count"] == 1 and answer["removed"] == [res["artifact_uri"]]
    assert answer["deleted_bytes"] > 0 and answer["store_bytes"] > 0


def test_status_has_schema_inputs_and_build_id(flight_client, demo_table) -> None:
    res = act(flight_client, "materialize", scan(demo_table.uri, columns=["id"]))
    status = _wait_ready(flight_client, res["artifact_uri"])
    schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(status["arrow_schema"])))
    assert schema.names == ["id"]
    assert list(status["input_versions"]) == [demo_table.uri]
    assert status["build_id"] == res["artifact_id"]
