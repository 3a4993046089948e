"""The artifact store against real SQLite files and real IPC files in tmp_path."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pyarrow as pa
import pytest

from catalog.store import ArtifactStore, CorruptArtifact, InputVersion
from quiver.errors import Conflict, InvalidArgument, NotFound


def table(n: int, start: int = 0) -> pa.Table:
    return pa.table(
        {"id": pa.array(range(start, start + n), pa.int64()), "s": [f"r{i}" for i in range(n)]}
    )


def put(store: ArtifactStore, prov: str, n: int = 10, **kw) -> object:
    return store.put(table(n).to_reader(max_chunksize=4), provenance=prov, **kw)


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    with ArtifactStore(tmp_path / "store") as s:
        yield s


def test_put_open_roundtrip(store: ArtifactStore) -> None:
    info = put(store, "p1", 10)
    assert info.state == "ready" and info.row_count == 10 and info.num_batches == 3
    assert info.byte_size == store.path_of(info.artifact_id, 1).stat().st_size
    assert store.open(info.artifact_id, 1).read_all().equals(table(10))
    assert store.open_table(info.artifact_id, 1).equals(table(10))
    # ranges of batches
    part = store.open(info.artifact_id, 1, start=1, stop=2).read_all()
    assert part.num_rows == 4 and part.column("id")[0].as_py() == 4
    assert store.find_ready("p1").uri == info.uri
    assert store.find_ready("nope") is None


def test_followers_get_every_batch_while_building(store: ArtifactStore) -> None:
    t = table(100)
    build = store.begin_build(provenance="p", executor="x", params={}, inputs=[])
    build.start(t.schema)
    got: list[pa.Table] = []
    first_seen = threading.Event()

    def follow() -> None:
        reader = build.follow()
        batches = []
        for b in reader:
            batches.append(b)
            first_seen.set()
        got.append(pa.Table.from_batches(batches, t.schema))

    threads = [threading.Thread(target=follow) for _ in range(3)]
    for th in threads:
        th.start()
    batches = t.to_batches(max_chunksize=10)
    build.write(batches[0])
    assert first_seen.wait(10), "a follower saw the first batch before the build ended"
    assert not build.done
    for b in batches[1:]:
        build.write(b)
    build.publish()
    for th in threads:
        th.join(10)
    assert len(got) == 3 and all(g.equals(t) for g in got)
    # a follower arriving after the end reads the published file
    assert build.follow().read_all().equals(t)


def test_failed_build_reaches_followers_and_is_recorded(store: ArtifactStore) -> None:
    build = store.begin_build(provenance="p", executor="x", params={}, inputs=[])
    build.write(table(5).to_batches()[0])
    reader = build.follow()
    build.fail(RuntimeError("disk on fire"))
    with pytest.raises(Exception, match="disk on fire"):
        reader.read_all()
    info = store.get(build.artifact_id, build.version)
    assert info.state == "failed" and info.error == "disk on fire"
    assert not build.tmp_path.exists()
    assert store.find_ready("p") is None


def test_versions_and_refresh_supersede(store: ArtifactStore) -> None:
    a = put(store, "p")
    b = store.begin_build(
        provenance="p", executor=None, params=None, inputs=[], artifact_id=a.artifact_id
    )
    b.write_reader(table(3).to_reader())
    info = b.publish()
    assert (info.artifact_id, info.version) == (a.artifact_id, 2)
    assert store.get(a.artifact_id, 1).state == "superseded"
    assert store.find_ready("p").version == 2
    assert [v.version for v in store.versions(a.artifact_id)] == [1, 2]


def test_not_found_and_not_ready(store: ArtifactStore) -> None:
    with pytest.raises(NotFound, match=r"artifact strata://artifact/zz@v=1 not found"):
        store.get("zz", 1)
    build = store.begin_build(provenance="p", executor="x", params={}, inputs=[])
    with pytest.raises(Conflict, match=r"is not ready \(state=building\)"):
        store.open(build.artifact_id, build.version)
    with pytest.raises(Conflict, match="still building"):
        store.delete(build.artifact_id, build.version)


def test_names(store: ArtifactStore) -> None:
    a = put(store, "a")
    b = put(store, "b")
    store.set_name("team/daily", a.artifact_id, 1)
    assert store.get_name("team/daily").artifact_uri == a.uri
    store.set_name("team/daily", b.artifact_id, 1)
    assert store.get_name("team/daily").artifact_uri == b.uri
    store.set_name("other", a.artifact_id, 1)
    assert [n.name for n in store.list_names()] == ["other", "team/daily"]
    assert [n.name for n in store.list_names("team/")] == ["team/daily"]
    store.delete_name("other")
    with pytest.raises(NotFound, match="Name 'other' not found"):
        store.get_name("other")
    with pytest.raises(NotFound, match="Name 'other' not found"):
        store.delete_name("other")
    with pytest.raises(NotFound):
        store.set_name("x", "missing", 1)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "non-empty"),
        ("a//b", "empty, '.' or '..'"),
        ("a/../b", "empty, '.' or '..'"),
        ("bad name", "use letters"),
        ("/lead", "use letters"),
        ("x" * 300, "at most 256"),
    ],
)
def test_bad_names_refused(store: ArtifactStore, name: str, message: str) -> None:
    a = put(store, "a")
    with pytest.raises(InvalidArgument, match=message):
        store.set_name(name, a.artifact_id, 1)


def test_lineage_and_dependents(store: ArtifactStore) -> None:
    base = put(store, "base")
    derived = put(
        store,
        "derived",
        kind="derived",
        inputs=[
            InputVersion("file:///wh#db.t", "42"),
            InputVersion(base.uri, base.uri, base.artifact_id, 1),
        ],
    )
    ins = store.inputs(derived.artifact_id, 1)
    assert [(i.uri, i.version) for i in ins] == [("file:///wh#db.t", "42"), (base.uri, base.uri)]
    assert [d.uri for d in store.dependents(base.artifact_id, 1)] == [derived.uri]
    assert store.dependents(derived.artifact_id, 1) == []


def test_eviction_lru_skips_named_and_leased(tmp_path: Path) -> None:
    with ArtifactStore(tmp_path / "s") as store:
        a = put(store, "a", 1000)
        size = a.byte_size
        store.max_bytes = int(size * 3.5)
        b = put(store, "b", 1000)
        c = put(store, "c", 1000)
        store.set_name("keep", a.artifact_id, 1)  # a is the oldest but named
        reader = store.open(b.artifact_id, 1)  # b is being read: leased
        d = put(store, "d", 1000)  # over the cap: c goes (LRU among evictable)
        states = {x.artifact_id: x for x in store.list(limit=10)}
        assert c.artifact_id not in states
        assert {a.artifact_id, b.artifact_id, d.artifact_id} <= set(states)
        assert not store.path_of(c.artifact_id, 1).exists()
        assert reader.read_all().num_rows == 1000
        e = put(store, "e", 1000)  # b's lease is gone now: b is evicted
        remaining = {x.artifact_id for x in store.list(limit=10)}
        assert b.artifact_id not in remaining
        assert {a.artifact_id, d.artifact_id, e.artifact_id} == remaining


def test_corrupt_file_is_never_served(store: ArtifactStore) -> None:
    info = put(store, "p", 100, kind="derived")
    path = store.path_of(info.artifact_id, 1)
    data = path.read_bytes()
    path.write_bytes(data[:-10] + b"\0" * 10)  # same size, torn footer
    with pytest.raises(CorruptArtifact, match="integrity"):
        store.open(info.artifact_id, 1).read_all()
    assert store.get(info.artifact_id, 1).state == "failed"
    assert store.find_ready("p") is None


def test_truncated_file_detected_by_verify(store: ArtifactStore) -> None:
    info = put(store, "p", 100, kind="derived")
    path = store.path_of(info.artifact_id, 1)
    path.write_bytes(path.read_bytes()[:100])
    assert store.verify(info) is False
    assert store.get(info.artifact_id, 1).state == "failed"


def test_delete_and_gc(store: ArtifactStore) -> None:
    a = put(store, "a")
    store.set_name("n", a.artifact_id, 1)
    store.delete(a.artifact_id, 1)
    with pytest.raises(NotFound):
        store.get(a.artifact_id, 1)
    with pytest.raises(NotFound):
        store.get_name("n")
    assert not store.path_of(a.artifact_id, 1).exists()
    b = put(store, "b")
    b2 = store.begin_build(
        provenance="b", executor=None, params=None, inputs=[], artifact_id=b.artifact_id
    )
    b2.write_reader(table(2).to_reader())
    b2.publish()
    failed = store.begin_build(provenance="f", executor=None, params=None, inputs=[])
    failed.fail(RuntimeError("x"))
    report = store.gc(failed_older_than_s=0)
    assert b.uri in report["removed"] and failed.uri in report["removed"]
    assert store.find_ready("b").version == 2


CRASH_SCRIPT = textwrap.dedent(
    """
    import sys, pyarrow as pa
    from catalog.store import ArtifactStore
    store = ArtifactStore(sys.argv[1])
    mode = sys.argv[2]
    t = pa.table({"x": pa.array(range(50_000), pa.int64())})
    if mode == "mid-write":
        b = store.begin_build(provenance="crash", executor="x", params={}, inputs=[])
        for i, batch in enumerate(t.to_batches(max_chunksize=1000) * 1000):
            b.write(batch)
            if i == 3:
                print("writing", flush=True)
    elif mode == "before-commit":
        import os
        b = store.begin_build(provenance="crash", executor="x", params={}, inputs=[])
        b.write_reader(t.to_reader())
        store._mark_ready = lambda *a: os.kill(os.getpid(), 9)  # die between rename and commit
        print("publishing", flush=True)
        b.publish()
    else:
        i = 0
        while True:
            store.put(t.to_reader(max_chunksize=5000), provenance=f"p{i}", kind=mode)
            print("published", i, flush=True)
            i += 1
    """
)


def run_and_kill(tmp_path: Path, mode: str, lines: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASH_SCRIPT, str(tmp_path / "store"), mode],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.stdout is not None
    for _ in range(lines):
        assert proc.stdout.readline(), "the writer died before it got going"
    proc.kill()
    proc.wait(10)
    proc.stdout.close()


def assert_consistent(root: Path) -> ArtifactStore:
    store = ArtifactStore(root)
    assert not list((root / "tmp").iterdir()), "temp files of dead builds are removed"
    assert not store.list(state="building")
    for info in store.list(state="ready", limit=10_000):
        assert store.open_table(info.artifact_id, info.version).num_rows == info.row_count
    on_disk = {p.parent.name for p in (root / "artifacts").glob("*/v*.arrow")}
    assert on_disk == {i.artifact_id for i in store.list(state="ready", limit=10_000)}
    return store


@pytest.mark.parametrize("mode", ["mid-write", "before-commit"])
def test_kill_9_leaves_store_consistent(tmp_path: Path, mode: str) -> None:
    run_and_kill(tmp_path, mode, 1)
    store = assert_consistent(tmp_path / "store")
    failed = store.list(state="failed")
    assert len(failed) == 1 and "interrupted" in failed[0].error
    assert store.find_ready("crash") is None
    store.close()


@pytest.mark.parametrize("kind", ["upload", "derived"])
def test_kill_9_during_a_stream_of_publishes(tmp_path: Path, kind: str) -> None:
    run_and_kill(tmp_path, kind, 5)
    store = assert_consistent(tmp_path / "store")
    assert len(store.list(state="ready", limit=10_000)) >= 5
    store.close()
