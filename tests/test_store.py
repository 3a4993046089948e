"""The artifact store against real SQLite files and real IPC files in tmp_path."""

from __future__ import annotations

import contextlib
import gc
import inspect
import itertools
import linecache
import os
import subprocess
import sys
import textwrap
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from catalog import (
    PROVISIONAL_PREFIX,
    ArtifactStore,
    Build,
    CorruptArtifact,
    InputVersion,
    chunked_sha256,
)
from foundation import Conflict, InvalidArgument, NotFound
from tests.polling import wait_until


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


def test_read_small_reads_a_small_version_whole_and_leaves_no_lease(
    store: ArtifactStore,
) -> None:
    info = put(store, "p1", 10)
    size = info.byte_size
    got = store.read_small(info.artifact_id, 1, max_bytes=size)
    assert got is not None and got.equals(table(10))
    assert store.read_small(info.artifact_id, 1, max_bytes=size - 1) is None  # stream it
    assert store.readers(info.artifact_id, 1) == 0
    store.delete(info.artifact_id, 1)
    assert got.equals(table(10))  # read, not mapped: the data outlives its version
    build = store.begin_build(provenance="p2", executor="x", params={}, inputs=[])
    assert store.read_small(build.artifact_id, build.version, max_bytes=1 << 20) is None
    assert store.readers(build.artifact_id, build.version) == 0


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


def test_a_name_never_points_at_a_version_gc_collected_meanwhile(store: ArtifactStore) -> None:
    a = put(store, "a")
    collect = lambda: store.gc(max_idle_s=0)  # noqa: E731
    with (
        concurrently(store, store.db, "tx", collect) as ran,  # as set_name writes
        pytest.raises(NotFound, match=rf"artifact {a.uri} not found"),
    ):
        store.set_name("n", a.artifact_id, 1)
    assert uris(ran[0]) == [a.uri]
    with pytest.raises(NotFound, match="Name 'n' not found"):
        store.get_name("n")  # not pointing at a version that is gone


def test_numbers_sqlite_cannot_hold_are_not_found_not_an_overflow(store: ArtifactStore) -> None:
    a = put(store, "a")
    for version in (2**63, 10**30, -(2**63) - 1):
        uri = f"strata://artifact/{a.artifact_id}@v={version}"
        with pytest.raises(NotFound, match=rf"^artifact {uri} not found$"):
            store.get(a.artifact_id, version)
        with pytest.raises(NotFound, match=rf"^artifact {uri} not found$"):
            store.set_name("n", a.artifact_id, version)
        with pytest.raises(NotFound):
            store.open(a.artifact_id, version)
        with pytest.raises(NotFound):
            store.delete(a.artifact_id, version)
        assert store.names_of(a.artifact_id, version) == []
    assert store.readers(a.artifact_id, 1) == 0  # the refused opens hold no lease
    assert [i.uri for i in store.list(limit=2**64)] == [a.uri]
    assert store.list(offset=2**64) == []


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


def waiting_for_the_store_lock(thread: threading.Thread) -> bool:
    """Whether ``thread`` is blocked entering a ``with ...lock`` of the store's parts."""
    frame = sys._current_frames().get(thread.ident or -1)
    catalog_dir = Path(inspect.getsourcefile(ArtifactStore) or "").parent
    if frame is None or Path(frame.f_code.co_filename).parent != catalog_dir:
        return False
    line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
    return line.startswith("with ") and "lock" in line


