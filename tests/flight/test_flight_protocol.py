"""Every protocol flow, through the generic pyarrow.flight client only."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.flight as fl
import pytest

from tests.fixtures_flight import DEMO_ROWS, act, cmd


def scan(table_uri: str, **params: object) -> dict:
    return {"inputs": [table_uri], "transform": {"executor": "scan@v1", "params": params}}


def test_materialize_action_then_do_get(client, demo_table) -> None:
    first = act(client, "materialize", scan(demo_table.uri, columns=["id", "value"]))
    assert first["hit"] is False and first["state"] in ("building", "ready")
    assert first["artifact_uri"].startswith("strata://artifact/")
    assert first["stream_id"] == first["artifact_id"] or first["state"] == "ready"
    table = client.do_get(fl.Ticket(first["ticket"].encode())).read_all()
    assert table.num_rows == DEMO_ROWS and table.column_names == ["id", "value"]

    again = act(client, "materialize", scan(demo_table.uri, columns=["id", "value"]))
    assert again["hit"] is True and again["state"] == "ready"
    assert again["artifact_uri"] == first["artifact_uri"]
    assert again["row_count"] == DEMO_ROWS and again["byte_size"] > 0
    assert [f["name"] for f in again["schema"]] == ["id", "value"]


def test_get_flight_info_command_then_do_get(client, demo_table) -> None:
    request = scan(demo_table.uri, filters=[{"column": "id", "op": "<", "value": 100}])
    info = client.get_flight_info(cmd(request))
    meta = json.loads(info.app_metadata)
    assert meta["hit"] is False and meta["artifact_uri"].startswith("strata://artifact/")
    assert info.schema.names == ["id", "value", "category", "ts", "payload"]
    assert len(info.endpoints) == 1
    assert client.do_get(info.endpoints[0].ticket).read_all().num_rows == 100

    hit = client.get_flight_info(cmd(request))
    assert json.loads(hit.app_metadata)["hit"] is True
    assert hit.total_records == 100 and hit.total_bytes > 0 and hit.ordered
    assert client.get_schema(cmd(request)).schema == info.schema


def test_flight_info_for_artifact_and_name_paths(client, demo_table) -> None:
    res = act(client, "materialize", {**scan(demo_table.uri, columns=["id"]), "name": "ev/ids"})
    client.do_get(fl.Ticket(res["ticket"].encode())).read_all()
    by_path = client.get_flight_info(
        fl.FlightDescriptor.for_path("artifact", res["artifact_id"], str(res["version"]))
    )
    assert by_path.total_records == DEMO_ROWS
    assert json.loads(by_path.app_metadata)["artifact_uri"] == res["artifact_uri"]
    # the name is set once the build is ready, even though this was a miss
    assert act(client, "name-get", {"name": "ev/ids"})["artifact_uri"] == res["artifact_uri"]
    by_name = client.get_flight_info(fl.FlightDescriptor.for_path("name", "ev/ids"))
    assert by_name.total_records == DEMO_ROWS
    split = client.get_flight_info(fl.FlightDescriptor.for_path("name", "ev", "ids"))
    assert split.total_records == DEMO_ROWS
    # tickets may also be typed by hand as URIs
    assert client.do_get(fl.Ticket(b"strata://name/ev/ids")).read_all().num_rows == DEMO_ROWS
    assert client.do_get(fl.Ticket(res["artifact_uri"].encode())).read_all().num_rows == DEMO_ROWS


def test_large_artifact_is_offered_as_ordered_endpoints(make_server, demo_table) -> None:
    server = make_server(flight_endpoint_bytes=200_000, batch_size=1000)
    client = fl.connect(server.location)
    request = scan(demo_table.uri)
    whole = client.do_get(fl.Ticket(act(client, "materialize", request)["ticket"].encode()))
    whole = whole.read_all()
    info = client.get_flight_info(cmd(request))
    assert info.ordered and len(info.endpoints) > 1
    assert all(e.locations == [] for e in info.endpoints)  # "this same server"
    with ThreadPoolExecutor(4) as pool:
        parts = list(pool.map(lambda e: client.do_get(e.ticket).read_all(), info.endpoints))
    assert pa.concat_tables(parts).equals(whole)
    assert sum(p.num_rows for p in parts) == info.total_records == DEMO_ROWS


def test_do_put_stores_dedupes_and_names(client) -> None:
    table = pa.table({"a": pa.array(range(1000), pa.int64()), "s": [str(i) for i in range(1000)]})

    def put(descriptor: fl.FlightDescriptor) -> dict:
        writer, answers = client.do_put(descriptor, table.schema)
        with writer:
            writer.write_table(table, max_chunksize=300)
            writer.done_writing()
            return json.loads(answers.read().to_pybytes())

    first = put(fl.FlightDescriptor.for_path("artifact"))
    assert first["state"] == "ready" and first["kind"] == "upload" and first["row_count"] == 1000
    assert first["deduplicated"] is False
    again = put(cmd({"name": "uploads/t", "metadata": {}}))
    assert again["deduplicated"] is True and again["artifact_uri"] == first["artifact_uri"]
    assert again["name_uri"] == "strata://name/uploads/t"
    other = put(cmd({"name": "uploads/m", "metadata": {"cell": "c1"}}))
    assert other["artifact_uri"] != first["artifact_uri"] and other["metadata"] == {"cell": "c1"}
    by_name = put(fl.FlightDescriptor.for_path("name", "uploads/p"))
    assert by_name["name_uri"] == "strata://name/uploads/p"
    got = client.do_get(fl.Ticket(b"strata://name/uploads/t")).read_all()
    assert got.equals(table)


def test_dictionary_columns_round_trip(make_server) -> None:
    # Compression on: the batches carrying dictionaries go out through their own writer.
    server = make_server(ipc_compression="zstd")
    client = fl.connect(server.location)
    schema = pa.schema([("tag", pa.dictionary(pa.int32(), pa.string())), ("n", pa.int64())])
    tags = pa.array(["a", "b", None] * 400_000).dictionary_encode()
    table = pa.table({"tag": tags, "n": pa.array(range(len(tags)), pa.int64())}, schema=schema)
    writer, answers = client.do_put(cmd({"name": "dict", "metadata": {}}), schema)
    with writer:
        writer.write_table(table, max_chunksize=300_000)
        writer.done_writing()
        assert json.loads(answers.read().to_pybytes())["row_count"] == len(tags)
    got = client.do_get(fl.Ticket(b"strata://name/dict")).read_all()  # several 2 MiB batches
    assert got.equals(table)


def test_changing_dictionaries_are_stored_as_one_growing_dictionary(client) -> None:
    schema = pa.schema([("tag", pa.dictionary(pa.int8(), pa.string()))])

    def upload(groups: list[list[str]]) -> dict:
        writer, answers = client.do_put(cmd({"name": None, "metadata": {}}), schema)
        with writer:
            for values in groups:
                tags = pa.array(values).dictionary_encode().cast(schema.field("tag").type)
                writer.write_batch(pa.record_batch([tags], schema=schema))
            writer.done_writing()
            return json.loads(answers.read().to_pybytes())

    stored = upload([["a", "b"], ["x", "a"], ["z"]])
    got = client.do_get(fl.Ticket(stored["artifact_uri"].encode())).read_all()
    assert got.column("tag").to_pylist() == ["a", "b", "x", "a", "z"]
    too_many = [[f"a{i}" for i in range(100)], [f"b{i}" for i in range(100)]]
    with pytest.raises(fl.FlightServerError, match="more than its int8 indices") as err:
        upload(too_many)
    assert "Traceback" not in str(err.value)


def test_list_flights_one_per_name(client, demo_table) -> None:
    for name in ("a/one", "a/two", "b"):
        writer, answers = client.do_put(
            cmd({"name": name, "metadata": {"n": name}}), pa.schema([("x", pa.int64())])
        )
        with writer:
            writer.write_table(pa.table({"x": [1, 2]}))
            writer.done_writing()
            answers.read()
    flights = list(client.list_flights())
    assert [f.descriptor.path for f in flights] == [
        [b"name", b"a/one"],
        [b"name", b"a/two"],
        [b"name", b"b"],
    ]
    assert all(f.total_records == 2 for f in flights)
    assert json.loads(flights[0].app_metadata)["name_uri"] == "strata://name/a/one"
    assert len(list(client.list_flights(b"a/"))) == 2


def test_list_actions_are_described(client) -> None:
    actions = {a.type: a.description for a in client.list_actions()}
    expected = {
        "materialize", "explain", "status", "name-set", "name-get", "name-list",
        "name-delete", "lineage", "dependents", "delete", "gc", "executors", "health",
    }  # fmt: skip
    assert expected <= set(actions)
    assert all(len(d) > 10 for d in actions.values())


def test_actions(client, demo_table) -> None:
    request = scan(demo_table.uri, columns=["id", "category"])
    explained = act(client, "explain", request)
    assert explained["would_hit"] is False and demo_table.uri in explained["input_versions"]
    base = act(client, "materialize", request)
    client.do_get(fl.Ticket(base["ticket"].encode())).read_all()
    assert act(client, "explain", request)["would_hit"] is True
    status = act(client, "status", {"artifact_uri": base["artifact_uri"]})
    assert status["state"] == "ready" and status["row_count"] == DEMO_ROWS
    same = act(client, "status", {"artifact_id": base["artifact_id"], "version": 1})
    assert same["artifact_uri"] == base["artifact_uri"]

    sql = {
        "inputs": [base["artifact_uri"]],
        "transform": {"executor": "sql@v1", "params": {"sql": "select count(*) n from input0"}},
    }
    derived = act(client, "materialize", sql)
    assert client.do_get(fl.Ticket(derived["ticket"].encode())).read_all()["n"][0].as_py() == (
        DEMO_ROWS
    )
    lineage = act(client, "lineage", {"artifact_uri": derived["artifact_uri"]})
    assert lineage["inputs"][0]["artifact_uri"] == base["artifact_uri"]
    deps = act(client, "dependents", {"artifact_uri": base["artifact_uri"]})
    assert [d["artifact_uri"] for d in deps["dependents"]] == [derived["artifact_uri"]]

    set_ = act(client, "name-set", {"name": "counted", "artifact_uri": derived["artifact_uri"]})
    assert set_["name_uri"] == "strata://name/counted"
    assert [n["name"] for n in act(client, "name-list")["names"]] == ["counted"]
    assert act(client, "name-list", {"prefix": "x"})["names"] == []
    assert act(client, "name-delete", {"name": "counted"})["status"] == "deleted"
    assert act(client, "delete", {"artifact_uri": derived["artifact_uri"]})["status"] == "deleted"
    gc = act(client, "gc")
    assert "removed" in gc and "evicted" in gc

    executors = {e["name"]: e for e in act(client, "executors")["executors"]}
    assert {"scan@v1", "sql@v1"} <= set(executors)
    assert executors["sql@v1"]["params_schema"]["properties"]["sql"]["type"] == "string"
    health = act(client, "health")
    assert health["status"] == "ok" and health["counters"]["hits"] >= 0


@pytest.mark.parametrize("reader", ["polars", "duckdb"])
def test_polars_and_duckdb_read_a_do_get_stream(client, demo_table, reader) -> None:
    res = act(client, "materialize", scan(demo_table.uri, columns=["id", "category"]))
    stream = client.do_get(fl.Ticket(res["ticket"].encode())).to_reader()
    if reader == "polars":
        frame = pl.from_arrow(stream)
        assert frame.height == DEMO_ROWS and frame.columns == ["id", "category"]
    else:
        con = duckdb.connect()
        con.register("stream", stream)
        count = con.sql("select count(*), max(id) from stream").fetchall()[0]
        assert count == (DEMO_ROWS, DEMO_ROWS - 1)
