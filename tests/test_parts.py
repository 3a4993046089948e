"""Part storage and partitioned artifacts (issue 20): a real local directory and a real
S3-compatible server (moto's server mode on loopback), the real store."""

from __future__ import annotations

import json
import pickle
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as fl
import pytest

from catalog import ArtifactStore
from catalog.parts import PartInfo, PartStore, check_key
from flight import DataNodeServer, QuiverFlightServer
from foundation import BuildFailed, Conflict, InvalidArgument, NotFound, Settings, Unavailable
from tests.fixtures_rest import Rest
from tests.fixtures_s3 import S3_CREDENTIALS, make_bucket
from tests.polling import wait_until

SCHEMA = pa.schema([("i", pa.int64()), ("s", pa.string())])


def batch(start: int, n: int) -> pa.RecordBatch:
    return pa.record_batch(
        [pa.array(range(start, start + n)), pa.array([f"r{k}" for k in range(start, start + n)])],
        schema=SCHEMA,
    )


def reader_of(*batches: pa.RecordBatch) -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(SCHEMA, list(batches))


@pytest.fixture
def store(tmp_path: Path, part_uri: str) -> Iterator[ArtifactStore]:
    with ArtifactStore(tmp_path / "store", part_storage=part_uri) as s:
        yield s


@pytest.mark.parametrize(
    "key", ["", "/abs/p.arrow", "../p.arrow", "a/../p.arrow", "a//p.arrow", "a/./p", ".tmp-x/p"]
)
def test_a_key_that_could_leave_the_storage_is_refused(key: str) -> None:
    with pytest.raises(InvalidArgument):
        check_key(key)


@pytest.mark.parametrize(
    "uri", ["relative/dir", "s3://b/p?secret=1", "s3:///p", "s3://b/p?max_attempts=x", "gs://b/p"]
)
def test_a_part_storage_uri_it_cannot_use_is_refused(uri: str) -> None:
    with pytest.raises(InvalidArgument, match="part storage"):
        PartStore(uri)


def test_a_part_store_pickles_as_its_uri(part_uri: str) -> None:
    parts = PartStore(part_uri)
    info = parts.write("a/p-0.arrow", reader_of(batch(0, 5)))
    again = pickle.loads(pickle.dumps(parts))
    assert again.uri == parts.uri
    assert again.open(info.key).read_all().num_rows == 5
    with pytest.raises(InvalidArgument):
        parts.open("../store.db")


def test_a_part_is_visible_only_once_complete_and_a_failed_write_leaves_nothing(
    part_uri: str,
) -> None:
    parts = PartStore(part_uri)
    seen_while_writing: list[int | None] = []

    def batches() -> Iterator[pa.RecordBatch]:
        yield batch(0, 10)
        seen_while_writing.append(parts.size("b/p-0.arrow"))
        yield batch(10, 10)

    info = parts.write("b/p-0.arrow", pa.RecordBatchReader.from_batches(SCHEMA, batches()))
    assert seen_while_writing == [None]
    assert info == PartInfo("b/p-0.arrow", 20, parts.size("b/p-0.arrow") or -1)

    def broken() -> Iterator[pa.RecordBatch]:
        yield batch(0, 10)
        raise RuntimeError("the task died")

    with pytest.raises(RuntimeError, match="the task died"):
        parts.write("b/p-1.arrow", pa.RecordBatchReader.from_batches(SCHEMA, broken()))
    assert parts.size("b/p-1.arrow") is None
    listed = parts.fs.get_file_info(pa.fs.FileSelector(f"{parts.base}/b", recursive=True))
    assert [Path(f.path).name for f in listed] == ["p-0.arrow"]  # no temporary left behind
    parts.delete_prefix("b/")
    assert parts.size("b/p-0.arrow") is None
    parts.delete_prefix("b/")  # nothing there: fine