@contextlib.contextmanager
def concurrently(
    store: ArtifactStore, obj: object, method: str, action: Callable[[], object]
) -> Iterator[list[object]]:
    """Within the block, the first call of ``obj.method`` (an instance's, a class's or a
    module's) first lets ``action`` run in another thread: a concurrent call landing at
    exactly that point. It runs to its end, unless the caller holds the store's lock
    there; then it can only wait for that lock, and the call goes on once it does.
    Yields what ``action`` returned (or raised), filled in by the end of the block."""
    own = vars(obj).get(method) if isinstance(obj, type | types.ModuleType) else None
    real = getattr(obj, method)
    outcome: list[object] = []
    threads: list[threading.Thread] = []

    def restore() -> None:
        if own is not None:
            setattr(obj, method, own)
        elif method in vars(obj):
            delattr(obj, method)

    def run() -> None:
        try:
            outcome.append(action())
        except Exception as exc:
            outcome.append(exc)

    def wrapper(*args: object, **kwargs: object) -> object:
        restore()  # once
        other = threading.Thread(target=run, daemon=True)
        threads.append(other)
        other.start()
        if store.lock._is_owned():
            assert wait_until(lambda: not other.is_alive() or waiting_for_the_store_lock(other))
        else:
            other.join(30)
        return (real if own is None else own)(*args, **kwargs)

    setattr(obj, method, wrapper)
    try:
        yield outcome
    finally:
        restore()
        for other in threads:
            other.join(30)
            assert not other.is_alive(), f"the call made concurrently with {method} hangs"


def late(store: ArtifactStore, t: pa.Table, **kw) -> Build:
    """A provisional, hashed upload build holding ``t``, not yet published."""
    build = store.begin_build(
        provenance=None, executor=None, params=None, inputs=[], kind="upload", **kw
    )
    build.write_reader(t.to_reader(max_chunksize=4))
    return build


def test_provenance_given_at_publish(store: ArtifactStore) -> None:
    build = late(store, table(10), hash_content=True)
    row = store.get(build.artifact_id, build.version)
    assert row.state == "building" and row.provenance.startswith(PROVISIONAL_PREFIX)
    with pytest.raises(RuntimeError, match="provisional"):
        build.publish()
    digest = build.seal()
    info = build.publish(provenance=f"upload:{digest}")
    assert info.state == "ready" and info.provenance == f"upload:{digest}"
    assert not build.deduplicated and info.row_count == 10
    # the digest is of the published file's bytes, as written
    assert digest == chunked_sha256(store.path_of(info.artifact_id, 1).read_bytes())
    assert store.open_table(info.artifact_id, 1).equals(table(10))


def test_chunked_sha256_depends_only_on_the_bytes() -> None:
    import hashlib

    from catalog.hashing import CHUNK_BYTES, ChunkedSha256

    data = os.urandom(3 * CHUNK_BYTES + 17)
    top = hashlib.sha256(b"quiver-chunked-sha256-v1\0" + len(data).to_bytes(8, "big"))
    for i in range(0, len(data), CHUNK_BYTES):
        top.update(hashlib.sha256(data[i : i + CHUNK_BYTES]).digest())
    assert chunked_sha256(data) == top.hexdigest()
    pieces = ChunkedSha256()  # however the bytes arrive
    cuts = [0, 5, 70_000, CHUNK_BYTES + 3, 3 * CHUNK_BYTES, len(data)]
    for a, b in itertools.pairwise(cuts):
        pieces.update(data[a:b], b - a)
    assert pieces.hexdigest() == top.hexdigest()
    assert chunked_sha256(b"") != chunked_sha256(b"\0")


def test_publish_dedupes_against_a_ready_artifact(store: ArtifactStore) -> None:
    first = late(store, table(10))
    info = first.publish(provenance="same")
    second = late(store, table(10))
    answer = second.publish(provenance="same")
    assert second.deduplicated and answer.uri == info.uri
    assert not second.tmp_path.exists() and not second.final_path.exists()
    with pytest.raises(NotFound):  # the discarded build leaves no row at all
        store.get(second.artifact_id, second.version)
    assert [i.uri for i in store.list(limit=100)] == [info.uri]
    assert not list(store.tmp_dir.iterdir())


def test_publish_race_is_settled_in_the_commit(store: ArtifactStore) -> None:
    """The second publisher passes the early check; the transaction still catches it."""
    a, b = late(store, table(10)), late(store, table(10))
    info = a.publish(provenance="same")
    store._publisher.find_ready = lambda provenance: None  # as if both checked at the same moment
    answer = b.publish(provenance="same")
    assert b.deduplicated and answer.uri == info.uri
    assert not b.final_path.exists() and not b.final_path.parent.exists()
    assert len(store.list(state="ready")) == 1 and store.readers(a.artifact_id, 1) == 0


