"""``scan@v1`` built on a real Dask ``distributed.LocalCluster`` (2 worker processes): one
task per partition of the data files, each writing a part (to a directory, or a local
S3-compatible server); the head publishes them as one artifact. Checked against the
in-process scan of the same snapshot, through the Materializer and a plain Flight client;
a failed part, a cancel and a killed worker never leave a partial artifact."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.flight as fl
import pytest

from catalog import ArtifactStore, TableRef, write_demo_warehouse
from executors import load_registry
from foundation import BuildFailed, Settings, Unavailable
from materialize import Materializer, MaterializeRequest, Transform
from materialize.dask_builds import close_clients
from tests.fixtures_flight import ServerFactory, act, cmd
from tests.fixtures_iceberg import (
    ScanFn,
    open_catalog,
    wide_table,
)
from tests.fixtures_s3 import S3_CREDENTIALS, make_bucket
from tests.polling import wait_until

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """2 worker processes, one thread each: the cluster has 2 worker threads. The workers
    hold the local S3 server's test credentials, as workers of a real cluster hold theirs."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in S3_CREDENTIALS.items():
            env.setenv(name, value)
        c = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
            host="127.0.0.1", protocol="tcp",
        )  # fmt: skip
    try:
        yield c
    finally:
        close_clients()
        c.close(timeout=30)


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> tuple[TableRef, list[int]]:
    return wide_table(tmp_path_factory.mktemp("dask") / "wide", rows=6_000, files=6)


def _settings(tmp_path: Path, cluster: Any, **kw: Any) -> Settings:
    return Settings(
        data_dir=tmp_path / "data", notebook_root=tmp_path / "nb",
        dask_scheduler=cluster.scheduler_address, **kw,
    )  # fmt: skip


@pytest.fixture
def built(tmp_path: Path, cluster: Any) -> Iterator[tuple[Materializer, ArtifactStore]]:
    settings = _settings(tmp_path, cluster, part_target_bytes=1)  # one part per data file
    with ArtifactStore(settings.data_dir, max_bytes=settings.cache_max_bytes) as store:
        m = Materializer(settings, store, load_registry())
        yield m, store
        m.close(cancel=True)


def _request(ref: TableRef, **params: Any) -> MaterializeRequest:
    return MaterializeRequest(
        inputs=[ref.uri], transform=Transform(executor="scan@v1", params=params)
    )


