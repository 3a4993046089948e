"""Operations: auth, TLS, compression, message size, followers, disconnects, restarts."""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.flight as fl
import pytest

from flight.security import check_bind
from flight.streams import rechunk
from foundation import InvalidArgument, Settings
from tests.fixtures_flight import (
    DEMO_ROWS,
    GATES,
    act,
    cmd,
    gated_request,
    self_signed_certificate,
)
from tests.polling import wait_until


def scan(uri: str, **params: object) -> dict:
    return {"inputs": [uri], "transform": {"executor": "scan@v1", "params": params}}


def test_bearer_token(make_server) -> None:
    server = make_server(token="s3cret")
    client = fl.connect(server.location)
    for headers in ([], [(b"authorization", b"Bearer wrong")], [(b"authorization", b"s3cret")]):
        options = fl.FlightCallOptions(headers=headers)
        with pytest.raises(fl.FlightUnauthenticatedError) as info:
            act(client, "health", options=options)
        assert json.loads(info.value.extra_info)["code"] == "unauthenticated"
        with pytest.raises(fl.FlightUnauthenticatedError):
            client.do_get(fl.Ticket(b"strata://name/x"), options).read_all()
    good = fl.FlightCallOptions(headers=[(b"authorization", b"Bearer s3cret")])
    assert act(client, "health", options=good)["status"] == "ok"
    assert list(client.list_flights(options=good)) == []


def test_without_token_only_loopback(tmp_path) -> None:
    with pytest.raises(InvalidArgument, match="without a token"):
        check_bind(Settings(data_dir=tmp_path, host="0.0.0.0"))
    check_bind(Settings(data_dir=tmp_path, host="0.0.0.0", token="t"))
    check_bind(Settings(data_dir=tmp_path, host="0.0.0.0", allow_remote_without_token=True))
    check_bind(Settings(data_dir=tmp_path, host="::1"))


def test_tls_with_self_signed_certificate(make_server, tmp_path, demo_table) -> None:
    cert, key = self_signed_certificate(tmp_path)
    server = make_server(tls_cert=cert, tls_key=key)
    assert server.location.startswith("grpc+tls://127.0.0.1:")
    client = fl.connect(server.location, tls_root_certs=cert.read_bytes())
    res = act(client, "materialize", scan(demo_table.uri, columns=["id"]))
    assert client.do_get(fl.Ticket(res["ticket"].encode())).read_all().num_rows == DEMO_ROWS
    plain = fl.connect(server.location.replace("grpc+tls", "grpc"))
    with pytest.raises(fl.FlightError):
        act(plain, "health", options=fl.FlightCallOptions(timeout=5))


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_ipc_compression(make_server, demo_table, codec) -> None:
    server = make_server(ipc_compression=codec)
    client = fl.connect(server.location)
    res = act(client, "materialize", scan(demo_table.uri))
    table = client.do_get(fl.Ticket(res["ticket"].encode())).read_all()
    assert table.num_rows == DEMO_ROWS
    assert table.equals(server.core.store.open_table(res["artifact_id"], res["version"]))


def test_big_batches_are_rechunked_for_default_grpc_limits(make_server) -> None:
    server = make_server(flight_max_batch_bytes=1024**2)
    client = fl.connect(server.location)
    big = pa.table({"s": ["x" * 1000] * 12_000})  # one 12 MB batch
    writer, answers = client.do_put(cmd({"name": "big"}), big.schema)
    with writer:
        writer.write_table(big)
        writer.done_writing()
        answers.read()
    limited = fl.connect(
        server.location, generic_options=[("grpc.max_receive_message_length", 4 * 1024**2)]
    )
    reader = limited.do_get(fl.Ticket(b"strata://name/big"))
    sizes = [chunk.data.nbytes for chunk in reader]
    assert len(sizes) >= 12 and max(sizes) <= 1.1 * 1024**2
    assert sum(s for s in sizes) >= big.nbytes - 1024