def test_publish_replaces_a_damaged_artifact_of_the_same_provenance(store: ArtifactStore) -> None:
    a = late(store, table(10)).publish(provenance="same")
    store.path_of(a.artifact_id, 1).write_bytes(b"junk")
    b = late(store, table(10))
    store._publisher.find_ready = lambda provenance: None  # reach the check in the transaction
    info = b.publish(provenance="same")
    assert not b.deduplicated and info.artifact_id == b.artifact_id
    assert store.get(a.artifact_id, 1).state == "failed"


def test_identical_builds_publishing_together_end_as_one(store: ArtifactStore) -> None:
    builds = [late(store, table(50), hash_content=True) for _ in range(8)]
    digests = {b.seal() for b in builds}
    assert len(digests) == 1
    provenance = f"upload:{digests.pop()}"
    barrier = threading.Barrier(len(builds))
    answers: list[object] = []
    errors: list[BaseException] = []

    def publish(build: Build) -> None:
        barrier.wait()
        try:
            answers.append(build.publish(provenance=provenance))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(b,)) for b in builds]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert not errors
    assert len({a.uri for a in answers}) == 1 and len(answers) == 8
    assert sum(not b.deduplicated for b in builds) == 1
    assert [i.uri for i in store.list(limit=100)] == [answers[0].uri]
    assert not list(store.tmp_dir.iterdir())
    assert len(list(store.artifacts_dir.glob("*/v*.arrow"))) == 1


def test_discard_is_not_a_failure(store: ArtifactStore) -> None:
    build = late(store, table(10), hash_content=True)
    reader = build.follow()
    build.discard()
    with pytest.raises(Exception, match="discarded"):
        reader.read_all()
    with pytest.raises(NotFound):
        store.get(build.artifact_id, build.version)
    assert not build.tmp_path.exists() and store.list() == []
    build.discard()  # idempotent
    done = put(store, "p")
    store.find_ready("p")
    # a published build is never discarded
    b2 = late(store, table(3))
    info = b2.publish(provenance="q")
    b2.discard()
    assert store.get(info.artifact_id, 1).state == "ready" and store.find_ready("p") == done


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
    more = [
        put(store, f"d{i}", inputs=[InputVersion(base.uri, base.uri, base.artifact_id, 1)])
        for i in range(3)
    ]
    everything = [derived.uri] + [m.uri for m in more]
    assert [d.uri for d in store.dependents(base.artifact_id, 1)] == everything
    assert [d.uri for d in store.dependents(base.artifact_id, 1, limit=2)] == everything[:2]


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


# --- gc: what nothing needs goes, least recently used first -------------------------
DAY = 86_400.0


def uris(report: dict) -> list[str]:
    return [c["artifact_uri"] for c in report["collected"]]


def exists(store: ArtifactStore, info: object) -> bool:
    try:
        store.get(info.artifact_id, info.version)
    except NotFound:
        return False
    return store.path_of(info.artifact_id, info.version).exists()


def derived_from(store: ArtifactStore, prov: str, *parents: object) -> object:
    """A version built from ``parents`` (recorded as artifact inputs, for lineage)."""
    inputs = [InputVersion(p.uri, p.uri, p.artifact_id, p.version) for p in parents]
    return put(store, prov, kind="derived", inputs=[InputVersion("file:///wh#db.t", "7"), *inputs])