def build_parts(store: ArtifactStore, sizes: list[int], *, provenance: str = "p1") -> tuple:
    build = store.begin_build(provenance=provenance, executor="t", params={}, inputs=[])
    written, start = [], 0
    for i, n in enumerate(sizes):
        key = f"{build.part_prefix}part-{i:05d}.arrow"
        written.append(
            store.parts.write(
                key, reader_of(batch(start, n // 2), batch(start + n // 2, n - n // 2))
            )
        )
        start += n
    return build, written


def test_published_parts_read_in_order_by_every_reader(store: ArtifactStore) -> None:
    build, written = build_parts(store, [30, 20, 50])
    info = build.publish_parts(SCHEMA, written)
    assert (info.state, info.parts, info.row_count, info.num_batches) == ("ready", 3, 100, 6)
    assert info.byte_size == sum(p.bytes for p in written)
    assert store.parts_of(info.artifact_id, info.version) == written
    expected = pa.Table.from_batches([batch(0, 100)])
    assert store.open_table(info.artifact_id, info.version).equals(expected)
    assert store.open(info.artifact_id, info.version).read_all().equals(expected)
    middle = store.open(info.artifact_id, info.version, start=1, stop=4).read_all()
    assert middle.column("i").to_pylist() == list(range(15, 50))
    assert build.follow().read_all().equals(expected)
    assert store.open_file(info.artifact_id, info.version).read_all().equals(expected)
    parquet = store.renditions.get(info.artifact_id, info.version, "parquet")
    assert pa.parquet.read_table(parquet.path).equals(expected)
    assert store.renditions.get(info.artifact_id, info.version, "arrow-file").size > 0
    one_file = store.put(reader_of(batch(0, 3)), provenance="plain")
    assert one_file.parts == 0 and store.parts_of(one_file.artifact_id, one_file.version) == []


def test_a_wrong_or_missing_part_fails_the_build_and_its_parts_go(store: ArtifactStore) -> None:
    build, written = build_parts(store, [10, 10])
    store.parts.delete_prefix(written[1].key.rpartition("/")[0] + "/")
    store.parts.write(written[0].key, reader_of(batch(0, 10)))
    with pytest.raises(BuildFailed, match="cannot publish its parts"):
        build.publish_parts(SCHEMA, written)
    assert store.get(build.artifact_id, build.version).state == "failed"
    assert store.parts.size(written[0].key) is None

    build, written = build_parts(store, [10], provenance="p2")
    other = pa.schema([("i", pa.int64())])
    with pytest.raises(BuildFailed, match="another schema"):
        build.publish_parts(other, written)
    with pytest.raises(BuildFailed):
        build.wait()


def test_delete_gc_and_eviction_remove_the_parts(store: ArtifactStore) -> None:
    build, written = build_parts(store, [10, 10])
    info = build.publish_parts(SCHEMA, written)
    store.delete(info.artifact_id, info.version)
    assert store.parts.sizes([p.key for p in written]) == [None, None]

    build, written = build_parts(store, [10, 10], provenance="p3")
    build.publish_parts(SCHEMA, written)
    store.gc(max_bytes=0, collect_latest=True)
    assert store.parts.sizes([p.key for p in written]) == [None, None]


def test_identical_provenance_publishes_once_and_drops_the_duplicate_parts(
    store: ArtifactStore,
) -> None:
    first, written = build_parts(store, [10])
    info = first.publish_parts(SCHEMA, written)
    second = store.begin_build(provenance=None, executor="t", params={}, inputs=[])
    again = [store.parts.write(f"{second.part_prefix}part-0.arrow", reader_of(batch(0, 10)))]
    assert second.publish_parts(SCHEMA, again, provenance="p1") == store.get(
        info.artifact_id, info.version
    )
    assert second.deduplicated and store.parts.size(again[0].key) is None


def test_recovery_marks_a_ready_version_with_a_missing_part_failed(
    tmp_path: Path, part_uri: str
) -> None:
    with ArtifactStore(tmp_path / "store", part_storage=part_uri) as store:
        build, written = build_parts(store, [10, 10])
        info = build.publish_parts(SCHEMA, written)
        store.parts.fs.delete_file(store.parts.path(written[1].key))
    with ArtifactStore(tmp_path / "store", part_storage=part_uri) as store:
        assert store.get(info.artifact_id, info.version).state == "failed"
        with pytest.raises(Conflict, match="not ready"):
            store.open_table(info.artifact_id, info.version)

    with ArtifactStore(tmp_path / "other", part_storage=part_uri) as store:
        build, written = build_parts(store, [10, 10])
        info = build.publish_parts(SCHEMA, written)
        store.parts.fs.delete_file(store.parts.path(written[0].key))
        with pytest.raises(NotFound, match="part missing"):  # found on read: failed, not served
            store.open_table(info.artifact_id, info.version)
        assert store.get(info.artifact_id, info.version).state == "failed"


def test_flight_offers_a_part_per_endpoint_and_a_joined_node_serves_them(
    make_flight_server: Callable[..., QuiverFlightServer], part_uri: str, tmp_path: Path
) -> None:
    server = make_flight_server(part_storage=part_uri)
    build, written = build_parts(server.core.store, [30, 20, 50])
    info = build.publish_parts(SCHEMA, written)
    expected = pa.Table.from_batches([batch(0, 100)])
    descriptor = fl.FlightDescriptor.for_path("artifact", info.artifact_id, str(info.version))
    with fl.connect(server.location) as client:
        flight = client.get_flight_info(descriptor)
        assert flight.total_records == 100 and flight.total_bytes == info.byte_size
        assert [e.locations for e in flight.endpoints] == [[], [], []]  # no node: ask the head
        parts = [client.do_get(e.ticket).read_all() for e in flight.endpoints]
        assert pa.concat_tables(parts).equals(expected)
        settings = Settings(data_dir=tmp_path / "node", flight_port=0, host="127.0.0.1")
        node = DataNodeServer(settings, server.location)
        try:
            assert node.parts.uri == server.core.store.parts.uri
            flight = client.get_flight_info(descriptor)
            assert {loc.uri.decode() for e in flight.endpoints for loc in e.locations} == {
                node.location
            }
            with fl.connect(node.location) as reader:
                parts = [reader.do_get(e.ticket).read_all() for e in flight.endpoints]
                assert pa.concat_tables(parts).equals(expected)
                whole = json.dumps({"artifact_id": info.artifact_id, "version": info.version})
                # A whole artifact is the head's: the node passes its stream on.
                assert reader.do_get(fl.Ticket(whole.encode())).read_all().equals(expected)
        finally:
            node.close()
        flight = client.get_flight_info(descriptor)  # the node left: out of the plans at once
        assert [e.locations for e in flight.endpoints] == [[], [], []]


PARTS_WRITER = """
import sys, pyarrow as pa
from catalog import ArtifactStore
store = ArtifactStore(sys.argv[1], part_storage=sys.argv[2])
b = store.begin_build(provenance="crash", executor="x", params={}, inputs=[])
t = pa.table({"x": pa.array(range(1000), pa.int64())})
store.parts.write(b.part_prefix + "part-00000.arrow", t.to_reader())
print(b.artifact_id, b.part_prefix, flush=True)
sys.stdin.read()  # until the test kills it
"""


def test_recovery_removes_the_parts_of_a_build_whose_process_died(
    tmp_path: Path, part_uri: str
) -> None:
    root = tmp_path / "store"
    proc = subprocess.Popen(
        [sys.executable, "-c", PARTS_WRITER, str(root), part_uri],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.stdout is not None
    artifact_id, prefix = proc.stdout.readline().split()
    proc.kill()
    proc.communicate(timeout=30)
    with ArtifactStore(root, part_storage=part_uri) as store:
        assert store.get(artifact_id, 1).state == "failed"
        assert store.parts.children(f"{artifact_id}/") == []
        assert store.parts.size(f"{prefix}part-00000.arrow") is None


def orphans_and_owned(store: ArtifactStore) -> tuple[list[str], list[str]]:
    """Keys in the part storage: of build prefixes nothing owns (a task that wrote after
    its build failed; a build the store never knew), and of everything else (a published
    version, a build in flight, renditions, keys that are no build prefix)."""
    published, written = build_parts(store, [10, 10])
    published.publish_parts(SCHEMA, written)
    _, running = build_parts(store, [10], provenance="p2")
    failed, _ = build_parts(store, [10], provenance="p3")
    failed.fail(RuntimeError("a part failed"))  # its prefix goes at once
    late = f"{failed.part_prefix}part-00000.arrow"  # ... but a task outlived the build
    stray = "ab12/v3-0123456789ab/part-00000.arrow"
    others = ["renditions/ab12/v1-0123456789ab/x.parquet", "ab12/v1/p.arrow", "ab12/p.arrow"]
    for key in [late, stray, *others]:
        store.parts.write(key, reader_of(batch(0, 3)))
    return [late, stray], [*(p.key for p in written + running), *others]


def test_gc_sweeps_the_parts_nothing_owns_after_a_grace(store: ArtifactStore) -> None:
    orphans, owned = orphans_and_owned(store)
    keys = orphans + owned
    assert None not in store.parts.sizes(keys)
    assert store.gc()["orphan_part_prefixes"] == []  # within the grace (an hour)
    assert store.gc(failed_older_than_s=float("inf"))["orphan_part_prefixes"] == []  # never
    later = time.time() + 5
    dry = store.gc(failed_older_than_s=1, now=later, dry_run=True)["orphan_part_prefixes"]
    assert dry == sorted(k.rpartition("/")[0] + "/" for k in orphans)
    assert None not in store.parts.sizes(keys)
    assert store.gc(failed_older_than_s=1, now=later)["orphan_part_prefixes"] == dry
    assert store.parts.sizes(orphans) == [None, None]
    assert None not in store.parts.sizes(owned)


def test_recovery_sweeps_orphaned_parts_past_its_grace(tmp_path: Path, part_uri: str) -> None:
    root = tmp_path / "store"
    with ArtifactStore(root, part_storage=part_uri) as store:
        orphans, owned = orphans_and_owned(store)
    with ArtifactStore(root, part_storage=part_uri) as store:  # fresh: a build may still write
        assert None not in store.parts.sizes(orphans)
    later = time.time() + 1  # S3's modification times are whole seconds, maybe rounded up
    assert wait_until(lambda: time.time() > later, timeout=10)
    with ArtifactStore(root, part_storage=part_uri, orphan_parts_grace_s=0) as store:
        assert store.parts.sizes(orphans) == [None, None]
        # the build that was in flight died with its process: recovery failed it, and
        # removed its parts as its own; a rendition copy of a version the store does not
        # have goes with recovery's sweep of renditions/; the rest is as it was
        assert store.parts.sizes([owned[3]]) == [None]
        assert None not in store.parts.sizes(owned[:2] + owned[4:])


def test_a_part_storage_that_does_not_answer_fails_nothing(
    tmp_path: Path, s3: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in S3_CREDENTIALS.items():
        monkeypatch.setenv(k, v)
    make_bucket(s3, "quiver")
    good = f"s3://quiver/p?endpoint_override={s3.removeprefix('http://')}&scheme=http"
    with ArtifactStore(tmp_path / "store", part_storage=good) as store:
        build, written = build_parts(store, [10, 10])
        info = build.publish_parts(SCHEMA, written)
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = f"s3://quiver/p?endpoint_override=127.0.0.1:{port}&scheme=http&max_attempts=1"
    with ArtifactStore(tmp_path / "store", part_storage=dead) as store:  # recovery: left alone
        with pytest.raises(Unavailable, match="part storage does not answer"):
            store.open_table(info.artifact_id, info.version)
        assert store.get(info.artifact_id, info.version).state == "ready"


def test_rest_serves_a_partitioned_artifact_as_a_stream_and_as_files(rest: Rest) -> None:
    assert rest.flight is not None
    build, written = build_parts(rest.flight.core.store, [30, 20, 50])
    info = build.publish_parts(SCHEMA, written)
    expected = pa.Table.from_batches([batch(0, 100)])
    base = f"/v1/artifacts/{info.artifact_id}/v/{info.version}"
    got = rest.http.get(f"{base}/data")
    assert got.status_code == 200, got.text
    assert pa.ipc.open_stream(got.content).read_all().equals(expected)
    arrow = rest.http.get(f"{base}/data.arrow")
    assert arrow.status_code == 200, arrow.text
    assert pa.ipc.open_file(pa.py_buffer(arrow.content)).read_all().equals(expected)
    parquet = rest.http.get(f"{base}/data.parquet")
    assert parquet.status_code == 200, parquet.text
    assert pa.parquet.read_table(pa.BufferReader(parquet.content)).equals(expected)