def test_rechunk_slices_without_copy() -> None:
    batch = pa.record_batch({"a": pa.array(range(100_000), pa.int64())})  # 800 kB
    parts = list(rechunk([batch], 100_000))
    assert all(p.nbytes <= 100_000 for p in parts) and sum(p.num_rows for p in parts) == 100_000
    assert pa.Table.from_batches(parts).equals(pa.Table.from_batches([batch]))
    assert list(rechunk([batch], 10**9)) == [batch]


def test_stream_followers_get_first_batch_before_the_build_ends(client) -> None:
    info = client.get_flight_info(cmd(gated_request("follow", batches=5)))
    meta = json.loads(info.app_metadata)
    assert meta["hit"] is False and info.total_records == -1
    readers = [client.do_get(info.endpoints[0].ticket) for _ in range(3)]
    for reader in readers:
        first = reader.read_chunk().data
        assert first.num_rows == 1000 and first["b"][0].as_py() == 0
    # every reader holds its first batch while the build still waits at the gate
    assert act(client, "status", {"artifact_uri": meta["artifact_uri"]})["state"] == "building"
    GATES["follow"].set()
    for reader in readers:
        rest = reader.read_all()
        assert rest.num_rows == 4000 and rest["b"].to_pylist()[0] == 1
    late = client.do_get(info.endpoints[0].ticket).read_all()
    assert late.num_rows == 5000
    assert act(client, "status", {"artifact_uri": meta["artifact_uri"]})["state"] == "ready"


def test_many_concurrent_readers_and_a_slow_one(make_server, demo_table) -> None:
    server = make_server(batch_size=1000)
    client = fl.connect(server.location)
    res = act(client, "materialize", scan(demo_table.uri))
    ticket = fl.Ticket(res["ticket"].encode())
    expected = client.do_get(ticket).read_all()
    slow = client.do_get(ticket)
    slow.read_chunk()  # ...and then it reads nothing while the others run
    with ThreadPoolExecutor(16) as pool:
        tables = list(pool.map(lambda _: fl.connect(server.location).do_get(ticket).read_all(),
                               range(16)))  # fmt: skip
    assert all(t.equals(expected) for t in tables)
    slow.cancel()


def test_abandoned_streams_free_their_resources(make_server, demo_table) -> None:
    server = make_server(batch_size=500)
    client = fl.connect(server.location)
    res = act(client, "materialize", scan(demo_table.uri))
    ticket = fl.Ticket(res["ticket"].encode())
    client.do_get(ticket).read_all()
    store = server.core.store
    proc = psutil.Process()
    threads, fds = proc.num_threads(), proc.num_fds()
    for _ in range(200):
        reader = client.do_get(ticket)
        reader.read_chunk()
        reader.cancel()
        del reader
    assert wait_until(lambda: store.readers(res["artifact_id"], res["version"]) == 0)
    assert wait_until(lambda: proc.num_threads() <= threads + 2)
    assert wait_until(lambda: proc.num_fds() <= fds + 2)


def test_restart_with_same_data_dir(make_server, tmp_path, demo_table) -> None:
    first = make_server()
    client = fl.connect(first.location)
    res = act(client, "materialize", {**scan(demo_table.uri, columns=["id"]), "name": "kept"})
    expected = client.do_get(fl.Ticket(res["ticket"].encode())).read_all()
    assert wait_until(lambda: act(client, "name-list")["names"] != [])
    client.close()
    first.close()

    second = make_server()
    client = fl.connect(second.location)
    assert client.do_get(fl.Ticket(b"strata://name/kept")).read_all().equals(expected)
    assert [f.descriptor.path[1] for f in client.list_flights()] == [b"kept"]
    again = act(client, "materialize", scan(demo_table.uri, columns=["id"]))
    assert again["hit"] is True and again["artifact_uri"] == res["artifact_uri"]