def test_gc_dry_run_deletes_nothing_and_lists_exactly_what_a_run_deletes(
    store: ArtifactStore,
) -> None:
    base = put(store, "base")
    named = derived_from(store, "named", base)
    store.set_name("keep", named.artifact_id, 1)
    idle = put(store, "idle")
    old = put(store, "old")
    refreshed = store.begin_build(
        provenance="old", executor=None, params=None, inputs=[], artifact_id=old.artifact_id
    )
    refreshed.write_reader(table(3).to_reader())
    refreshed.publish()  # old v1 is superseded now
    failed = store.begin_build(provenance="f", executor=None, params=None, inputs=[])
    failed.fail(RuntimeError("boom"))
    later = store.get(idle.artifact_id, 1).created_at + 2 * DAY
    store.touch(refreshed.artifact_id, 2, at=later)  # used recently: stays
    before = {i.uri for i in store.list(limit=100)}

    dry = store.gc(max_idle_s=DAY, dry_run=True, now=later + 60)
    assert dry["dry_run"] is True
    assert uris(dry) == [failed.uri, old.uri, idle.uri]  # failed, superseded, then idle
    assert [c["reason"] for c in dry["collected"]] == ["failed", "superseded", "idle"]
    assert {i.uri for i in store.list(limit=100)} == before  # nothing deleted
    assert all(store.path_of(i.artifact_id, i.version).exists() for i in (old, idle))
    assert dry["deleted_count"] == 3
    assert dry["deleted_bytes"] == old.byte_size + idle.byte_size
    assert dry["store_bytes"] == sum(i.byte_size or 0 for i in store.list(limit=100))

    run = store.gc(max_idle_s=DAY, now=later + 60)
    assert run["dry_run"] is False and run["collected"] == dry["collected"]
    assert {i.uri for i in store.list(limit=100)} == before - set(uris(dry))
    assert not store.path_of(idle.artifact_id, 1).exists()
    assert run["removed"] == [failed.uri, old.uri] and run["evicted"] == [idle.uri]
    assert run["store_bytes"] == dry["store_bytes"] - dry["deleted_bytes"]
    assert store.gc(max_idle_s=DAY, now=later + 60)["collected"] == []


def test_gc_keeps_named_versions_and_their_lineage_transitively(store: ArtifactStore) -> None:
    a = put(store, "a")
    b = derived_from(store, "b", a)
    side = put(store, "side")
    c = derived_from(store, "c", b, side)
    store.set_name("top/c", c.artifact_id, 1)
    stray = derived_from(store, "stray", a)  # depends on a, but nothing needs it
    assert uris(store.gc(max_idle_s=0, dry_run=True)) == [stray.uri]
    assert store.needed() >= {(x.artifact_id, 1) for x in (a, b, side, c)}
    # an ancestor that was superseded by a refresh is still needed
    a2 = store.begin_build(provenance="a", executor=None, params=None, inputs=[],
                           artifact_id=a.artifact_id)  # fmt: skip
    a2.write_reader(table(4).to_reader())
    a2.publish()
    assert store.get(a.artifact_id, 1).state == "superseded"
    report = store.gc(max_idle_s=0)
    assert set(uris(report)) == {stray.uri, f"strata://artifact/{a.artifact_id}@v=2"}
    assert all(exists(store, x) for x in (a, b, side, c))
    store.delete_name("top/c")
    assert set(uris(store.gc(max_idle_s=0))) == {a.uri, b.uri, side.uri, c.uri}
    assert store.list() == []


def test_gc_idle_thresholds(store: ArtifactStore) -> None:
    a, b, c = put(store, "a"), put(store, "b"), put(store, "c")
    t0 = max(x.created_at for x in (a, b, c))
    store.touch(b.artifact_id, 1, at=t0 + 5 * DAY)
    store.touch(c.artifact_id, 1, at=t0 + 9 * DAY)
    store.touch(c.artifact_id, 1, at=t0)  # a use is never moved back
    now = t0 + 10 * DAY

    def would(**kw: object) -> list[str]:
        return uris(store.gc(dry_run=True, now=now, **kw))

    assert would() == []  # no idle limit, no cap: only failed/superseded would go
    assert would(max_idle_s=7 * DAY) == [a.uri]
    assert would(max_idle_s=3 * DAY) == [a.uri, b.uri]  # least recently used first
    assert would(max_idle_s=0) == [a.uri, b.uri, c.uri]
    # min_idle_s: never anything used more recently, whatever else asks
    assert would(max_idle_s=0, min_idle_s=2 * DAY) == [a.uri, b.uri]
    assert would(max_idle_s=0, min_idle_s=5 * DAY) == [a.uri, b.uri]  # b: exactly 5 days
    assert would(max_idle_s=0, min_idle_s=6 * DAY) == [a.uri]
    assert would(max_bytes=0, min_idle_s=11 * DAY) == []
    with pytest.raises(NotFound):
        store.touch("nope", 1)


