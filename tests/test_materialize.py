"""materialize(): hashing, caching, single flight, refresh, names, failures, errors."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import pyarrow as pa
import pytest
from pydantic import BaseModel, ConfigDict

from catalog import ArtifactStore
from executors import DuplicateExecutor, ResolvedInput, RunContext, load_registry
from executors.sql import SqlExecutor
from foundation import BuildFailed, Conflict, InvalidArgument, NotFound, Settings
from materialize import Materializer, MaterializeRequest, Transform, materialize


def req(
    inputs: list[str], executor: str, params: dict | None = None, **kw: Any
) -> MaterializeRequest:
    return MaterializeRequest(
        inputs=inputs, transform=Transform(executor=executor, params=params or {}), **kw
    )


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tag: str = ""


class GatedExecutor:
    """Counts its runs; its batches wait for a gate the test opens."""

    name: ClassVar[str] = "gated@v1"
    params_model: ClassVar[type[BaseModel]] = NoParams
    ordered_inputs: ClassVar[bool] = False
    description: ClassVar[str] = "test executor"

    def __init__(self) -> None:
        self.runs = 0
        self.gate = threading.Event()
        self.fail_next = False
        self.lock = threading.Lock()

    def check_inputs(self, input_uris: Sequence[str]) -> None:
        pass

    def identity(self, params: BaseModel) -> Any:
        return params.model_dump()

    def run(
        self, inputs: Sequence[ResolvedInput], params: BaseModel, ctx: RunContext
    ) -> pa.RecordBatchReader:
        with self.lock:
            self.runs += 1
            fail, self.fail_next = self.fail_next, False
        schema = pa.schema([("i", pa.int64())])

        def batches() -> Iterator[pa.RecordBatch]:
            yield pa.record_batch([pa.array([0, 1], pa.int64())], schema=schema)
            assert self.gate.wait(30)
            if fail:
                raise RuntimeError("flaky source went away")
            yield pa.record_batch([pa.array([2, 3], pa.int64())], schema=schema)

        return pa.RecordBatchReader.from_batches(schema, batches())


@pytest.fixture
def gated() -> GatedExecutor:
    return GatedExecutor()


@pytest.fixture
def mat(settings: Settings, store: ArtifactStore, gated: GatedExecutor) -> Iterator[Materializer]:
    m = Materializer(settings, store, load_registry(extra=[gated]))
    yield m
    gated.gate.set()
    m.close(cancel=True)


def upload(store: ArtifactStore, table: pa.Table, prov: str = "u") -> str:
    return store.put(table.to_reader(), provenance=prov).uri


def test_sql_without_inputs_then_hit(materializer: Materializer) -> None:
    first = materialize(materializer, [], "sql@v1", {"sql": "select 42 as x"})
    assert (first.hit, first.state) == (False, "ready")
    assert first.info.row_count == 1
    again = materialize(materializer, [], "sql@v1", {"sql": "select 42 as x"})
    assert again.hit and again.artifact_uri == first.artifact_uri
    assert materializer.open(again).read_all().to_pydict() == {"x": [42]}


def test_duckdb_sql_alias_and_artifact_inputs(
    materializer: Materializer, store: ArtifactStore
) -> None:
    a = upload(store, pa.table({"id": [1, 2, 3]}), "a")
    b = upload(store, pa.table({"id": [10, 20]}), "b")
    sql = "select (select sum(id) from input0) * 1000 + (select sum(id) from input1) as v"
    ab = materialize(materializer, [a, b], "duckdb_sql@v1", {"sql": sql})
    ba = materialize(materializer, [b, a], "duckdb_sql@v1", {"sql": sql})
    assert materializer.open(ab).read_all()["v"].to_pylist() == [6030]
    # sql binds inputs by position, so order is part of the provenance
    assert ab.provenance != ba.provenance
    assert materializer.open(ba).read_all()["v"].to_pylist() == [30006]
    lineage = store.inputs(ab.artifact_id, ab.version)
    assert [i.uri for i in lineage] == [a, b]
    deps = store.dependents(lineage[0].artifact_id, lineage[0].artifact_version)
    assert {d.uri for d in deps} == {ab.artifact_uri, ba.artifact_uri}


def test_unordered_executor_ignores_input_order(
    mat: Materializer, store: ArtifactStore, gated
) -> None:
    gated.gate.set()
    a = upload(store, pa.table({"x": [1]}), "a")
    b = upload(store, pa.table({"x": [2]}), "b")
    one = mat.materialize(req([a, b], "gated@v1"), wait=True)
    two = mat.materialize(req([b, a], "gated@v1"), wait=True)
    assert two.hit and one.artifact_uri == two.artifact_uri and gated.runs == 1


def test_names_and_artifact_name_inputs(materializer: Materializer, store: ArtifactStore) -> None:
    res = materialize(materializer, [], "sql@v1", {"sql": "select 1 as one"}, name="team/one")
    assert res.name_uri == "strata://name/team/one"
    assert store.get_name("team/one").artifact_uri == res.artifact_uri
    via_name = materialize(
        materializer,
        ["strata://name/team/one"],
        "sql@v1",
        {"sql": "select one + 1 as two from input0"},
    )
    assert materializer.open(via_name).read_all()["two"].to_pylist() == [2]
    assert via_name.input_versions == {"strata://name/team/one": res.artifact_uri}


def test_concurrent_identical_requests_build_once(mat: Materializer, gated: GatedExecutor) -> None:
    results, errors = [], []
    barrier = threading.Barrier(8)

    def go() -> None:
        barrier.wait()
        try:
            results.append(mat.materialize(req([], "gated@v1", {"tag": "same"})))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert gated.runs == 1
    assert len({r.artifact_uri for r in results}) == 1
    assert all(r.state == "building" and not r.hit for r in results)
    readers = [mat.open(r) for r in results[:3]]
    gated.gate.set()
    for reader in readers:
        assert reader.read_all()["i"].to_pylist() == [0, 1, 2, 3]
    final = mat.materialize(req([], "gated@v1", {"tag": "same"}))
    assert final.hit and gated.runs == 1


def test_failed_build_is_recorded_then_retried(
    mat: Materializer, gated: GatedExecutor, store: ArtifactStore
) -> None:
    gated.fail_next = True
    gated.gate.set()
    first = mat.materialize(req([], "gated@v1", {"tag": "f"}))
    with pytest.raises(BuildFailed, match="flaky source went away"):
        first.build.wait()
    info = store.get(first.artifact_id, first.version)
    assert info.state == "failed" and "flaky source went away" in info.error
    retry = mat.materialize(req([], "gated@v1", {"tag": "f"}), wait=True)
    assert retry.state == "ready" and not retry.hit
    assert (retry.artifact_id, retry.version) == (first.artifact_id, first.version + 1)
    assert gated.runs == 2


def test_refresh_builds_new_version_of_same_artifact(
    materializer: Materializer, store: ArtifactStore
) -> None:
    r1 = materialize(materializer, [], "sql@v1", {"sql": "select 7 as s"})
    r2 = materialize(materializer, [], "sql@v1", {"sql": "select 7 as s"}, refresh=True)
    assert not r2.hit and r2.artifact_id == r1.artifact_id and r2.version == r1.version + 1
    assert store.get(r1.artifact_id, r1.version).state == "superseded"
    assert (
        materialize(materializer, [], "sql@v1", {"sql": "select 7 as s"}).artifact_uri
        == r2.artifact_uri
    )


def test_corrupt_artifact_is_rebuilt_not_served(
    materializer: Materializer, store: ArtifactStore
) -> None:
    r1 = materialize(materializer, [], "sql@v1", {"sql": "select * from range(1000)"})
    store.path_of(r1.artifact_id, r1.version).write_bytes(b"torn")
    r2 = materialize(materializer, [], "sql@v1", {"sql": "select * from range(1000)"})
    assert not r2.hit and r2.version == r1.version + 1
    assert materializer.open(r2).read_all().num_rows == 1000


def test_explain(materializer: Materializer) -> None:
    r = req([], "sql@v1", {"sql": "select 3 as t"})
    before = materializer.explain(r)
    assert before["would_hit"] is False and len(before["provenance_hash"]) == 64
    materializer.materialize(r, wait=True)
    after = materializer.explain(r)
    assert after["would_hit"] is True and after["provenance_hash"] == before["provenance_hash"]


def test_duplicate_executor_fails_at_startup() -> None:
    with pytest.raises(DuplicateExecutor, match="'sql@v1' is registered twice"):
        load_registry(extra=[SqlExecutor()])


def test_registry_describes_params() -> None:
    described = {d["name"]: d for d in load_registry().describe()}
    assert {"scan@v1", "sql@v1", "duckdb_sql@v1"} <= set(described)
    assert "sql" in described["sql@v1"]["params_schema"]["properties"]


@pytest.mark.parametrize(
    ("inputs", "executor", "params", "error", "message"),
    [
        (
            [],
            "nope@v1",
            {},
            InvalidArgument,
            r"unknown executor 'nope@v1'; registered executors: .*scan@v1",
        ),
        ([], "sql@v1", {}, InvalidArgument, r"params\.sql: Field required"),
        (
            [],
            "sql@v1",
            {"sql": "select 1", "x": 1},
            InvalidArgument,
            r"params\.x: Extra inputs are not permitted",
        ),
        ([], "sql@v1", {"sql": 5}, InvalidArgument, r"params\.sql: Input should be a valid string"),
        ([], "sql@v1", {"sql": "selec 1"}, InvalidArgument, r"invalid SQL: Parser Error"),
        (
            [],
            "sql@v1",
            {"sql": "select 1; select 2"},
            InvalidArgument,
            "exactly one statement, got 2",
        ),
        (
            [],
            "sql@v1",
            {"sql": "create table t (x int)"},
            InvalidArgument,
            "one SELECT query; got a CREATE statement",
        ),
        (
            [],
            "sql@v1",
            {"sql": "select * from nowhere"},
            InvalidArgument,
            "Table with name nowhere does not exist",
        ),
        (
            [],
            "sql@v1",
            {"sql": "select * from read_csv('/etc/passwd')"},
            InvalidArgument,
            "disabled by configuration",
        ),
        ([], "sql@v1", {"sql": "select * from input0"}, InvalidArgument, "input0 does not exist"),
        (
            ["s3://bucket/x#db.t"],
            "sql@v1",
            {"sql": "select 1"},
            InvalidArgument,
            "unsupported scheme 's3'",
        ),
        (
            ["strata://artifact/nope@v=1"],
            "sql@v1",
            {"sql": "select 1"},
            NotFound,
            "strata://artifact/nope@v=1 not found",
        ),
        (
            ["strata://name/missing"],
            "sql@v1",
            {"sql": "select 1"},
            NotFound,
            "Name 'missing' not found",
        ),
        ([], "scan@v1", {}, InvalidArgument, "scan@v1 transform requires exactly one input"),
    ],
)
def test_bad_requests_are_refused(materializer, inputs, executor, params, error, message) -> None:
    with pytest.raises(error, match=message):
        materializer.materialize(req(inputs, executor, params), wait=True)


def test_bad_name_refused(materializer: Materializer) -> None:
    with pytest.raises(InvalidArgument, match="invalid name"):
        materializer.materialize(req([], "sql@v1", {"sql": "select 1"}, name="a//b"))


def test_input_still_building_is_a_conflict(mat: Materializer, gated) -> None:
    building = mat.materialize(req([], "gated@v1", {"tag": "slow"}))
    with pytest.raises(Conflict, match=r"is not ready \(state=building\)"):
        mat.materialize(req([building.artifact_uri], "sql@v1", {"sql": "select 1"}))
    gated.gate.set()
    building.build.wait()


def test_sql_time_limit(tmp_path, store: ArtifactStore) -> None:
    settings = Settings(data_dir=tmp_path / "d", query_time_limit_s=0.2)
    m = Materializer(settings, store, load_registry())
    try:
        res = m.materialize(req([], "sql@v1", {"sql": "select count(*) from range(100000000000)"}))
        with pytest.raises(BuildFailed, match=r"exceeded the time limit of 0\.2 s"):
            res.build.wait()
    finally:
        m.close(cancel=True)


# --- scan@v1 through materialize, on real warehouses -------------------------


@pytest.fixture
def fresh_table(tmp_path):
    from catalog import write_demo_warehouse

    return write_demo_warehouse(tmp_path / "wh", rows=5_000, files=2)


def scan(ref, **params) -> MaterializeRequest:
    return req([ref.uri], "scan@v1", params)


def test_scan_hits_until_the_table_moves(materializer: Materializer, fresh_table) -> None:
    from catalog import demo_batch

    first = materializer.materialize(scan(fresh_table, columns=["id", "value"]), wait=True)
    assert first.info.row_count == 5_000 and first.schema.names == ["id", "value"]
    assert materializer.materialize(scan(fresh_table, columns=["id", "value"])).hit
    # the bare-path form and the file:// form are the same input
    bare = req([f"{fresh_table.warehouse}#db.events"], "scan@v1", {"columns": ["id", "value"]})
    assert materializer.materialize(bare).artifact_uri == first.artifact_uri
    old_snapshot = int(first.input_versions[fresh_table.uri])
    materializer.warehouses.load(fresh_table).append(demo_batch(5_000, 6_000))
    moved = materializer.materialize(scan(fresh_table, columns=["id", "value"]), wait=True)
    assert not moved.hit and moved.info.row_count == 6_000
    assert moved.artifact_uri != first.artifact_uri
    pinned = materializer.materialize(
        scan(fresh_table, columns=["id", "value"], snapshot_id=old_snapshot), wait=True
    )
    assert pinned.info.row_count == 5_000
    assert pinned.input_versions == {fresh_table.uri: str(old_snapshot)}


def test_cached_hit_answers_only_hits_it_can_see_in_memory(
    settings: Settings, store: ArtifactStore, fresh_table
) -> None:
    from catalog import demo_batch

    request = scan(fresh_table, columns=["id"])
    m = Materializer(settings, store, load_registry())
    try:
        assert m.cached_hit(request) is None  # nothing built, no catalog opened yet
        built = m.materialize(request, wait=True)
        hit = m.cached_hit(request)
        assert hit is not None and hit.hit and hit.artifact_uri == built.artifact_uri
        assert hit.to_json() == m.materialize(request).to_json()
        # What only the full path may answer: refresh, names, bad input, a miss.
        assert m.cached_hit(scan(fresh_table, columns=["id"], refresh=True)) is None
        assert (
            m.cached_hit(req([fresh_table.uri], "scan@v1", {"columns": ["id"]}, name="n")) is None
        )
        assert m.cached_hit(scan(fresh_table, columns=["nope"])) is None
        assert m.cached_hit(req([fresh_table.uri + "x"], "scan@v1")) is None
        assert m.cached_hit(scan(fresh_table, columns=["value"])) is None
        # A new snapshot moves the table: never the old artifact from memory.
        m.warehouses.load(fresh_table).append(demo_batch(5_000, 5_100))
        assert m.cached_hit(request) is None
        moved = m.materialize(request, wait=True)
        assert not moved.hit and moved.artifact_uri != built.artifact_uri
        assert m.cached_hit(request).artifact_uri == moved.artifact_uri
    finally:
        m.close(cancel=True)
    fresh = Materializer(settings, store, load_registry())  # a restart: caches are cold
    try:
        assert fresh.cached_hit(request) is None
        assert fresh.materialize(request).hit
    finally:
        fresh.close(cancel=True)


def test_a_moved_or_rewritten_warehouse_is_never_answered_from_memory(
    settings: Settings, store: ArtifactStore, tmp_path
) -> None:
    import shutil

    from catalog import write_demo_warehouse

    wh = tmp_path / "wh"
    ref = write_demo_warehouse(wh, rows=100, files=1)
    request = scan(ref)
    m = Materializer(settings, store, load_registry())
    try:
        built = m.materialize(request, wait=True)
        assert m.cached_hit(request) is not None
        # Moved away: the table no longer exists, from memory as on the full path.
        wh.rename(tmp_path / "aside")
        assert m.cached_hit(request) is None
        with pytest.raises(NotFound, match="does not exist"):
            m.materialize(request)
        # Deleted and written again: the new table, never the old artifact.
        shutil.rmtree(tmp_path / "aside")
        write_demo_warehouse(wh, rows=50, files=1, seed=1)
        assert m.cached_hit(request) is None
        again = m.materialize(request, wait=True)
        assert not again.hit and again.info.row_count == 50
        assert again.artifact_uri != built.artifact_uri
        assert m.cached_hit(request).artifact_uri == again.artifact_uri
    finally:
        m.close(cancel=True)


def test_cached_hit_never_waits_for_a_lock(
    settings: Settings, store: ArtifactStore, fresh_table, tmp_path
) -> None:
    """What an event loop calls must not wait: a lock held elsewhere is a None (the full
    path, on a worker thread, waits instead)."""
    import contextlib
    import os
    import sqlite3
    import time

    from catalog import write_demo_warehouse
    from tests.polling import wait_until

    request = scan(fresh_table, columns=["id"])
    m = Materializer(settings, store, load_registry())

    def answered_at_once() -> None:
        started = time.monotonic()
        assert m.cached_hit(request) is None
        assert time.monotonic() - started < 1.0

    def held(db: str, how: str) -> sqlite3.Connection:  # another process's transaction
        con = sqlite3.connect(db, isolation_level=None)
        con.execute(f"BEGIN {how}")
        return con

    try:
        built = m.materialize(request, wait=True)
        assert m.cached_hit(request) is not None
        # 1. A writer of catalog.db is committing (its exclusive lock).
        writer = held(os.path.join(fresh_table.warehouse, "catalog.db"), "EXCLUSIVE")
        try:
            answered_at_once()
        finally:
            writer.execute("ROLLBACK")
            writer.close()
        assert m.cached_hit(request) is not None
        # 2. A thread opening another warehouse's catalog (held up by that catalog.db).
        other = write_demo_warehouse(tmp_path / "other", rows=10, files=1)
        writer = held(os.path.join(other.warehouse, "catalog.db"), "EXCLUSIVE")

        def open_other() -> None:
            with contextlib.suppress(Exception):
                m.materialize(scan(other), wait=True)

        opener = threading.Thread(target=open_other)
        opener.start()
        try:
            assert wait_until(m.warehouses._lock.locked)
            answered_at_once()
        finally:
            writer.execute("ROLLBACK")
            writer.close()
            opener.join(60)
        assert m.cached_hit(request) is not None
        # 3. A gc holding the store's lock while it waits for another writer of store.db.
        store.set_name("kept", built.artifact_id, built.version)  # what gc must not take
        upload(store, pa.table({"x": [1]}), prov="victim")
        writer = held(str(store.root / "store.db"), "IMMEDIATE")

        def store_lock_held() -> bool:
            if store.lock.acquire(blocking=False):
                store.lock.release()
                return False
            return True

        collector = threading.Thread(target=store.gc, kwargs={"max_bytes": 0})
        collector.start()
        try:
            assert wait_until(store_lock_held)
            answered_at_once()
        finally:
            writer.execute("ROLLBACK")
            writer.close()
            collector.join(60)
        assert m.cached_hit(request) is not None
        # 4. A hit whose use is due to be recorded for gc (a write), while another
        # process writes store.db.
        aged = time.time() - 3600
        con = sqlite3.connect(store.root / "store.db")
        con.execute(
            "UPDATE artifacts SET created_at=?, last_read_at=? WHERE artifact_id=? AND version=?",
            (aged, aged, built.artifact_id, built.version),
        )
        con.commit()
        con.close()
        writer = held(str(store.root / "store.db"), "IMMEDIATE")
        try:
            answered_at_once()
        finally:
            writer.execute("ROLLBACK")
            writer.close()
        assert m.materialize(request).hit  # the full path records the use ...
        assert store.get(built.artifact_id, built.version).last_read_at > aged
        assert m.cached_hit(request) is not None  # ... and memory answers again
    finally:
        m.close(cancel=True)


def test_a_hit_counts_as_a_use_for_gc(materializer: Materializer, fresh_table) -> None:
    import time

    built = materializer.materialize(scan(fresh_table, columns=["id"]), wait=True)
    before = time.time()
    assert materializer.materialize(scan(fresh_table, columns=["id"])).hit
    # gc's idleness counts from last_read_at: the hit moved it past the build's end.
    used = materializer.store.get(built.artifact_id, built.version).last_read_at
    assert used is not None and used >= before


def test_scan_filter_order_does_not_matter(materializer: Materializer, fresh_table) -> None:
    f1 = {"column": "id", "op": "<", "value": 100}
    f2 = {"column": "category", "op": "=", "value": "beta"}
    a = materializer.materialize(scan(fresh_table, filters=[f1, f2]), wait=True)
    b = materializer.materialize(scan(fresh_table, filters=[f2, f1]))
    assert b.hit and a.artifact_uri == b.artifact_uri
    rows = materializer.open(b).read_all()
    assert set(rows["category"].to_pylist()) == {"beta"} and max(rows["id"].to_pylist()) < 100


def test_stream_mode_follows_a_scan_build(materializer: Materializer, fresh_table) -> None:
    res = materializer.materialize(scan(fresh_table))
    table = materializer.open(res).read_all()
    assert table.num_rows == 5_000
    assert sorted(table["id"].to_pylist()) == list(range(5_000))


def test_sql_over_a_table_reads_it_without_building_its_scan(
    materializer: Materializer, store: ArtifactStore, fresh_table
) -> None:
    res = materializer.materialize(
        req([fresh_table.uri], "sql@v1", {"sql": "select count(*) as n, max(id) as m from input0"}),
        wait=True,
    )
    assert materializer.open(res).read_all().to_pylist() == [{"n": 5_000, "m": 4_999}]
    # read from the table's files: no scan@v1 artifact of the whole table was made
    assert not materializer.explain(scan(fresh_table))["would_hit"]


def test_scan_errors_fail_the_request_not_a_build(materializer: Materializer, fresh_table) -> None:
    with pytest.raises(InvalidArgument, match="unknown column 'nope'"):
        materializer.materialize(scan(fresh_table, columns=["nope"]))
    with pytest.raises(NotFound, match="snapshot 1 does not exist"):
        materializer.materialize(scan(fresh_table, snapshot_id=1))
    with pytest.raises(NotFound, match=r"table 'db\.missing' does not exist"):
        materializer.materialize(req([f"{fresh_table.warehouse}#db.missing"], "scan@v1"))
    with pytest.raises(InvalidArgument, match="scan@v1 transform requires exactly one input"):
        materializer.materialize(req([fresh_table.uri, fresh_table.uri], "scan@v1"))
    assert materializer.store.list() == []


def test_name_is_set_when_a_streamed_build_finishes(
    mat: Materializer, gated: GatedExecutor, store: ArtifactStore
) -> None:
    res = mat.materialize(req([], "gated@v1", {"tag": "named"}, name="later"))
    assert res.state == "building" and res.name_uri is None
    with pytest.raises(NotFound):
        store.get_name("later")
    gated.gate.set()
    res.build.wait()
    assert store.get_name("later").artifact_uri == res.artifact_uri