def test_graceful_shutdown_finishes_or_fails_builds(make_server, tmp_path: Path) -> None:
    server = make_server()
    client = fl.connect(server.location)
    finishing = act(client, "materialize", gated_request("finish"))
    closer = threading.Thread(target=server.close)
    closer.start()
    GATES["finish"].set()
    closer.join(30)
    assert not closer.is_alive()
    # the running build was allowed to finish and is served after a restart
    restarted = make_server()
    client = fl.connect(restarted.location)
    assert act(client, "status", {"artifact_uri": finishing["artifact_uri"]})["state"] == "ready"

    cancelled = act(client, "materialize", gated_request("cancel"))
    restarted.close(cancel_builds=True)
    third = make_server()
    client = fl.connect(third.location)
    status = act(client, "status", {"artifact_uri": cancelled["artifact_uri"]})
    assert status["state"] == "failed"
    assert not list((tmp_path / "data" / "tmp").glob("*.arrow"))


# --- the cancel action -------------------------------------------------------------------

LONG_SQL = (
    "select count(*) as n, sum(a.range * b.range) as s from range(1000000) a, range(1000000) b"
)


def sql_request(sql: str) -> dict:
    return {"inputs": [], "transform": {"executor": "sql@v1", "params": {"sql": sql}}}


def test_cancel_action_stops_a_running_build_and_a_later_request_rebuilds(
    server, client, tmp_path
) -> None:
    doomed = act(client, "materialize", gated_request("doomed"))
    other = act(client, "materialize", gated_request("other"))
    assert doomed["state"] == other["state"] == "building"
    answer = act(client, "cancel", {"build_id": doomed["stream_id"]})
    assert answer == {
        "cancelled": True,
        "state": "failed",
        "build_id": doomed["stream_id"],
        "artifact_uri": doomed["artifact_uri"],
        "error": f"build of {doomed['artifact_uri']} failed: gated@v1 build was cancelled",
    }
    with pytest.raises(fl.FlightServerError, match="gated@v1 build was cancelled"):
        client.do_get(fl.Ticket(doomed["ticket"].encode())).read_all()
    partial = f"{doomed['artifact_id']}.v{doomed['version']}.*"
    assert not list((tmp_path / "data" / "tmp").glob(partial))  # no half-written file left
    # the other build is untouched
    assert act(client, "status", {"artifact_uri": other["artifact_uri"]})["state"] == "building"
    GATES["other"].set()
    assert client.do_get(fl.Ticket(other["ticket"].encode())).read_all().num_rows == 4000
    # the same request builds again: a new version of the same artifact
    again = act(client, "materialize", gated_request("doomed"))
    assert again["hit"] is False and again["artifact_id"] == doomed["artifact_id"]
    assert again["version"] == doomed["version"] + 1
    assert client.do_get(fl.Ticket(again["ticket"].encode())).read_all().num_rows == 4000
    # a finished build is not cancelled; by URI as well as by build id
    done = act(client, "cancel", {"artifact_uri": again["artifact_uri"], "wait_seconds": 0})
    assert done["cancelled"] is False and done["state"] == "ready" and done["error"] is None
    assert act(client, "status", {"artifact_uri": again["artifact_uri"]})["state"] == "ready"


def test_cancel_action_interrupts_a_duckdb_query(server, client) -> None:
    res = act(client, "materialize", sql_request(LONG_SQL))  # hours if left alone
    assert res["state"] == "building"
    assert wait_until(lambda: act(client, "health")["building"] == 1)
    started = time.monotonic()
    answer = act(client, "cancel", {"artifact_uri": res["artifact_uri"], "wait_seconds": 30})
    assert time.monotonic() - started < 5
    assert answer["cancelled"] is True and answer["state"] == "failed"
    assert answer["error"].endswith("sql@v1 query was cancelled")
    assert act(client, "health")["building"] == 0  # the build thread is done: DuckDB stopped
    short = act(client, "materialize", sql_request("select 42 as x"))
    assert client.do_get(fl.Ticket(short["ticket"].encode())).read_all().to_pylist() == [{"x": 42}]


