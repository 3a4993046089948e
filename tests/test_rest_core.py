"""The core REST routes (API.md §12, docs/rest.md) through a real uvicorn and a real Flight
server: every route, every error status, streaming formats, disconnects, auth and metrics."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import duckdb
import httpx
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.flight as fl
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from flight import connect
from tests.fixtures_flight import DEMO_ROWS, GATES, gated_request
from tests.polling import wait_until
from tests.servers import stalled_get


def scan(uri: str, **params: object) -> dict:
    return {"inputs": [uri], "transform": {"executor": "scan@v1", "params": params}}


def ipc_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def read_ipc(content: bytes) -> pa.Table:
    return ipc.open_stream(pa.BufferReader(content)).read_all()


class HttpBody(io.RawIOBase):
    """A streamed HTTP body as a file, read as it arrives (for DuckDB and pyarrow)."""

    def __init__(self, response: httpx.Response) -> None:
        self._chunks = response.iter_raw()
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            self._pending = next(self._chunks, b"")
            if not self._pending:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def ready_artifact(http: httpx.Client, uri: str, **params: object) -> dict:
    """Materialize in stream mode and read the stream to its end: the artifact is ready."""
    res = http.post("/v1/materialize", json=scan(uri, **params)).json()
    assert http.get(res["stream_url"]).status_code == 200
    again = http.post("/v1/materialize", json={**scan(uri, **params), "mode": "artifact"}).json()
    assert again["state"] == "ready", again
    aid, version = again["artifact_uri"].removeprefix("strata://artifact/").split("@v=")
    return {**again, "artifact_id": aid, "version": int(version)}


def expect(response: httpx.Response, status: int, contains: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert "detail" in body
    if contains is not None:
        assert contains in json.dumps(body["detail"]), body
    return body


# --- materialize and streams ------------------------------------------------------
def test_materialize_stream_mode_miss_then_hit(rest, demo_table) -> None:
    http = rest.http
    miss = http.post("/v1/materialize", json=scan(demo_table.uri, columns=["id", "value"]))
    assert miss.status_code == 200, miss.text
    body = miss.json()
    assert set(body) == {"hit", "artifact_uri", "state", "build_spec", "build_id", "stream_id",
                         "stream_url"}  # fmt: skip
    assert body["hit"] is False and body["state"] in ("building", "ready")
    if body["state"] == "building":
        assert body["stream_url"] == f"/v1/streams/{body['stream_id']}"
    streamed = http.get(body["stream_url"])
    assert streamed.status_code == 200
    assert streamed.headers["content-type"] == "application/vnd.apache.arrow.stream"
    assert streamed.headers["x-strata-artifact-uri"] == body["artifact_uri"]
    table = read_ipc(streamed.content)
    assert table.num_rows == DEMO_ROWS and table.column_names == ["id", "value"]
    hit = http.post("/v1/materialize", json=scan(demo_table.uri, columns=["id", "value"])).json()
    aid, version = body["artifact_uri"].removeprefix("strata://artifact/").split("@v=")
    assert hit == {"hit": True, "artifact_uri": body["artifact_uri"], "state": "ready",
                   "build_spec": None, "build_id": None, "stream_id": None,
                   "stream_url": f"/v1/artifacts/{aid}/v/{version}/data"}  # fmt: skip
    data = http.get(hit["stream_url"])
    assert data.headers["x-arrow-row-count"] == str(DEMO_ROWS)
    assert read_ipc(data.content).equals(table)
    artifact_mode = {**scan(demo_table.uri, columns=["id", "value"]), "mode": "artifact"}
    assert http.post("/v1/materialize", json=artifact_mode).json()["stream_url"] is None


def test_stream_follows_a_live_build(rest) -> None:
    res = rest.http.post("/v1/materialize", json=gated_request("live1")).json()
    assert res["state"] == "building" and res["stream_id"]
    with rest.http.stream("GET", res["stream_url"]) as response:
        assert response.status_code == 200
        assert "x-arrow-row-count" not in response.headers  # not known while building
        chunks = response.iter_bytes()
        first = next(chunks)  # the first batch arrives before the build ends
        GATES["live1"].set()
        content = first + b"".join(chunks)
    assert read_ipc(content).num_rows == 4000


def test_artifact_mode_polls_the_build(rest) -> None:
    http = rest.http
    res = http.post("/v1/materialize", json={**gated_request("poll1"), "mode": "artifact"}).json()
    assert res["state"] == "pending" and res["build_id"] and res["stream_url"] is None
    build = http.get(f"/v1/artifacts/builds/{res['build_id']}").json()
    assert build["state"] == "building" and build["artifact_uri"] == res["artifact_uri"]
    GATES["poll1"].set()
    assert http.get(f"/v1/streams/{res['build_id']}").status_code == 200  # to the end
    assert http.get(f"/v1/builds/{res['build_id']}").json()["state"] == "ready"


def ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def test_cancel_a_running_build(rest) -> None:
    http = rest.http
    res = http.post("/v1/materialize", json={**gated_request("cancel1"), "mode": "artifact"}).json()
    answer = ok(http.post(f"/v1/artifacts/builds/{res['build_id']}/cancel"))
    assert answer["cancelled"] is True and answer["state"] == "failed"
    assert answer["artifact_uri"] == res["artifact_uri"]
    assert http.get(f"/v1/artifacts/builds/{res['build_id']}").json()["state"] == "failed"
    again = ok(http.post(f"/v1/builds/{res['build_id']}/cancel"))
    assert again["cancelled"] is False and again["state"] == "failed"
    rebuilt = http.post("/v1/materialize", json={**gated_request("cancel1"), "mode": "artifact"})
    assert rebuilt.json()["hit"] is False  # nothing was published: it builds again
    GATES["cancel1"].set()
    expect(http.post("/v1/artifacts/builds/nope/cancel"), 404, "nope")
    expect(http.post(f"/v1/artifacts/builds/{res['build_id']}/cancel?wait_seconds=-1"), 422)


def test_usage(rest) -> None:
    http = rest.http
    keep, _ = upload(http, pa.table({"x": [1, 2, 3]}))
    upload(http, pa.table({"y": [1.0]}))
    ok(http.post("/v1/names", json={"name": "k", "artifact_id": keep, "version": 1}))
    usage = ok(http.get("/v1/artifacts/usage"))
    assert usage["stored_versions"] == 2 and usage["needed_count"] == 1
    assert (
        usage["unreferenced_count"] == 1 and 0 < usage["unreferenced_bytes"] < usage["total_bytes"]
    )
    assert usage["names"] == 1 and "total_versions" in usage


def test_failed_build(rest) -> None:
    res = rest.http.post("/v1/materialize", json=gated_request("fail1", fail_at=0)).json()
    try:
        first = rest.http.get(res["stream_url"])
    except httpx.HTTPError:  # failed mid-body: the body ends without end-of-stream
        pass
    else:  # failed before the stream started: an error status
        expect(first, 500, "boom")
    status = rest.http.get(f"/v1/artifacts/builds/{res['stream_id']}").json()
    assert status["state"] == "failed" and "boom" in status["error_message"]
    expect(rest.http.get(res["stream_url"]), 500, "boom")


@pytest.mark.parametrize("executor", ["sql@v1", "duckdb_sql@v1"])
def test_materialize_sql(rest, demo_table, executor) -> None:
    request = {
        "inputs": [demo_table.uri],
        "transform": {"executor": executor, "params": {"sql": "select count(*) n from input0"}},
        "mode": "artifact",
    }
    res = rest.http.post("/v1/materialize", json=request).json()
    if res["state"] == "pending":
        rest.http.get(f"/v1/streams/{res['build_id']}")
    aid, version = res["artifact_uri"].removeprefix("strata://artifact/").split("@v=")
    table = read_ipc(rest.http.get(f"/v1/artifacts/{aid}/v/{version}/data").content)
    assert table.to_pylist() == [{"n": DEMO_ROWS}]


# --- artifacts ----------------------------------------------------------------------
def test_artifact_info_data_formats_and_readers(rest, demo_table) -> None:
    art = ready_artifact(rest.http, demo_table.uri, columns=["id", "category"])
    base = f"/v1/artifacts/{art['artifact_id']}/v/{art['version']}"
    info = rest.http.get(base).json()
    assert info["artifact_id"] == art["artifact_id"] and info["version"] == art["version"]
    assert info["state"] == "ready" and info["row_count"] == DEMO_ROWS and info["byte_size"] > 0
    assert isinstance(info["created_at"], float) and len(info["provenance_hash"]) == 64
    schema = ipc.read_schema(pa.py_buffer(__import__("base64").b64decode(info["arrow_schema"])))
    assert schema.names == ["id", "category"]
    assert json.loads(info["transform_spec"])["executor"] == "scan@v1"
    assert list(json.loads(info["input_versions"])) == [demo_table.uri]
    table = read_ipc(rest.http.get(f"{base}/data").content)
    csv = rest.http.get(f"{base}/data", params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert 'filename="' in csv.headers["content-disposition"]
    assert pacsv.read_csv(io.BytesIO(csv.content)).num_rows == DEMO_ROWS
    parquet = rest.http.get(f"{base}/data", params={"format": "parquet"})
    assert pq.read_table(io.BytesIO(parquet.content)).equals(table)
    # polars and DuckDB read the HTTP stream as it arrives
    with rest.http.stream("GET", f"{base}/data") as response:
        frame = pl.read_ipc_stream(io.BytesIO(response.read()))
    assert frame.height == DEMO_ROWS
    with rest.http.stream("GET", f"{base}/data") as response:
        reader = ipc.open_stream(io.BufferedReader(HttpBody(response)))
        con = duckdb.connect()
        con.register("served", reader)
        assert con.execute("select count(distinct id) from served").fetchall() == [(DEMO_ROWS,)]
    expect(rest.http.get(f"{base}/data", params={"format": "xlsx"}), 400, "unknown format")


def test_lineage_dependents_delete(rest, demo_table) -> None:
    http = rest.http
    base = ready_artifact(http, demo_table.uri, columns=["id"])
    transform = {"executor": "sql@v1", "params": {"sql": "select * from input0"}}
    request = {"inputs": [base["artifact_uri"]], "mode": "artifact", "transform": transform}
    derived = http.post("/v1/materialize", json=request).json()
    if derived["build_id"]:
        http.get(f"/v1/streams/{derived['build_id']}")
    did, dver = derived["artifact_uri"].removeprefix("strata://artifact/").split("@v=")
    lineage = http.get(f"/v1/artifacts/{did}/v/{dver}/lineage", params={"max_depth": 5}).json()
    expected = {derived["artifact_uri"], base["artifact_uri"], demo_table.uri}
    assert {n["id"] for n in lineage["nodes"]} == expected
    assert len(lineage["edges"]) == 2
    # strata-client sends any max_depth: deeper than 100 is capped, not refused
    deep = http.get(f"/v1/artifacts/{did}/v/{dver}/lineage", params={"max_depth": 1000})
    assert deep.status_code == 200 and deep.json() == lineage
    expect(http.get(f"/v1/artifacts/{did}/v/{dver}/lineage", params={"max_depth": 0}), 422)
    bpath = f"/v1/artifacts/{base['artifact_id']}/v/{base['version']}"
    deps = http.get(f"{bpath}/dependents", params={"limit": 10}).json()
    assert [d["artifact_uri"] for d in deps["dependents"]] == [derived["artifact_uri"]]
    deleted = http.delete(f"/v1/artifacts/{did}/v/{dver}").json()
    assert deleted["status"] == "deleted" and deleted["artifact_uri"] == derived["artifact_uri"]
    expect(http.get(f"/v1/artifacts/{did}/v/{dver}"), 404, "not found")
    expect(http.delete(f"/v1/artifacts/{did}/v/{dver}"), 404)


def test_list_stats_and_gc(rest, demo_table) -> None:
    http = rest.http
    a = ready_artifact(http, demo_table.uri, columns=["id"])
    b = ready_artifact(http, demo_table.uri, columns=["value"])
    http.post("/v1/names", json={"name": "keep/b", "artifact_id": b["artifact_id"],
                                 "version": b["version"]})  # fmt: skip
    listed = http.get("/v1/artifacts", params={"sort": "byte_size", "order": "asc"}).json()
    assert listed["count"] == 2 and listed["limit"] == 100
    sizes = [x["byte_size"] for x in listed["artifacts"]]
    assert sizes == sorted(sizes)
    assert http.get("/v1/artifacts", params={"limit": 1}).json()["count"] == 1
    named = http.get("/v1/artifacts", params={"name_prefix": "keep/"}).json()["artifacts"]
    assert [x["artifact_uri"] for x in named] == [b["artifact_uri"]]
    assert http.get("/v1/artifacts", params={"state": "failed"}).json()["artifacts"] == []
    assert http.get("/v1/artifacts", params={"since": time.time() + 60}).json()["count"] == 0
    assert http.get("/v1/artifacts", params={"sort": "nope"}).status_code == 422
    assert http.get("/v1/artifacts", params={"limit": 0}).status_code == 422
    big = http.get("/v1/artifacts", params={"limit": 50_000})  # strata-client sends any limit
    assert big.status_code == 200 and big.json()["limit"] == 10_000 and big.json()["count"] == 2
    stats = http.get("/v1/artifacts/stats").json()
    assert stats["artifacts"] == 2 and stats["names"] == 1
    gc = http.post("/v1/artifacts/gc", params={"collect_latest": False, "dry_run": False})
    assert gc.status_code == 200 and gc.json()["deleted_count"] == 0
    evicted = http.post("/v1/artifacts/gc", params={"max_bytes": 0}).json()
    b_info = http.get(f"/v1/artifacts/{b['artifact_id']}/v/{b['version']}").json()
    assert evicted["evicted"] == [a["artifact_uri"]]
    assert evicted["store_bytes"] == b_info["byte_size"]


# --- gc (strata-client's garbage_collect) ---------------------------------------------
def collected(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [c["artifact_uri"] for c in answer.json()["collected"]]


def sql_over(http: httpx.Client, uri: str) -> str:
    sql = {"executor": "duckdb_sql@v1", "params": {"sql": "select 1 x from input0"}}
    body = {"inputs": [uri], "mode": "artifact", "transform": sql}
    res = http.post("/v1/materialize", json=body).json()
    if res["state"] != "ready":
        assert wait_until(lambda: http.get(f"/v1/builds/{res['build_id']}").json()["state"]
                          == "ready")  # fmt: skip
    return res["artifact_uri"]


def exists(http: httpx.Client, uri: str) -> bool:
    aid, version = uri.removeprefix("strata://artifact/").split("@v=")
    return http.get(f"/v1/artifacts/{aid}/v/{version}").status_code == 200


def test_gc_dry_run_lists_what_a_run_deletes_and_spares_names_and_lineage(rest, demo_table) -> None:
    http = rest.http
    a = ready_artifact(http, demo_table.uri, columns=["id"])["artifact_uri"]
    b = ready_artifact(http, demo_table.uri, columns=["value"])["artifact_uri"]
    c = ready_artifact(http, demo_table.uri, columns=["category"])["artifact_uri"]
    mid = sql_over(http, b)
    top = sql_over(http, mid)
    aid, version = top.removeprefix("strata://artifact/").split("@v=")
    http.post("/v1/names", json={"name": "reports/top", "artifact_id": aid, "version": version})
    dry = http.post("/v1/artifacts/gc", params={"max_idle_days": 0, "dry_run": True})
    assert sorted(collected(dry)) == sorted([a, c])  # b and mid: the named top depends on them
    body = dry.json()
    assert body["dry_run"] is True and body["deleted_count"] == 2 and body["deleted_bytes"] > 0
    assert all(exists(http, u) for u in (a, b, c, mid, top))
    run = http.post("/v1/artifacts/gc", params={"max_idle_days": 0})
    assert collected(run) == collected(dry)
    assert run.json()["store_bytes"] == body["store_bytes"] - body["deleted_bytes"]
    assert not exists(http, a) and not exists(http, c)
    assert all(exists(http, u) for u in (b, mid, top))
    assert collected(http.post("/v1/artifacts/gc", params={"max_idle_days": 0})) == []
    http.delete("/v1/names/reports/top")
    assert sorted(collected(http.post("/v1/artifacts/gc", params={"max_idle_days": 0}))) == sorted(
        [b, mid, top]
    )


def test_gc_idle_limits_max_bytes_and_configured_retention(make_rest, demo_table) -> None:
    rest = make_rest(gc_min_idle_s=3600.0)
    http = rest.http
    made = [ready_artifact(http, demo_table.uri, columns=[col]) for col in ("id", "value", "ts")]
    uris = [m["artifact_uri"] for m in made]
    gc = http.post("/v1/artifacts/gc", params={"max_idle_days": 0})
    # configured: nothing used within the hour is collected
    assert collected(gc) == [] and gc.json()["retention"]["min_idle_seconds"] == 3600.0
    assert gc.json()["retention"]["max_idle_days"] == 0
    assert collected(http.post("/v1/artifacts/gc", params={"max_idle_days": 0,
                                                           "min_idle_seconds": 0,
                                                           "dry_run": True})) == uris  # fmt: skip
    bare = http.post("/v1/artifacts/gc", params={"min_idle_seconds": 0})  # no idle limit set
    assert collected(bare) == [] and bare.json()["retention"]["max_idle_days"] is None
    # max_bytes: least recently used first, until the store is at 80% of it
    http.get(f"/v1/artifacts/{made[0]['artifact_id']}/v/1/data").read()  # made[0] is recent now
    total = sum(http.get(f"/v1/artifacts/{m['artifact_id']}/v/1").json()["byte_size"] for m in made)
    query = {"max_bytes": total, "min_idle_seconds": 0, "dry_run": True}
    report = http.post("/v1/artifacts/gc", params=query).json()
    assert report["target_bytes"] == total * 80 // 100
    assert report["store_bytes"] - report["deleted_bytes"] <= total * 0.8
    assert {c["reason"] for c in report["collected"]} == {"bytes"}
    assert [c["artifact_uri"] for c in report["collected"]] == [uris[1]]  # the LRU one
    assert collected(http.post("/v1/artifacts/gc", params={**query, "max_bytes": total * 2})) == []
    report = http.post("/v1/artifacts/gc", params={**query, "max_bytes": 0, "dry_run": False})
    assert sorted(collected(report)) == sorted(uris) and report.json()["store_bytes"] == 0


def test_gc_keeps_current_cell_outputs_unless_collect_latest(rest) -> None:
    http = rest.http
    cell = {"notebook_id": "nb", "cell_id": "c1", "variable": "df", "inputs": []}

    def upload(value: int, **meta: object) -> str:
        answer = http.put("/v1/artifacts", json={**meta, "data": {"x": [value]}})
        assert answer.status_code == 200, answer.text
        return answer.json()["artifact_uri"]

    old = upload(1, **cell, cell_provenance="p1")
    current = upload(2, **cell, cell_provenance="p2")  # the cell ran again
    other = upload(3, **{**cell, "variable": "other"}, cell_provenance="p2")
    loose = upload(4)  # an upload that is no cell's output
    params = {"max_idle_days": 0, "dry_run": True}
    assert sorted(collected(http.post("/v1/artifacts/gc", params=params))) == sorted([old, loose])
    everything = collected(http.post("/v1/artifacts/gc", params={**params, "collect_latest": True}))
    assert sorted(everything) == sorted([old, current, other, loose])
    assert sorted(collected(http.post("/v1/artifacts/gc", params={"max_idle_days": 0}))) == sorted(
        [old, loose]
    )
    assert exists(http, current) and exists(http, other) and not exists(http, old)


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"max_idle_days": -1}, "max_idle_days", "greater than or equal to 0"),
        ({"max_idle_days": "nan"}, "max_idle_days", "finite number"),
        ({"max_idle_days": "inf"}, "max_idle_days", "finite number"),
        ({"max_idle_days": "soon"}, "max_idle_days", "valid number"),
        ({"max_bytes": -5}, "max_bytes", "greater than or equal to 0"),
        ({"max_bytes": 1.5}, "max_bytes", "valid integer"),
        ({"min_idle_seconds": -0.1}, "min_idle_seconds", "greater than or equal to 0"),
        ({"dry_run": "maybe"}, "dry_run", "valid boolean"),
        ({"collect_latest": "perhaps"}, "collect_latest", "valid boolean"),
    ],
)
def test_gc_refuses_bad_values(rest, demo_table, params: dict, field: str, message: str) -> None:
    kept = ready_artifact(rest.http, demo_table.uri, columns=["id"])
    body = expect(rest.http.post("/v1/artifacts/gc", params=params), 422)
    assert [e["loc"] for e in body["detail"]] == [["query", field]]
    assert message in body["detail"][0]["msg"]
    assert exists(rest.http, kept["artifact_uri"])


def test_upload_multipart_and_json(rest, demo_table) -> None:
    http = rest.http
    meta = {"inputs": [], "transform": {"executor": "local@v1", "params": {"k": 1}}, "name": "up"}
    table = pa.table({"x": [1, 2, 3]})
    files = {
        "metadata": ("metadata.json", json.dumps(meta), "application/json"),
        "data": ("data.arrow", ipc_bytes(table), "application/vnd.apache.arrow.stream"),
    }
    first = http.put("/v1/artifacts", files=files)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["hit"] is False and body["name_uri"] == "strata://name/up" and body["byte_size"]
    again = http.put("/v1/artifacts", files=files).json()
    assert again["hit"] is True and again["artifact_uri"] == body["artifact_uri"]
    aid, version = body["artifact_uri"].removeprefix("strata://artifact/").split("@v=")
    assert read_ipc(http.get(f"/v1/artifacts/{aid}/v/{version}/data").content).equals(table)
    as_json = {"inputs": [], "transform": {"executor": "j@v1"}, "data": {"a": [1, 2], "b": [3, 4]}}
    j = http.put("/v1/artifacts", json=as_json)
    assert j.status_code == 200, j.text
    jid, jver = j.json()["artifact_uri"].removeprefix("strata://artifact/").split("@v=")
    assert read_ipc(http.get(f"/v1/artifacts/{jid}/v/{jver}/data").content).to_pydict() == {
        "a": [1, 2], "b": [3, 4]}  # fmt: skip
    bad = {"metadata": files["metadata"], "data": ("d", b"not arrow", "application/octet-stream")}
    expect(http.put("/v1/artifacts", files=bad), 400, "Arrow IPC")
    assert http.put("/v1/artifacts", files={"metadata": files["metadata"]}).status_code == 422
    bad_meta = {"metadata": ("m", "[1]", "application/json"), "data": files["data"]}
    assert http.put("/v1/artifacts", files=bad_meta).status_code == 422
    missing_input = {**meta, "inputs": ["strata://artifact/nope@v=1"]}
    gone = {"metadata": ("m", json.dumps(missing_input), "application/json"), "data": files["data"]}
    expect(http.put("/v1/artifacts", files=gone), 404)
    expect(http.put("/v1/artifacts", content=b"x", headers={"content-type": "text/plain"}), 400)


def test_data_round_trips_every_buffer_kind(rest) -> None:
    # Dictionaries (sent before the batches using them), validity bitmaps, string
    # offsets, a column large enough to go to the socket as a view, and a tiny one
    # joined with the message headers: the IPC body must decode to the same table.
    n = 300_000
    table = pa.table(
        {
            "tag": pa.array(["a", "b", None, "c"] * (n // 4)).dictionary_encode(),
            "flag": pa.array([True, None, False] * (n // 3)),
            "name": pa.array([f"row {i}" if i % 7 else None for i in range(n)]),
            "big": pa.array(range(n), pa.int64()),
        }
    )
    aid, version = upload(rest.http, table)
    got = read_ipc(rest.http.get(f"/v1/artifacts/{aid}/v/{version}/data").content)
    assert got.equals(table)
    tiny = pa.table({"x": pa.array([1], pa.int8())})
    tid, tver = upload(rest.http, tiny)
    assert read_ipc(rest.http.get(f"/v1/artifacts/{tid}/v/{tver}/data").content).equals(tiny)


def upload(http: httpx.Client, table: pa.Table) -> tuple[str, str]:
    meta = {"inputs": [], "transform": {"executor": "local@v1", "params": {"n": table.num_rows}}}
    files = {
        "metadata": ("metadata.json", json.dumps(meta), "application/json"),
        "data": ("data.arrow", ipc_bytes(table), "application/vnd.apache.arrow.stream"),
    }
    answer = http.put("/v1/artifacts", files=files)
    assert answer.status_code == 200, answer.text
    aid, version = answer.json()["artifact_uri"].removeprefix("strata://artifact/").split("@v=")
    return aid, version


def test_explain_and_name_status(rest, tmp_path) -> None:
    from catalog import demo_batch, write_demo_warehouse
    from tests.fixtures_iceberg import open_catalog

    http = rest.http
    table = write_demo_warehouse(tmp_path / "wh", rows=500, files=1)
    cold = http.post("/v1/artifacts/explain-materialize", json=scan(table.uri)).json()
    assert cold["cache_hit"] is False and cold["execution"] == "server" and not cold["is_stale"]
    art = http.post("/v1/materialize", json={**scan(table.uri), "name": "daily"}).json()
    http.get(art["stream_url"])
    warm = http.post("/v1/artifacts/explain-materialize", json={**scan(table.uri), "name": "daily"})
    assert warm.json()["cache_hit"] is True and warm.json()["artifact_uri"] == art["artifact_uri"]
    status = http.get("/v1/artifacts/names/daily/status").json()
    assert status["is_stale"] is False and status["artifact_uri"] == art["artifact_uri"]
    catalog = open_catalog(tmp_path / "wh")
    catalog.load_table("db.events").append(demo_batch(500, 510))
    catalog.engine.dispose()
    stale = http.get("/v1/artifacts/names/daily/status").json()
    assert stale["is_stale"] is True and stale["changed_inputs"][0]["input_uri"] == table.uri
    explained = http.post(
        "/v1/artifacts/explain-materialize", json={**scan(table.uri), "name": "daily"}
    ).json()
    assert explained["cache_hit"] is False and explained["is_stale"] is True
    expect(http.get("/v1/artifacts/names/nope/status"), 404, "nope")


def test_names(rest, demo_table) -> None:
    http = rest.http
    art = ready_artifact(http, demo_table.uri, columns=["id"])
    target = {"artifact_id": art["artifact_id"], "version": art["version"]}
    made = http.post("/v1/names", json={"name": "team/daily", **target}).json()
    assert made == {"name": "team/daily", "name_uri": "strata://name/team/daily",
                    "artifact_uri": art["artifact_uri"]}  # fmt: skip
    got = http.get("/v1/names/team/daily").json()
    assert got["artifact_uri"] == art["artifact_uri"] and got["version"] == art["version"]
    assert isinstance(got["updated_at"], float)
    names = http.get("/v1/names").json()["names"]
    assert [(n["name"], n["artifact_uri"]) for n in names] == [("team/daily", art["artifact_uri"])]
    assert http.delete("/v1/names/team/daily").json() == {"status": "deleted", "name": "team/daily"}
    expect(http.get("/v1/names/team/daily"), 404, "Name 'team/daily' not found")
    expect(http.delete("/v1/names/team/daily"), 404)
    expect(http.post("/v1/names", json={"name": "../x", **target}), 400)
    expect(http.post("/v1/names", json={"name": "x", "artifact_id": "nope", "version": 1}), 404)
    assert http.post("/v1/names", json={"name": "x"}).status_code == 422


# --- errors -------------------------------------------------------------------------
def test_errors_are_statuses_never_500(rest, demo_table) -> None:
    http = rest.http
    expect(http.post("/v1/materialize", json=scan("s3://bucket/t#a.b")), 400)
    expect(http.post("/v1/materialize", json=scan(demo_table.uri, columns=["nope"])), 400)
    expect(http.post("/v1/materialize", json={"inputs": [], "transform": {"executor": "x@v9"}}),
           400, "x@v9")  # fmt: skip
    expect(http.post("/v1/materialize", json=scan(demo_table.uri.replace("events", "nope"))), 404)
    expect(http.post("/v1/materialize", json={"inputs": []}), 422)
    expect(http.post("/v1/materialize", content=b"{not json",
                     headers={"content-type": "application/json"}), 422)  # fmt: skip
    expect(http.get("/v1/artifacts/abc/v/notint"), 422)
    expect(http.get("/v1/artifacts/abc/v/0"), 400)
    expect(http.get("/v1/artifacts/bad id!/v/1"), 400)
    expect(http.get("/v1/artifacts/nope/v/1/data"), 404, "not found")
    expect(http.get("/v1/streams/nope"), 404, "Stream nope not found")
    expect(http.get("/v1/artifacts/builds/nope"), 404)
    # a building artifact: its data is not ready (400), it cannot be named or deleted (409)
    res = http.post("/v1/materialize", json={**gated_request("busy1"), "mode": "artifact"}).json()
    aid = res["build_id"]
    expect(http.get(f"/v1/artifacts/{aid}/v/1/data"), 400, "Artifact is not ready (state=building)")
    expect(http.post("/v1/names", json={"name": "b", "artifact_id": aid, "version": 1}), 409)
    expect(http.delete(f"/v1/artifacts/{aid}/v/1"), 409)
    GATES["busy1"].set()


def test_body_limit_413(make_rest) -> None:
    rest = make_rest(rest_max_body_bytes=1000)
    big = scan("file:///x#a.b", columns=["c" * 2000])
    expect(rest.http.post("/v1/materialize", json=big), 413, "limit of 1000 bytes")

    def chunked():  # no content-length: counted as it streams
        yield b'{"inputs": ["'
        yield b"x" * 2000
        yield b'"]}'

    response = rest.http.post(
        "/v1/materialize", content=chunked(), headers={"content-type": "application/json"}
    )
    expect(response, 413, "limit of 1000 bytes")
    files = {"metadata": ("m", "{}", "application/json"), "data": ("d", b"x" * 5000, "a/b")}
    expect(rest.http.put("/v1/artifacts", files=files), 413)


def test_flight_unreachable_is_503(make_rest, tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rest = make_rest(flight_uri=f"grpc://127.0.0.1:{port}", data_dir=tmp_path / "d",
                     notebook_root=tmp_path / "nb")  # fmt: skip
    expect(rest.http.post("/v1/materialize", json=scan("file:///x#a.b")), 503, "unavailable")
    expect(rest.http.get("/v1/artifacts/a/v/1/data"), 503)
    expect(rest.http.get("/v1/names"), 503)
    ready = rest.http.get("/health/ready")
    assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
    assert rest.http.get("/health").json() == {"status": "ok"}
    metrics = rest.http.get("/metrics").json()
    assert metrics["flight"]["status"] == "unreachable"
    assert metrics["disk_cache"] is None and metrics["thread_pools"]["builds"] is None
    assert metrics["arrow_memory"]["bytes_allocated"] >= 0  # this process answers for itself
    deps = rest.http.get("/health/dependencies")
    assert deps.status_code == 503 and deps.json()["status"] == "unhealthy"
    checks = deps.json()["checks"]
    assert checks["flight"]["status"] == "error" and "unavailable" in checks["flight"]["detail"]
    assert {checks[k]["status"] for k in ("store", "warehouses", "disk")} == {"unknown"}
    expect(rest.http.get(f"/v1/artifacts/by-provenance/{'0' * 64}"), 503)
    assert MISS_HEADER not in rest.http.get(f"/v1/artifacts/by-provenance/{'0' * 64}").headers
    expect(rest.http.post("/v1/cache/clear"), 503)


# --- edge: request ids, auth, docs, metrics -----------------------------------------------
def test_request_id_echo_and_generated(rest) -> None:
    echoed = rest.http.get("/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    generated = rest.http.get("/v1/names").headers["x-request-id"]
    assert len(generated) == 32
    assert rest.http.get("/v1/streams/nope").headers["x-request-id"]
    assert rest.http.post("/v1/materialize", json={}).headers["x-request-id"]


def test_bearer_auth_and_forwarded_credentials(make_rest, demo_table) -> None:
    rest = make_rest(token="s3cret")
    http = rest.http
    assert http.get("/health").status_code == 200
    assert http.get("/health/ready").status_code == 200  # REST's own credentials reach Flight
    assert http.get("/metrics").status_code == 200
    assert http.get("/health/dependencies").status_code == 200
    assert http.get("/openapi.json").status_code == 200
    expect(http.get("/v1/names"), 401, "missing bearer token")
    expect(http.post("/v1/cache/clear"), 401, "missing bearer token")
    expect(http.get(f"/v1/artifacts/by-provenance/{'0' * 64}"), 401)
    expect(http.get("/v1/names", headers={"Authorization": "Bearer wrong"}), 401, "invalid")
    assert http.get("/v1/names").headers["www-authenticate"] == "Bearer"
    auth = {"Authorization": "Bearer s3cret"}
    res = http.post("/v1/materialize", json=scan(demo_table.uri, columns=["id"]), headers=auth)
    assert res.status_code == 200, res.text
    assert http.get(res.json()["stream_url"], headers=auth).status_code == 200


def test_openapi_and_docs(rest) -> None:
    spec = rest.http.get("/openapi.json").json()
    for path in (
        "/v1/materialize",
        "/v1/streams/{stream_id}",
        "/v1/artifacts",
        "/v1/artifacts/{artifact_id}/v/{version}/data",
        "/v1/names/{name}",
        "/v1/artifacts/names/{name}/status",
        "/health/ready",
        "/v1/notebooks/open",
    ):
        assert path in spec["paths"], path  # fmt: skip
    docs = rest.http.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_metrics_json_and_prometheus(rest, demo_table) -> None:
    first = rest.http.post("/v1/materialize", json=scan(demo_table.uri, columns=["id"])).json()
    assert rest.http.get(first["stream_url"]).status_code == 200
    # A build that ended before the answer left streams the artifact's data route instead.
    read_route = (
        "/v1/streams/{stream_id}"
        if first["stream_url"].startswith("/v1/streams/")
        else "/v1/artifacts/{artifact_id}/v/{version}/data"
    )
    rest.http.post(
        "/v1/materialize", json={**scan(demo_table.uri, columns=["id"]), "mode": "artifact"}
    )
    rest.http.post("/v1/materialize", json=scan(demo_table.uri, columns=["id"]))
    body = rest.http.get("/metrics").json()
    assert body["materialize"]["hits"] >= 2 and body["materialize"]["misses"] == 1
    assert body["bytes_sent"] > 0 and body["requests"] >= 4
    assert body["flight"]["artifacts"] == 1
    text = rest.http.get("/metrics/prometheus").text
    assert 'quiver_materialize_total{outcome="hit"}' in text
    assert 'quiver_http_requests_total{method="POST",route="/v1/materialize",status="200"}' in text
    assert "quiver_http_request_seconds_bucket" in text
    assert f'quiver_http_response_bytes_total{{route="{read_route}"}}' in text


BIG_BYTES = 64 * 2**20
"""An artifact far larger than everything between the store and a stalled client can hold
(the client's fixed receive buffer, the server's send buffer, the read-ahead, gRPC's flow
control window: a few MiB here), so its read cannot end while the client stalls."""


def test_disconnect_mid_stream_cancels_the_flight_read(make_rest) -> None:
    rest = make_rest()
    store = rest.flight.core.store
    rows = BIG_BYTES // 8
    table = pa.table({"x": np.arange(rows, dtype=np.int64)})
    with connect(rest.flight.location) as client:
        art = client.put(table.to_reader(max_chunksize=8192))
    key = (art["artifact_id"], art["version"])
    path = f"/v1/artifacts/{key[0]}/v/{key[1]}/data"
    for _ in range(3):
        before = rest.http.get("/metrics").json()
        sock = stalled_get(rest.url, path)
        assert store.readers(*key) == 1  # mid-read: the artifact cannot be in the buffers
        sock.close()
        # REST sees the client go, stops sending and cancels its read; the server lets go
        assert wait_until(lambda: store.readers(*key) == 0)

        def answered(before=before) -> bool:
            return rest.http.get("/metrics").json()["requests"] >= before["requests"] + 2

        assert wait_until(answered)  # the data request ended (and this /metrics one)
        sent = rest.http.get("/metrics").json()["bytes_sent"] - before["bytes_sent"]
        assert sent < BIG_BYTES / 2, f"{sent} bytes sent for a client that left"
    assert rest.http.get("/health").status_code == 200


# --- by provenance (strata-client's find_by_provenance / put_by_provenance) ---------------
MISS_HEADER = "x-strata-provenance-miss"


def blob_files(blob: bytes, meta: object) -> dict:
    raw = meta if isinstance(meta, str) else json.dumps(meta)
    return {
        "metadata": ("metadata.json", raw, "application/json"),
        "data": ("data.bin", blob, "application/octet-stream"),
    }


def key_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_put_and_find_by_provenance_first_writer_wins(rest) -> None:
    http = rest.http
    key = key_of("cell df of notebook n1")
    miss = http.get(f"/v1/artifacts/by-provenance/{key}")
    assert miss.status_code == 404 and miss.headers[MISS_HEADER]
    assert key in miss.json()["detail"]
    blob = bytes(range(256)) * 41 + b"\x00"  # not UTF-8, NULs, odd length
    meta = {"content_type": "application/x-python-pickle", "variable_name": "df"}
    first = http.put(f"/v1/artifacts/by-provenance/{key}", files=blob_files(blob, meta))
    assert first.status_code == 200, first.text
    put = first.json()
    assert put["hit"] is False and put["byte_size"] > len(blob) and put["blob_bytes"] == len(blob)
    found = http.get(f"/v1/artifacts/by-provenance/{key}")
    assert found.status_code == 200 and MISS_HEADER not in found.headers
    info = found.json()
    assert info["artifact_uri"] == put["artifact_uri"] and info["provenance_hash"] == key
    assert info["content_type"] == meta["content_type"] and info["variable_name"] == "df"
    assert info["state"] == "ready" and info["blob"] is True and info["blob_bytes"] == len(blob)
    assert info["byte_size"] == put["byte_size"] and info["row_count"] == 1
    # the data routes serve the one-row table; its value is the bytes, exactly
    table = read_ipc(http.get(info["data_url"]).content)
    assert table.column_names == ["blob"] and table.schema.field("blob").type == pa.large_binary()
    assert table.schema.metadata[b"content_type"] == meta["content_type"].encode()
    assert table.column("blob")[0].as_py() == blob
    parquet = pq.read_table(io.BytesIO(http.get(info["data_url"] + "?format=parquet").content))
    assert parquet.column("blob")[0].as_py() == blob
    expect(http.get(info["data_url"] + "?format=csv"), 400, "CSV cannot carry its bytes")
    # the store's provenance is namespaced: a client key never names a materialize result
    status = http.get(f"/v1/artifacts/{info['artifact_id']}/v/{info['version']}").json()
    assert status["provenance_hash"] == f"blob:{key}"
    # first writer wins: other bytes under the same key answer the incumbent
    second = http.put(f"/v1/artifacts/by-provenance/{key}",
                      files=blob_files(b"other", {"content_type": "text/plain"}))  # fmt: skip
    assert second.status_code == 200, second.text
    assert second.json()["hit"] is True and second.json()["artifact_uri"] == put["artifact_uri"]
    assert second.json()["blob_bytes"] == len(blob)
    assert read_ipc(http.get(info["data_url"]).content).column("blob")[0].as_py() == blob
    if rest.flight is not None:  # and Flight's DoGet, by the ticket the answer carries
        with fl.connect(rest.flight.location) as client:
            got = client.do_get(fl.Ticket(info["artifact_uri"].encode())).read_all()
        assert got.column("blob")[0].as_py() == blob
    # an empty value is a value too
    empty_key = key_of("empty")
    empty = http.put(
        f"/v1/artifacts/by-provenance/{empty_key}",
        files=blob_files(b"", {"content_type": "application/octet-stream"}),
    )
    assert empty.status_code == 200 and empty.json()["blob_bytes"] == 0, empty.text
    url = http.get(f"/v1/artifacts/by-provenance/{empty_key}").json()["data_url"]
    assert read_ipc(http.get(url).content).column("blob")[0].as_py() == b""


def test_by_provenance_finds_a_materialized_result_and_a_key_cannot_shadow_it(
    rest, demo_table
) -> None:
    http = rest.http
    art = ready_artifact(http, demo_table.uri, columns=["id"])
    explained = http.post(
        "/v1/artifacts/explain-materialize", json=scan(demo_table.uri, columns=["id"])
    )
    key = explained.json()["provenance_hash"]
    info = http.get(f"/v1/artifacts/by-provenance/{key}").json()
    assert info["artifact_uri"] == art["artifact_uri"] and info["blob"] is False
    assert info["content_type"] == "application/vnd.apache.arrow.stream"
    assert info["row_count"] == DEMO_ROWS and info["variable_name"] is None
    # a put under that key is a hit on the materialized artifact, never its replacement
    put = http.put(
        f"/v1/artifacts/by-provenance/{key}",
        files=blob_files(b"poison", {"content_type": "text/plain"}),
    ).json()
    assert put["hit"] is True and put["artifact_uri"] == art["artifact_uri"]
    assert put["blob_bytes"] is None
    again = http.post("/v1/materialize", json={**scan(demo_table.uri, columns=["id"]),
                                               "mode": "artifact"}).json()  # fmt: skip
    assert again["hit"] is True and again["artifact_uri"] == art["artifact_uri"]
    assert http.get("/v1/artifacts/stats").json()["artifacts"] == 1


def test_by_provenance_errors(make_rest) -> None:
    rest = make_rest(rest_max_body_bytes=4096)
    http = rest.http
    good = key_of("k")
    meta = {"content_type": "text/plain"}
    for bad, why in [
        ("abc", "it has 3"),
        (good.upper(), "uppercase"),
        (good[:-1] + "g", "'g', which is not a hex digit"),
        (good + "0", "it has 65"),
    ]:
        for response in (
            http.get(f"/v1/artifacts/by-provenance/{bad}"),
            http.put(f"/v1/artifacts/by-provenance/{bad}", files=blob_files(b"x", meta)),
        ):
            body = expect(response, 400, "64 lowercase hex characters")
            assert why in body["detail"] and MISS_HEADER not in response.headers
    url = f"/v1/artifacts/by-provenance/{good}"
    for bad_meta, loc in [
        ({}, ["body", "metadata", "content_type"]),
        ({"variable_name": "df"}, ["body", "metadata", "content_type"]),
        ({"content_type": ""}, ["body", "metadata", "content_type"]),
        ({"content_type": "  "}, ["body", "metadata", "content_type"]),
        ({"content_type": "a/b", "variable_name": 5}, ["body", "metadata", "variable_name"]),
        ("{not json", ["body", "metadata"]),
    ]:
        body = expect(http.put(url, files=blob_files(b"x", bad_meta)), 422)
        assert body["detail"][0]["loc"][: len(loc)] == loc, body
    no_data = expect(http.put(url, files={"metadata": ("m", json.dumps(meta), "a/json")}), 422)
    assert no_data["detail"][0]["loc"] == ["body", "data"]
    as_field = expect(http.put(url, data={"data": "x"}, files={"metadata": ("m", "{}", "a/b")}),
                      422)  # fmt: skip
    assert ["body", "data"] in [e["loc"] for e in as_field["detail"]]
    expect(http.put(url, json={"content_type": "text/plain", "data": "x"}), 400,
           "multipart/form-data")  # fmt: skip
    expect(http.put(url, content=b"x", headers={"content-type": "application/octet-stream"}), 400)
    expect(http.put(url, files=blob_files(b"x" * 5000, meta)), 413, "limit of 4096 bytes")
    # nothing of the refused requests was stored
    miss = http.get(url)
    assert miss.status_code == 404 and miss.headers[MISS_HEADER]
    assert http.get("/v1/artifacts/stats").json()["artifacts"] == 0


def test_put_by_provenance_refuses_a_value_flight_cannot_carry(make_rest, request) -> None:
    """One row goes to Flight as one batch, at most 2 GiB: a bigger value is a 413, even
    under a body limit that lets it in, and it is never read into memory."""
    if request.node.callspec.params["make_rest"] == "grpc":
        pytest.skip("refused by the REST layer before any Flight call: one transport is enough")
    size = 2**31  # 2 GiB
    rest = make_rest(rest_max_body_bytes=size + 2**20)
    boundary = "quiver-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n'
        '{"content_type": "application/octet-stream"}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="data"; filename="v"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body():  # streamed: the test holds 4 MiB of it at a time
        yield head
        chunk = bytes(4 << 20)
        for start in range(0, size, len(chunk)):
            yield chunk[: min(len(chunk), size - start)]
        yield tail

    response = rest.http.put(
        f"/v1/artifacts/by-provenance/{key_of('too big')}",
        content=body(),
        headers={
            "content-type": f"multipart/form-data; boundary={boundary}",
            "content-length": str(len(head) + size + len(tail)),
        },
        timeout=300,
    )
    expect(response, 413, "a value put by provenance is at most")
    assert rest.http.get("/v1/artifacts/stats").json()["artifacts"] == 0


def test_upload_metadata_is_bounded_like_a_flight_command(rest) -> None:
    """A metadata part sent as a file is refused past 2 MiB before it is read and parsed."""
    from flight import MAX_COMMAND_BYTES

    pad = "x" * MAX_COMMAND_BYTES
    keyed = {"content_type": "text/plain", "pad": pad}
    response = rest.http.put(
        f"/v1/artifacts/by-provenance/{key_of('big metadata')}", files=blob_files(b"v", keyed)
    )
    expect(response, 413, "the metadata part is")
    files = {
        "metadata": ("metadata.json", json.dumps({"pad": pad}), "application/json"),
        "data": ("data.arrows", ipc_bytes(pa.table({"x": [1]})), "application/octet-stream"),
    }
    expect(rest.http.put("/v1/artifacts", files=files), 413)
    assert rest.http.get("/v1/artifacts/stats").json()["artifacts"] == 0


def test_concurrent_puts_by_provenance_end_as_one_artifact(rest) -> None:
    key = key_of("raced")
    n = 8
    start = threading.Barrier(n)

    def put(i: int) -> dict:
        with httpx.Client(base_url=rest.url, timeout=60) as http:
            files = blob_files(f"value {i}".encode() * 1000, {"content_type": "text/plain"})
            start.wait()
            response = http.put(f"/v1/artifacts/by-provenance/{key}", files=files)
            assert response.status_code == 200, response.text
            return {**response.json(), "i": i}

    with ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(put, range(n)))
    assert len({a["artifact_uri"] for a in answers}) == 1
    winners = [a for a in answers if not a["hit"]]
    assert len(winners) == 1
    listed = rest.http.get("/v1/artifacts", params={"limit": 100}).json()["artifacts"]
    assert [a["provenance_hash"] for a in listed] == [f"blob:{key}"]
    stats = rest.http.get("/v1/artifacts/stats").json()
    assert stats["artifacts"] == 1 and set(stats["by_state"]) == {"ready"}
    info = rest.http.get(f"/v1/artifacts/by-provenance/{key}").json()
    value = read_ipc(rest.http.get(info["data_url"]).content).column("blob")[0].as_py()
    assert value == f"value {winners[0]['i']}".encode() * 1000


# --- cache clear ---------------------------------------------------------------------------
def test_cache_clear_drops_caches_and_keeps_artifacts(rest, demo_table) -> None:
    http = rest.http
    art = ready_artifact(http, demo_table.uri, columns=["id", "value"], filters=[
        {"column": "value", "op": ">", "value": 10}])  # fmt: skip
    cleared = http.post("/v1/cache/clear")
    assert cleared.status_code == 200, cleared.text
    body = cleared.json()
    assert body["status"] == "cleared" and body["artifacts_deleted"] == 0
    assert body["cleared"]["warehouses"]["catalogs"] == 1
    assert body["cleared"]["warehouses"]["tables"] == 1
    assert body["cleared"]["executors"]["scan@v1"]["plans"] == 1
    assert body["cleared"]["store"]["schemas"] >= 1
    assert body["arrow_bytes_after"] <= body["arrow_bytes_before"]
    again = http.post("/v1/cache/clear").json()["cleared"]
    assert again["warehouses"]["catalogs"] == 0 and again["executors"]["scan@v1"]["plans"] == 0
    assert again["executors"]["scan@v1"]["duckdb_databases"] == 0
    # the artifact is still there, and the same request is still a hit on it
    assert exists(http, art["artifact_uri"])
    hit = http.post(
        "/v1/materialize",
        json={
            **scan(
                demo_table.uri,
                columns=["id", "value"],
                filters=[{"column": "value", "op": ">", "value": 10}],
            ),
            "mode": "artifact",
        },
    )
    assert hit.json()["hit"] is True and hit.json()["artifact_uri"] == art["artifact_uri"]
    # and a new scan builds after the clear (catalogs, plans and DuckDB come back)
    other = ready_artifact(http, demo_table.uri, columns=["category"])
    assert read_ipc(http.get(f"/v1/artifacts/{other['artifact_id']}/v/1/data").content
                    ).num_rows == DEMO_ROWS  # fmt: skip


# --- health and metrics (§12.6) --------------------------------------------------------------
def test_health_dependencies(rest, tmp_path) -> None:
    from catalog import write_demo_warehouse

    http = rest.http
    empty = http.get("/health/dependencies")
    assert empty.status_code == 200, empty.text
    body = empty.json()
    assert body["status"] == "healthy"
    assert set(body["checks"]) == {"flight", "store", "warehouses", "disk"}
    assert body["checks"]["flight"]["location"] == rest.flight.location
    store = body["checks"]["store"]
    assert store["status"] == "ok" and store["readable"] and store["writable"]
    assert body["checks"]["warehouses"] == {"status": "ok", "items": []}
    disk = body["checks"]["disk"]
    assert disk["status"] == "ok" and disk["disk_free_bytes"] > 0 and disk["store_bytes"] == 0
    table = write_demo_warehouse(tmp_path / "wh", rows=100, files=1)
    ready_artifact(http, table.uri)
    items = http.get("/health/dependencies").json()["checks"]["warehouses"]["items"]
    assert items == [{"warehouse": str(tmp_path / "wh"), "status": "ok", "tables": 1}]
    (tmp_path / "wh").rename(tmp_path / "moved")  # the warehouse goes away
    gone = http.get("/health/dependencies")
    assert gone.status_code == 503 and gone.json()["status"] == "unhealthy"
    item = gone.json()["checks"]["warehouses"]["items"][0]
    assert item["status"] == "error" and "no such directory" in item["detail"]
    (tmp_path / "moved").rename(tmp_path / "wh")
    assert http.get("/health/dependencies").status_code == 200
    # the store cannot be written (its temp directory replaced by a file)
    tmp_dir = rest.flight.core.store.tmp_dir
    tmp_dir.rename(tmp_dir.with_name("tmp-aside"))
    tmp_dir.write_bytes(b"")
    try:
        broken = http.get("/health/dependencies")
        assert broken.status_code == 503
        check = broken.json()["checks"]["store"]
        assert check["status"] == "error" and check["writable"] is False
        assert "cannot write in the store" in check["detail"]
    finally:
        tmp_dir.unlink()
        tmp_dir.with_name("tmp-aside").rename(tmp_dir)
    assert http.get("/health/dependencies").status_code == 200


def test_metrics_runtime_keys(make_rest, demo_table) -> None:
    rest = make_rest()
    http = rest.http
    ready_artifact(http, demo_table.uri)  # the store holds bytes
    body = http.get("/metrics").json()
    for key in ("uptime_s", "requests", "errors", "client_errors", "bytes_sent", "materialize",
                "flight"):  # fmt: skip
        assert key in body, key
    assert body["arrow_memory"]["backend"] in ("mimalloc", "jemalloc", "system")
    assert body["arrow_memory"]["bytes_allocated"] >= 0 and body["arrow_memory"]["max_memory"] >= 0
    assert len(body["gc"]["counts"]) == 3 and len(body["gc"]["generations"]) == 3
    assert body["gc_pauses"]["count"] >= 0
    limits = body["resource_limits"]
    assert limits["nofile"]["used"] > 0 and limits["threads"] > 1 and limits["rss_bytes"] > 0
    pools = body["thread_pools"]
    assert pools["builds"] == {"max_workers": rest.settings.build_threads, "busy": 0, "queued": 0}
    assert pools["rest_workers"]["max_workers"] >= 1
    assert body["connections"]["http_requests"] == 1  # this one
    cache = body["disk_cache"]
    assert cache["store_bytes"] > 0 and cache["max_bytes"] == rest.settings.cache_max_bytes
    assert cache["disk_free_bytes"] > 0 and cache["disk_total_bytes"] >= cache["disk_free_bytes"]
    assert "flight_process" not in body  # the Flight server runs in this process
    for absent in ("prefetch", "qos", "adaptive_concurrency", "build_qos"):
        assert absent not in body
    # a body being sent is an open stream until it ends: a live build's, which cannot
    # end before its gate opens (a ready artifact's could fit in the socket buffers)
    res = http.post("/v1/materialize", json=gated_request("metrics1")).json()
    with (
        httpx.Client(base_url=rest.url, timeout=30) as fresh,
        fresh.stream("GET", res["stream_url"]) as response,
    ):
        chunks = response.iter_bytes()
        next(chunks)
        open_now = http.get("/metrics").json()["connections"]
        assert open_now["http_requests"] == 2 and open_now["http_streams"] == 1
        GATES["metrics1"].set()
        rest_of_body = b"".join(chunks)
    assert rest_of_body
    assert wait_until(lambda: http.get("/metrics").json()["connections"]["http_requests"] == 1)