def test_note_use_writes_at_most_once_a_minute(store: ArtifactStore) -> None:
    a = put(store, "a")
    store.note_use(a.artifact_id, 1)
    first = store.get(a.artifact_id, 1).last_read_at
    assert first is not None and first >= a.created_at
    store.touch(a.artifact_id, 1, at=first - 1)  # never moves back: still ``first``
    store.note_use(a.artifact_id, 1)  # within the minute: no write
    assert store.get(a.artifact_id, 1).last_read_at == first
    store.note_use(a.artifact_id, 1, every_s=0)
    assert store.get(a.artifact_id, 1).last_read_at >= first
    store.note_use("gone", 1)  # a version deleted meanwhile is no error


def test_usage_counts_what_gc_could_collect(store: ArtifactStore) -> None:
    named, base, loose = put(store, "n"), put(store, "b"), put(store, "l")
    store.set_name("keep", named.artifact_id, 1)
    derived = store.put(
        table(3).to_reader(), provenance="d", inputs=[InputVersion(base.uri, base.uri,
        base.artifact_id, 1)]
    )  # fmt: skip
    store.set_name("keep-derived", derived.artifact_id, 1)  # so ``base`` is needed too
    usage = store.usage()
    sizes = {x.uri: x.byte_size for x in (named, base, loose, derived)}
    assert usage["total_bytes"] == sum(sizes.values())
    assert usage["total_versions"] == usage["stored_versions"] == 4
    assert usage["needed_count"] == 3 and usage["unreferenced_count"] == 1
    assert usage["unreferenced_bytes"] == sizes[loose.uri]
    assert usage["names"] == 2 and usage["by_state"]["ready"]["count"] == 4
    assert [c["artifact_uri"] for c in store.gc(max_idle_s=0, dry_run=True)["collected"]] == [
        loose.uri
    ]


def test_gc_max_bytes_collects_down_to_80_percent(store: ArtifactStore) -> None:
    items = [put(store, f"p{i}", 100) for i in range(5)]
    size = items[0].byte_size
    assert all(x.byte_size == size for x in items)
    t0 = max(x.created_at for x in items)
    for i, x in enumerate(reversed(items)):  # items[4] is now the least recently used
        store.touch(x.artifact_id, 1, at=t0 + i)
    store.set_name("pinned", items[3].artifact_id, 1)  # 2nd LRU, but named
    now = t0 + 100
    # at 100% of max_bytes: collect until <= 80% of it, least recently used first
    report = store.gc(max_bytes=5 * size, dry_run=True, now=now)
    assert report["target_bytes"] == 4 * size and uris(report) == [items[4].uri]
    # between 80% and 100% still collects: the target is 80%
    report = store.gc(max_bytes=int(4.5 * size), dry_run=True, now=now)
    assert uris(report) == [items[4].uri, items[2].uri]  # the named one is skipped
    assert report["store_bytes"] - report["deleted_bytes"] <= int(4.5 * size) * 0.8
    assert uris(store.gc(max_bytes=10 * size, dry_run=True, now=now)) == []
    # max_bytes=0: everything nothing needs; what is needed stays even above the target
    report = store.gc(max_bytes=0, now=now)
    assert [c["reason"] for c in report["collected"]] == ["bytes"] * 4
    assert [i.uri for i in store.list()] == [items[3].uri] and report["store_bytes"] == size
    # without max_bytes, the store's cap (0: none) applies
    more = [put(store, f"q{i}", 100) for i in range(3)]
    assert store.gc(dry_run=True)["collected"] == []
    store.max_bytes = 3 * size
    assert uris(store.gc(dry_run=True, now=now + 10)) == [more[0].uri, more[1].uri]