def test_cancel_action_bad_input_is_a_clean_error(client) -> None:
    cases = [
        ({"build_id": "nope"}, fl.FlightServerError, "not_found", "Build nope not found"),
        ({"build_id": "a.b.c"}, fl.FlightServerError, "not_found", "Build a.b.c not found"),
        (
            {"artifact_uri": "strata://artifact/nope@v=1"},
            fl.FlightServerError,
            "not_found",
            "artifact strata://artifact/nope@v=1 not found",
        ),
        ({}, fl.FlightServerError, "invalid_argument", 'give "build_id"'),
        ({"build_id": "x", "wait_seconds": -1}, fl.FlightServerError, "invalid_argument",
         "wait_seconds"),
        ({"build_id": "x", "bogus": 1}, fl.FlightServerError, "invalid_argument", "bogus"),
        ({"artifact_uri": "file:///wh#db.t"}, fl.FlightServerError, "invalid_argument",
         "strata://artifact/ or strata://name/"),
    ]  # fmt: skip
    for body, cls, code, message in cases:
        with pytest.raises(cls) as info:
            act(client, "cancel", body)
        assert json.loads(info.value.extra_info)["code"] == code, body
        assert message in str(info.value), (body, str(info.value))
        assert "Traceback" not in str(info.value) and "internal error" not in str(info.value)
    names = [a.type for a in client.list_actions()]
    assert "cancel" in names


# --- gc ----------------------------------------------------------------------------------
def ready(client: fl.FlightClient, uri: str, *columns: str) -> str:
    """Materialize a scan and read it to its end: the artifact is ready; its URI."""
    res = act(client, "materialize", {**scan(uri, columns=list(columns)), "mode": "artifact"})
    client.do_get(fl.Ticket(res["ticket"].encode())).read_all()
    return res["artifact_uri"]


def test_gc_dry_run_then_run_with_configured_retention(make_server, demo_table) -> None:
    server = make_server(gc_min_idle_s=3600.0, gc_max_idle_days=0.0)
    client = fl.connect(server.location)
    kept, base = ready(client, demo_table.uri, "id"), ready(client, demo_table.uri, "value")
    loose = ready(client, demo_table.uri, "category")
    count = {"executor": "duckdb_sql@v1", "params": {"sql": "select count(*) n from input0"}}
    derived = act(client, "materialize", {"inputs": [base], "mode": "artifact", "transform": count})
    client.do_get(fl.Ticket(derived["ticket"].encode())).read_all()
    act(client, "name-set", {"name": "kept", "artifact_uri": kept})
    act(client, "name-set", {"name": "derived", "artifact_uri": derived["artifact_uri"]})
    # a bare call takes the configured retention: all of it was used within the hour
    bare = act(client, "gc")
    assert bare["collected"] == [] and bare["deleted_count"] == 0
    assert bare["retention"] == {"max_idle_days": 0.0, "max_bytes": server.core.store.max_bytes,
                                 "min_idle_seconds": 3600.0, "collect_latest": False,
                                 "failed_older_than_s": 3600.0}  # fmt: skip
    dry = act(client, "gc", {"min_idle_seconds": 0, "dry_run": True})
    assert [c["artifact_uri"] for c in dry["collected"]] == [loose]  # base: derived needs it
    assert dry["dry_run"] is True and dry["deleted_count"] == 1
    assert act(client, "status", {"artifact_uri": loose})["state"] == "ready"
    run = act(client, "gc", {"min_idle_seconds": 0})
    assert run["collected"] == dry["collected"] and run["evicted"] == [loose]
    assert run["store_bytes"] == dry["store_bytes"] - dry["deleted_bytes"]
    with pytest.raises(fl.FlightError, match="not found"):
        act(client, "status", {"artifact_uri": loose})
    for uri in (kept, base, derived["artifact_uri"]):
        assert act(client, "status", {"artifact_uri": uri})["state"] == "ready"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"max_bytes": -1}, "max_bytes: Input should be greater than or equal to 0"),
        ({"max_bytes": 1.5}, "max_bytes: Input should be a valid integer"),
        ({"max_idle_days": -0.5}, "max_idle_days: Input should be greater than or equal to 0"),
        ({"max_idle_days": float("nan")}, "max_idle_days: Input should be a finite number"),
        ({"min_idle_seconds": float("inf")}, "min_idle_seconds: Input should be a finite number"),
        ({"min_idle_seconds": "60"}, "min_idle_seconds: Input should be a valid number"),
        ({"dry_run": "no"}, "dry_run: Input should be a valid boolean"),
        ({"collect_latest": 1}, "collect_latest: Input should be a valid boolean"),
        ({"max_idle": 3}, "max_idle: Extra inputs are not permitted"),
        ([], "gc request must be a JSON object"),
    ],
)
def test_gc_refuses_bad_arguments_cleanly(client, body: object, message: str) -> None:
    with pytest.raises(fl.FlightServerError) as info:
        act(client, "gc", body)
    text = str(info.value)
    assert message in text and "Traceback" not in text and 'File "' not in text
    assert json.loads(info.value.extra_info)["code"] == "invalid_argument"