def _stored_files(store: ArtifactStore) -> list[str]:
    root = Path(store.parts.uri.removeprefix("file://"))
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("appended", [0, 500], ids=["one-file", "and-a-small-one"])
def test_a_big_file_is_built_in_row_group_ranges(
    tmp_path: Path, cluster: Any, scan: ScanFn, appended: int
) -> None:
    """ONE data file of 8 row groups (and, second, a small file appended after it): 2
    worker threads get 2 parts, each a range of the big file's row groups (the second
    part, with the small file, a range and a whole file), position deletes in both."""
    ref, deleted = wide_table(
        tmp_path / "one", rows=40_000, files=1, appended=appended, row_group_rows=5_000
    )
    cat = open_catalog(tmp_path / "one")
    sizes = [t.file.file_size_in_bytes for t in cat.load_table("db.events").scan().plan_files()]
    cat.engine.dispose()
    assert len(sizes) == 1 + bool(appended)
    # a target of the whole table: one share's worth, but the cluster has 2 worker threads
    settings = _settings(tmp_path, cluster, part_target_bytes=sum(sizes))
    params: dict[str, Any] = {
        "columns": ["kind", "id"],
        "filters": [{"column": "id", "op": ">=", "value": 12_345}],
    }
    rows = 40_000 + appended - len(deleted)
    with ArtifactStore(settings.data_dir, max_bytes=settings.cache_max_bytes) as store:
        m = Materializer(settings, store, load_registry())
        try:
            result = m.materialize(_request(ref), wait=True)
            parts = store.parts_of(result.artifact_id, result.version)
            assert len(parts) == 2 and all(p.rows >= rows // 3 for p in parts), parts
            got = store.open_table(result.artifact_id, result.version)
            want = scan(ref).read_all()
            assert got.schema == want.schema and "kind" in got.schema.names
            assert got.sort_by("id").equals(want.sort_by("id")) and got.num_rows == rows
            assert not set(deleted) & set(got["id"].to_pylist())
            if not appended:  # (pyiceberg plans the appended file first)
                # the parts are ranges in file order: the first part's ids all come first
                ids = got["id"].to_pylist()
                assert max(ids[: parts[0].rows]) < min(ids[parts[0].rows :])

            filtered = m.materialize(_request(ref, **params), wait=True)
            assert len(store.parts_of(filtered.artifact_id, filtered.version)) == 2
            table = store.open_table(filtered.artifact_id, filtered.version)
            assert table.sort_by("id").equals(scan(ref, params).read_all().sort_by("id"))
            assert table.num_rows == rows - 12_345 + sum(d < 12_345 for d in deleted)
        finally:
            m.close(cancel=True)


def test_distributed_scan_is_the_in_process_scan_in_parts(
    built: tuple[Materializer, ArtifactStore], wide: tuple[TableRef, list[int]], scan: ScanFn
) -> None:
    m, store = built
    ref, deleted = wide
    first, joined = m.materialize(_request(ref)), m.materialize(_request(ref))  # one build
    followed = m.open(first)  # a reader that joined the build gets the parts once published
    result = m.materialize(_request(ref), wait=True)
    assert first.build is not None and m.counters["misses"] == 1
    assert (joined.artifact_id, joined.version) == (first.artifact_id, first.version)
    assert (result.artifact_id, result.version) == (first.artifact_id, first.version)
    parts = store.parts_of(result.artifact_id, result.version)
    assert len(parts) == 7  # one per data file (target 1 byte)
    assert _stored_files(store) == sorted(p.key for p in parts)
    got = store.open_table(result.artifact_id, result.version)
    want = scan(ref).read_all()
    assert got.schema == want.schema
    assert got.schema.names == ["id", "value", "kind", "ts", "payload"]  # renamed by field id
    assert got.sort_by("id").equals(want.sort_by("id"))
    assert sum(p.rows for p in parts) == got.num_rows == 6_500 - len(deleted)
    assert not set(deleted) & set(got["id"].to_pylist())
    assert followed.read_all().equals(got)

    misses = m.counters["misses"]
    again = m.materialize(_request(ref), wait=True)
    assert again.hit and (again.artifact_id, again.version) == (result.artifact_id, result.version)
    assert m.counters["misses"] == misses


def test_a_flight_client_reads_every_part_endpoint_in_parallel(
    make_flight_server: ServerFactory,
    cluster: Any,
    wide: tuple[TableRef, list[int]],
    scan: ScanFn,
) -> None:
    server = make_flight_server(dask_scheduler=cluster.scheduler_address, part_target_bytes=1)
    ref, deleted = wide
    request = {"inputs": [ref.uri], "transform": {"executor": "scan@v1", "params": {}}}
    with fl.connect(server.location) as client:
        started = act(client, "materialize", request)
        whole = client.do_get(fl.Ticket(started["ticket"].encode())).read_all()  # follows it
        info = client.get_flight_info(cmd(request))
        assert json.loads(info.app_metadata)["hit"] is True
        assert info.ordered and len(info.endpoints) == 7  # one per part
        with ThreadPoolExecutor(4) as pool:
            parts = list(pool.map(lambda e: client.do_get(e.ticket).read_all(), info.endpoints))
    got = pa.concat_tables(parts)
    assert got.equals(whole) and info.total_records == got.num_rows == 6_500 - len(deleted)
    want = scan(ref).read_all()
    assert got.schema == want.schema and got.sort_by("id").equals(want.sort_by("id"))


def test_parts_go_to_an_s3_compatible_store(
    s3: str,
    monkeypatch: pytest.MonkeyPatch,
    cluster: Any,
    tmp_path: Path,
    wide: tuple[TableRef, list[int]],
    scan: ScanFn,
) -> None:
    for name, value in S3_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    make_bucket(s3, "quiver")
    host = s3.removeprefix("http://")
    uri = f"s3://quiver/parts?endpoint_override={host}&scheme=http&region=us-east-1"
    settings = _settings(tmp_path, cluster, part_target_bytes=1, part_storage=uri)
    with ArtifactStore(settings.data_dir, part_storage=uri) as store:
        m = Materializer(settings, store, load_registry())
        try:
            result = m.materialize(_request(wide[0]), wait=True)
            parts = store.parts_of(result.artifact_id, result.version)
            assert len(parts) == 7 and not (settings.data_dir / "parts").exists()
            got = store.open_table(result.artifact_id, result.version)
            assert got.sort_by("id").equals(scan(wide[0]).read_all().sort_by("id"))
        finally:
            m.close(cancel=True)


def test_filters_and_projections_in_parts(
    tmp_path: Path, cluster: Any, wide: tuple[TableRef, list[int]], scan: ScanFn
) -> None:
    ref, _ = wide
    # a target of 1/4 of the table whose filter keeps 6 of its 7 files: 4 parts
    settings = _settings(tmp_path, cluster, part_target_bytes=120_000 // 4)
    params: dict[str, Any] = {
        "columns": ["kind", "id"],
        "filters": [{"column": "kind", "op": "in", "value": ["alpha", "gamma"]},
                    {"column": "id", "op": ">=", "value": 1000}],
    }  # fmt: skip
    with ArtifactStore(settings.data_dir, max_bytes=settings.cache_max_bytes) as store:
        m = Materializer(settings, store, load_registry())
        try:
            result = m.materialize(_request(ref, **params), wait=True)
            assert len(store.parts_of(result.artifact_id, result.version)) == 4
            got = store.open_table(result.artifact_id, result.version)
            assert got.sort_by("id").equals(scan(ref, params).read_all().sort_by("id"))
            assert got.num_rows > 0

            none = {"filters": [{"column": "id", "op": "<", "value": -1}]}
            empty = m.materialize(_request(ref, **none), wait=True)
            table = store.open_table(empty.artifact_id, empty.version)
            assert table.num_rows == 0 and table.schema == scan(ref, none).schema
        finally:
            m.close(cancel=True)


def test_a_table_of_one_file_or_under_the_target_builds_in_process(
    built: tuple[Materializer, ArtifactStore],
    tmp_path: Path,
    cluster: Any,
    wide: tuple[TableRef, list[int]],
) -> None:
    m, store = built
    ref = write_demo_warehouse(tmp_path / "small", rows=100, files=1)
    result = m.materialize(_request(ref), wait=True)
    assert store.parts_of(result.artifact_id, result.version) == []
    assert store.open_table(result.artifact_id, result.version).num_rows == 100

    settings = _settings(tmp_path / "default", cluster)  # 7 files, far under 128 MiB
    with ArtifactStore(settings.data_dir, max_bytes=settings.cache_max_bytes) as own:
        default = Materializer(settings, own, load_registry())
        try:
            result = default.materialize(_request(wide[0]), wait=True)
            assert own.parts_of(result.artifact_id, result.version) == []
            assert result.info is not None and result.info.row_count == 6_500 - len(wide[1])
        finally:
            default.close(cancel=True)


def test_a_cluster_without_workers_is_refused_up_front(
    tmp_path: Path, wide: tuple[TableRef, list[int]]
) -> None:
    with distributed.LocalCluster(
        n_workers=0, processes=False, dashboard_address=":0", host="127.0.0.1", protocol="tcp"
    ) as empty:
        settings = _settings(tmp_path, empty)
        with ArtifactStore(settings.data_dir, max_bytes=settings.cache_max_bytes) as store:
            m = Materializer(settings, store, load_registry())
            try:
                with pytest.raises(Unavailable, match="has no workers"):
                    m.materialize(_request(wide[0]), wait=True)
            finally:
                m.close(cancel=True)
                close_clients()  # its scheduler goes away with the block


def test_a_failed_part_fails_the_build_and_leaves_no_parts(
    built: tuple[Materializer, ArtifactStore], tmp_path: Path
) -> None:
    m, store = built
    ref, _ = wide_table(tmp_path / "broken", rows=600, files=3)
    cat = open_catalog(tmp_path / "broken")
    third = list(cat.load_table("db.events").scan().plan_files())[2].file.file_path
    cat.engine.dispose()
    Path(third.removeprefix("file://")).write_bytes(b"not parquet")
    with pytest.raises(BuildFailed, match=r"part 3 of 4 failed on the Dask cluster: .*"):
        m.materialize(_request(ref), wait=True)
    assert wait_until(lambda: not _stored_files(store), timeout=10), _stored_files(store)
    assert store.find_ready(m.plan(_request(ref)).provenance) is None


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> TableRef:
    """Parts that take a while: 1M rows in 4 files (and 500 more in a fifth)."""
    return wide_table(tmp_path_factory.mktemp("dask") / "big", rows=1_000_000, files=4)[0]


def _running_parts(client: Any, result: Any) -> dict[str, Any]:
    """Wait until a part of the build runs on a worker: the workers and their part tasks."""
    busy: dict[str, Any] = {}

    def a_part_runs() -> bool:
        nonlocal busy
        busy = {
            w: keys for w, keys in client.processing().items()
            if any("quiver-part" in str(k) for k in keys)
        }  # fmt: skip
        return bool(busy) or result.build.done

    assert wait_until(a_part_runs, timeout=30), busy
    assert busy, "the build ended before a part was seen running"
    return busy


def test_cancel_stops_the_tasks_and_leaves_no_parts(
    built: tuple[Materializer, ArtifactStore], cluster: Any, big: TableRef
) -> None:
    m, store = built
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        result = m.materialize(_request(big))
        _running_parts(client, result)
        assert m.cancel(result.artifact_id, result.version, wait=30)
        with pytest.raises(BuildFailed, match="cancelled"):
            result.build.wait(0)
        assert store.parts_of(result.artifact_id, result.version) == []
        assert wait_until(lambda: not _stored_files(store), timeout=10), _stored_files(store)
        assert wait_until(lambda: not any(client.processing().values()), timeout=10)
    again = m.materialize(_request(big), wait=True)  # a later request builds again
    assert again.info is not None and again.info.row_count == 1_000_494


def test_a_worker_killed_mid_build_never_publishes_a_partial_artifact(
    cluster: Any, tmp_path: Path, scan: ScanFn, big: TableRef
) -> None:
    ref = big
    settings = _settings(tmp_path, cluster, part_target_bytes=1)
    client = distributed.Client(cluster.scheduler_address, set_as_default=False)
    with ArtifactStore(settings.data_dir, max_bytes=settings.cache_max_bytes) as store:
        m = Materializer(settings, store, load_registry())
        try:
            pids = client.run(os.getpid)
            result = m.materialize(_request(ref))
            assert result.build is not None
            busy = _running_parts(client, result)
            os.kill(pids[next(iter(busy))], signal.SIGKILL)
            try:
                info = result.build.wait(60)
            except BuildFailed:
                assert store.parts_of(result.artifact_id, result.version) == []
                assert wait_until(lambda: not _stored_files(store), timeout=10), _stored_files(
                    store
                )
            else:  # Dask ran the part again on the other worker: the whole result
                parts = store.parts_of(info.artifact_id, info.version)
                assert len(parts) == 5
                got = store.open_table(info.artifact_id, info.version)
                assert got.sort_by("id").equals(scan(ref).read_all().sort_by("id"))
        finally:
            m.close(cancel=True)
            # the nanny brings a new worker up
            workers = client.nthreads
            assert wait_until(lambda: len(workers()) == 2, timeout=30), workers()
            client.close()