def test_gc_never_collects_what_is_being_read_or_built(store: ArtifactStore) -> None:
    read = put(store, "read", 100)
    upstream = put(store, "upstream")
    reader = store.open(read.artifact_id, 1)
    build = store.begin_build(
        provenance="b",
        executor="x",
        params={},
        inputs=[InputVersion(upstream.uri, upstream.uri, upstream.artifact_id, 1)],
    )
    assert uris(store.gc(max_idle_s=0, max_bytes=0)) == []
    assert exists(store, read) and exists(store, upstream)
    assert store.get(build.artifact_id, build.version).state == "building"
    assert reader.read_all().num_rows == 100  # the lease ends with the stream
    build.write_reader(table(5).to_reader())
    built = build.publish()
    assert set(uris(store.gc(max_idle_s=0))) == {read.uri, upstream.uri, built.uri}


def test_a_reader_dropped_unread_releases_its_lease(store: ArtifactStore) -> None:
    a, b = put(store, "a", 100), put(store, "b", 100)
    unread = store.open(a.artifact_id, 1)  # e.g. a DoGet cancelled before its first batch
    closed = store.open(b.artifact_id, 1)
    assert store.readers(a.artifact_id, 1) == store.readers(b.artifact_id, 1) == 1
    assert uris(store.gc(max_idle_s=0, dry_run=True)) == []  # both are being read
    closed.close()
    del unread, closed
    gc.collect()
    assert store.readers(a.artifact_id, 1) == store.readers(b.artifact_id, 1) == 0
    assert set(uris(store.gc(max_idle_s=0))) == {a.uri, b.uri}


def test_gc_removing_an_artifacts_last_file_as_its_next_version_publishes(
    store: ArtifactStore,
) -> None:
    old = put(store, "p")
    refresh = store.begin_build(provenance="p", executor=None, params=None, inputs=[],
                                artifact_id=old.artifact_id)  # fmt: skip
    refresh.write_reader(table(3).to_reader())
    collect = lambda: store.gc(max_idle_s=0)  # noqa: E731
    with concurrently(store, os, "replace", collect) as ran:  # as publish renames its file
        new = refresh.publish()
    assert uris(ran[0]) == [old.uri]  # v1 went (it was not needed), not the directory of v2
    assert store.open_table(new.artifact_id, new.version).equals(table(3))


def test_a_version_number_freed_by_a_delete_and_reused_at_once_keeps_its_file(
    store: ArtifactStore,
) -> None:
    a = put(store, "a")

    def rebuild() -> object:  # a refresh of the same artifact: it gets v1 again
        build = store.begin_build(provenance="a2", executor=None, params=None, inputs=[],
                                  artifact_id=a.artifact_id)  # fmt: skip
        build.write_reader(table(3).to_reader())
        return build.publish()

    with concurrently(store, Path, "unlink", rebuild) as ran:  # as delete removes the file
        store.delete(a.artifact_id, 1)
    [again] = ran
    assert (again.artifact_id, again.version) == (a.artifact_id, 1)
    assert store.open_table(a.artifact_id, 1).equals(table(3))


@pytest.mark.parametrize("how", ["open", "open_table"])
def test_gc_between_a_reads_check_and_its_open_spares_the_version(
    store: ArtifactStore, how: str
) -> None:
    a = put(store, "a", 100)
    collect = lambda: store.gc(max_idle_s=0, max_bytes=0)  # noqa: E731
    with concurrently(store, store._reads, "_open_file", collect) as ran:
        read = getattr(store, how)(a.artifact_id, 1)
    assert read.read_all().equals(table(100)) if how == "open" else read.equals(table(100))
    assert ran and uris(ran[0]) == []  # it was being read: gc kept it
    assert store.get(a.artifact_id, 1).state == "ready"
    del read
    assert uris(store.gc(max_idle_s=0)) == [a.uri]