# --- keyed uploads, by-provenance, cache-clear, dependencies, runtime ---------------------
def put(client: fl.FlightClient, table: pa.Table, metadata: dict) -> dict:
    writer, answers = client.do_put(cmd({"metadata": metadata}), table.schema)
    with writer:
        writer.write_table(table)
        writer.done_writing()
        answer = json.loads(answers.read().to_pybytes())
    return answer


KEY = "ab" * 32


def test_keyed_doput_and_by_provenance(client) -> None:
    with pytest.raises(fl.FlightServerError) as info:
        act(client, "by-provenance", {"provenance_hash": KEY})
    assert json.loads(info.value.extra_info) == {
        "code": "not_found", "detail": {"provenance_hash": KEY, "miss": True}}  # fmt: skip
    meta = {"provenance_hash": KEY, "content_type": "application/x-mine", "variable_name": "t"}
    first = put(client, pa.table({"x": [1, 2, 3]}), meta)
    assert first["deduplicated"] is False and first["provenance_hash"] == f"blob:{KEY}"
    again = put(client, pa.table({"y": ["other"]}), {**meta, "content_type": "text/plain"})
    assert again["deduplicated"] is True and again["artifact_uri"] == first["artifact_uri"]
    found = act(client, "by-provenance", {"provenance_hash": KEY})
    assert found["artifact_uri"] == first["artifact_uri"] and found["provenance_hash"] == KEY
    assert found["content_type"] == "application/x-mine" and found["variable_name"] == "t"
    assert found["blob"] is False  # any table may be keyed; only REST's one-row blob is a blob
    got = client.do_get(fl.Ticket(found["ticket"].encode())).read_all()
    assert got.to_pydict() == {"x": [1, 2, 3]}


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"provenance_hash": "ab", "content_type": "a/b"}, "64 lowercase hex characters"),
        ({"provenance_hash": KEY.upper(), "content_type": "a/b"}, "uppercase"),
        ({"provenance_hash": 7, "content_type": "a/b"}, "not int"),
        ({"provenance_hash": KEY}, 'needs "content_type"'),
        ({"provenance_hash": KEY, "content_type": " "}, 'needs "content_type"'),
        ({"provenance_hash": KEY, "content_type": "a/b", "transform": {"executor": "x@v1"}},
         'both "provenance_hash" and "transform"'),
        ({"provenance_hash": KEY, "content_type": "a/b", "variable_name": 1}, "variable_name"),
    ],
)  # fmt: skip
def test_keyed_doput_refuses_bad_metadata(server, client, metadata: dict, message: str) -> None:
    with pytest.raises(fl.FlightServerError) as info:
        put(client, pa.table({"x": [1]}), metadata)
    assert message in str(info.value)
    assert json.loads(info.value.extra_info)["code"] == "invalid_argument"
    assert server.core.store.stats()["artifacts"] == 0


def test_by_provenance_refuses_a_bad_hash(client) -> None:
    for body, message in [
        ({"provenance_hash": "xyz"}, "it has 3"),
        ({"provenance_hash": "g" * 64}, "'g', which is not a hex digit"),
        ({}, "provenance_hash: Field required"),
        ({"provenance_hash": KEY, "more": 1}, "more: Extra inputs are not permitted"),
    ]:
        with pytest.raises(fl.FlightServerError, match="invalid") as info:
            act(client, "by-provenance", body)
        assert message in str(info.value), body
        assert json.loads(info.value.extra_info)["code"] == "invalid_argument"


def test_cache_clear_action_keeps_artifacts(server, client, demo_table) -> None:
    uri = ready(client, demo_table.uri, "id")
    answer = act(client, "cache-clear")
    assert answer["status"] == "cleared" and answer["artifacts_deleted"] == 0
    assert answer["cleared"]["warehouses"]["catalogs"] == 1
    assert answer["cleared"]["executors"]["scan@v1"]["plans"] == 1
    assert set(answer["cleared"]["executors"]) == {"scan@v1"}  # the others cache nothing
    hit = act(client, "materialize", {**scan(demo_table.uri, columns=["id"]), "mode": "artifact"})
    assert hit["hit"] is True and hit["artifact_uri"] == uri
    assert client.do_get(fl.Ticket(uri.encode())).read_all().num_rows == DEMO_ROWS
    with pytest.raises(fl.FlightServerError, match="Extra inputs are not permitted"):
        act(client, "cache-clear", {"everything": True})


def test_cache_clear_counts_each_cache_once_when_scan_shares_the_warehouses(
    tmp_path, demo_table
) -> None:
    from catalog import ArtifactStore, Warehouses
    from executors import load_registry
    from executors.scan import ScanExecutor
    from flight import Core, QuiverFlightServer
    from materialize import Materializer

    settings = Settings(data_dir=tmp_path / "data", notebook_root=tmp_path / "nb", flight_port=0)
    warehouses = Warehouses()  # scan@v1 plans through the materializer's own
    registry = load_registry([ScanExecutor(warehouses)], entry_points=[])
    store = ArtifactStore(settings.store_dir)
    materializer = Materializer(settings, store, registry, warehouses)
    server = QuiverFlightServer(Core(settings, store, registry, warehouses, materializer))
    client = fl.connect(server.location)
    try:
        ready(client, demo_table.uri, "id")
        cleared = act(client, "cache-clear")["cleared"]
        assert cleared["warehouses"]["catalogs"] == 1 and cleared["warehouses"]["tables"] == 1
        assert cleared["executors"]["scan@v1"]["plans"] == 1
    finally:
        client.close()
        server.close()


def test_cache_clear_during_a_running_scan(make_server, demo_table) -> None:
    server = make_server(batch_size=500)
    client = fl.connect(server.location)
    res = act(client, "materialize", scan(demo_table.uri))
    reader = client.do_get(fl.Ticket(res["ticket"].encode()))
    first = reader.read_chunk().data  # the scan is running: its DuckDB connection is open
    act(client, "cache-clear")
    rest = reader.read_all()
    assert first.num_rows + rest.num_rows == DEMO_ROWS
    assert act(client, "status", {"artifact_uri": res["artifact_uri"]})["state"] == "ready"