def test_gc_keeps_current_cell_outputs_unless_collect_latest(store: ArtifactStore) -> None:
    def output(prov: str, cell: str, variable: str, *inputs: object) -> object:
        meta = {"notebook_id": "nb1", "cell_id": cell, "variable": variable,
                "cell_provenance": prov, "inputs": [i.uri for i in inputs]}  # fmt: skip
        ins = [InputVersion(i.uri, i.uri, i.artifact_id, i.version) for i in inputs]
        return put(store, prov, metadata=meta, inputs=ins)

    up_old = output("u1", "up", "df")
    up = output("u2", "up", "df")  # the cell ran again: up_old is history
    down_old = output("d1", "down", "df", up_old)
    down = output("d2", "down", "df", up_old)  # current, still built from the old upstream
    other_var = output("d3", "down", "other", up)
    other_nb = put(store, "n2", metadata={"notebook_id": "nb2", "cell_id": "up",
                                          "variable": "df"})  # fmt: skip
    plain = put(store, "plain", metadata={"inputs": []})  # an upload, no cell: a cache entry
    report = store.gc(max_idle_s=0, dry_run=True)
    # up_old stays: the current value of "down" depends on it
    assert set(uris(report)) == {down_old.uri, plain.uri}
    everything = {x.uri for x in (up_old, up, down_old, down, other_var, other_nb, plain)}
    assert set(uris(store.gc(max_idle_s=0, collect_latest=True, dry_run=True))) == everything
    store.gc(max_idle_s=0)
    assert {i.uri for i in store.list(limit=100)} == everything - {down_old.uri, plain.uri}
    newer = output("d4", "down", "df", up)  # down runs again: the old value goes now
    assert set(uris(store.gc(max_idle_s=0))) == {down.uri, up_old.uri}
    assert exists(store, newer) and exists(store, up)


def test_eviction_on_publish_spares_what_a_named_version_depends_on(tmp_path: Path) -> None:
    with ArtifactStore(tmp_path / "s") as store:
        base = put(store, "base", 1000)
        size = base.byte_size
        store.max_bytes = int(size * 2.5)
        named = derived_from(store, "named", base)
        store.set_name("n", named.artifact_id, 1)
        loose = put(store, "loose", 1000)  # over the cap: loose is kept (just built)...
        assert exists(store, base) and exists(store, loose)
        last = put(store, "last", 1000)  # ...and goes now; base is needed by "n"
        assert exists(store, base) and exists(store, named) and exists(store, last)
        assert not exists(store, loose)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"max_bytes": -1}, "max_bytes must be a number >= 0"),
        ({"max_idle_s": -0.5}, "max_idle_s must be a number >= 0"),
        ({"min_idle_s": float("nan")}, "min_idle_s must be a number >= 0"),
        ({"failed_older_than_s": -1}, "failed_older_than_s must be a number >= 0"),
    ],
)
def test_gc_refuses_bad_limits(store: ArtifactStore, kw: dict, message: str) -> None:
    a = put(store, "a")
    with pytest.raises(InvalidArgument, match=message):
        store.gc(**{"max_idle_s": 0, **kw})
    assert exists(store, a)