def test_dependencies_and_runtime_actions(server, client, demo_table) -> None:
    ready(client, demo_table.uri, "id")
    deps = act(client, "dependencies")
    assert deps["status"] == "ok"
    assert deps["checks"]["store"]["writable"] is True
    assert deps["checks"]["warehouses"]["items"] == [
        {"warehouse": demo_table.warehouse, "status": "ok", "tables": 1}]  # fmt: skip
    assert deps["checks"]["disk"]["disk_free_bytes"] > 0
    runtime = act(client, "runtime")
    assert runtime["pid"] == os.getpid()
    assert {"arrow_memory", "gc", "gc_pauses", "resource_limits", "thread_pools",
            "disk_cache"} <= set(runtime)  # fmt: skip
    assert runtime["thread_pools"]["builds"]["max_workers"] == server.core.settings.build_threads
    assert runtime["disk_cache"]["store_bytes"] == server.core.store.stats()["ready_bytes"]
    names = [a.type for a in client.list_actions()]
    assert {"by-provenance", "cache-clear", "dependencies", "runtime"} <= set(names)


def test_runtime_answers_when_the_data_directory_cannot_be_measured(server, client) -> None:
    data = server.core.settings.data_dir
    data.rename(data.with_name("aside"))
    try:
        runtime = act(client, "runtime")
    finally:
        data.with_name("aside").rename(data)
    assert runtime["pid"] == os.getpid() and runtime["thread_pools"]["builds"]["busy"] == 0
    assert runtime["disk_cache"]["path"] == str(data)
    assert "cannot measure" in runtime["disk_cache"]["error"]


# --- status with a server-side wait ------------------------------------------------------


def test_status_waits_for_the_build_in_place_of_polling(client) -> None:
    res = act(client, "materialize", gated_request("waited"))
    uri = res["artifact_uri"]
    # a short wait answers when it runs out, the build still held at its gate
    assert act(client, "status", {"artifact_uri": uri, "wait_seconds": 0.05})["state"] == "building"
    # one call answers once the build has ended, whenever the gate opens around it
    opener = threading.Thread(target=GATES["waited"].set)
    opener.start()
    status = act(client, "status", {"artifact_uri": uri, "wait_seconds": 30})
    opener.join()
    assert status["state"] == "ready" and status["row_count"] == 4000
    # a ready version answers at once, whatever the wait
    assert act(client, "status", {"artifact_uri": uri, "wait_seconds": 60})["state"] == "ready"


def test_status_wait_ends_with_a_failed_build(client) -> None:
    res = act(client, "materialize", gated_request("failing"))
    canceller = threading.Thread(
        target=act, args=(client, "cancel", {"build_id": res["build_id"] or res["stream_id"]})
    )
    canceller.start()
    status = act(client, "status", {"artifact_uri": res["artifact_uri"], "wait_seconds": 30})
    canceller.join()
    assert status["state"] == "failed" and "cancelled" in status["error"]


@pytest.mark.parametrize("wait", [-1, 61, "soon"])
def test_status_wait_out_of_range_is_a_clean_error(client, wait: object) -> None:
    res = act(client, "materialize", gated_request("range"))
    with pytest.raises(fl.FlightServerError, match="wait_seconds"):
        act(client, "status", {"artifact_uri": res["artifact_uri"], "wait_seconds": wait})


def test_a_build_started_over_flight_is_not_a_daemon_thread(client) -> None:
    # gRPC's handler threads count as daemons, and a thread inherits its creator's flag;
    # a daemon build still inside native code when the process exits aborts it
    info = client.get_flight_info(cmd(gated_request("daemon", batches=2)))
    builds = lambda: [t for t in threading.enumerate() if t.name == "quiver-build"]  # noqa: E731
    try:
        assert wait_until(lambda: bool(builds()), timeout=10), "no build thread seen"
        assert not any(t.daemon for t in builds())
    finally:
        GATES["daemon"].set()
    assert client.do_get(info.endpoints[0].ticket).read_all().num_rows == 2000