CRASH_SCRIPT = textwrap.dedent(
    """
    import sys, pyarrow as pa
    from catalog import ArtifactStore
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
        # die between rename and commit
        store._publisher._mark_ready = lambda *a: os.kill(os.getpid(), 9)
        print("publishing", flush=True)
        b.publish()
    elif mode == "upload-mid-write":
        b = store.begin_build(provenance=None, executor=None, params=None, inputs=[],
                              kind="upload", hash_content=True)
        for i, batch in enumerate(t.to_batches(max_chunksize=1000) * 1000):
            b.write(batch)
            if i == 3:
                print("writing", flush=True)
    elif mode == "upload-before-commit":
        import os
        b = store.begin_build(provenance=None, executor=None, params=None, inputs=[],
                              kind="upload", hash_content=True)
        b.write_reader(t.to_reader())
        # die between rename and commit
        store._publisher._mark_ready = lambda *a: os.kill(os.getpid(), 9)
        print("publishing", flush=True)
        b.publish(provenance="crash")
    elif mode == "dedupe-before-unlink":
        import os
        def upload():
            b = store.begin_build(provenance=None, executor=None, params=None, inputs=[],
                                  kind="upload")
            b.write_reader(t.to_reader())
            return b
        upload().publish(provenance="crash")
        loser = upload()
        store._publisher.find_ready = lambda provenance: None  # reach the check in the transaction
        mark_ready = store._publisher._mark_ready
        def mark_then_die(*a):
            winner = mark_ready(*a)
            assert winner is not None
            os.kill(os.getpid(), 9)  # our row is gone, our renamed file not yet
        store._publisher._mark_ready = mark_then_die
        print("publishing", flush=True)
        loser.publish(provenance="crash")
    elif mode == "uploads":
        i = 0
        while True:  # every other upload dedupes against the one before
            b = store.begin_build(provenance=None, executor=None, params=None, inputs=[],
                                  kind="upload", hash_content=True)
            b.write_reader(t.to_reader(max_chunksize=5000))
            info = b.publish(provenance=f"p{i // 2}-{b.seal()}")
            print("published", i, b.deduplicated, flush=True)
            i += 1
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
    ready = store.list(state="ready", limit=10_000)
    assert on_disk == {i.artifact_id for i in ready}
    assert len({i.provenance for i in ready}) == len(ready), "one ready row per provenance"
    return store


@pytest.mark.parametrize("mode", ["mid-write", "before-commit"])
def test_kill_9_leaves_store_consistent(tmp_path: Path, mode: str) -> None:
    run_and_kill(tmp_path, mode, 1)
    store = assert_consistent(tmp_path / "store")
    failed = store.list(state="failed")
    assert len(failed) == 1 and "interrupted" in failed[0].error
    assert store.find_ready("crash") is None
    store.close()


@pytest.mark.parametrize("mode", ["upload-mid-write", "upload-before-commit"])
def test_kill_9_leaves_no_trace_of_a_late_provenance_upload(tmp_path: Path, mode: str) -> None:
    run_and_kill(tmp_path, mode, 1)
    store = assert_consistent(tmp_path / "store")
    [failed] = store.list(state="failed")
    assert "interrupted" in failed.error and failed.provenance.startswith(PROVISIONAL_PREFIX)
    assert store.find_ready("crash") is None and not store.list(state="ready")
    store.close()


def test_kill_9_after_a_dedupe_commit_before_the_file_is_gone(tmp_path: Path) -> None:
    proc = subprocess.run(  # the script kills itself at the right moment
        [sys.executable, "-c", CRASH_SCRIPT, str(tmp_path / "store"), "dedupe-before-unlink"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        timeout=60,
    )
    assert proc.returncode == -9, proc.stderr
    # the loser's renamed file is still there, with no row: an orphan
    assert len(list((tmp_path / "store" / "artifacts").glob("*/v*.arrow"))) == 2
    store = assert_consistent(tmp_path / "store")
    [ready] = store.list(limit=100)
    assert ready.state == "ready" and store.find_ready("crash") == ready
    store.close()


@pytest.mark.parametrize("kind", ["upload", "derived", "uploads"])
def test_kill_9_during_a_stream_of_publishes(tmp_path: Path, kind: str) -> None:
    run_and_kill(tmp_path, kind, 5)
    store = assert_consistent(tmp_path / "store")
    # "uploads": every other one deduplicated against the one before it
    assert len(store.list(state="ready", limit=10_000)) >= (3 if kind == "uploads" else 5)
    store.close()


def open_files_under(path: Path) -> int:
    """How many of this process's descriptors name a file below ``path``."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}").startswith(str(path)):
                count += 1
    return count


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd (Linux)")
def test_a_follower_dropped_unread_closes_its_file(store: ArtifactStore) -> None:
    build = store.begin_build(provenance="f", executor=None, params=None, inputs=[])
    build.write_reader(table(3).to_reader())
    before = open_files_under(store.root)
    follower = build.follow()  # e.g. a DoGet of a live build cancelled before its first batch
    assert open_files_under(store.root) == before + 1
    del follower
    gc.collect()
    assert open_files_under(store.root) == before
    assert store.readers(build.artifact_id, build.version) == 0
    build.publish()
