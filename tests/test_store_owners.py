"""Who owns a build in progress: recovery fails exactly the builds whose process is gone,
even when the pid they recorded now belongs to a live process."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa

from catalog import ArtifactStore, owners

ROOT = Path(__file__).resolve().parents[1]

WRITER = textwrap.dedent(
    """
    import sys, pyarrow as pa
    from catalog import ArtifactStore
    store = ArtifactStore(sys.argv[1])
    b = store.begin_build(provenance="crash", executor="x", params={}, inputs=[])
    b.write(pa.record_batch([pa.array(range(1000), pa.int64())], names=["x"]))
    print(b.artifact_id, flush=True)
    sys.stdin.read()  # until the test kills it
    """
)


def build_then_die(root: Path) -> str:
    """A process begins a build, writes a batch and is killed (-9); the build's id."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    artifact_id = proc.stdout.readline().strip()
    assert artifact_id, "the writer died before it began its build"
    proc.kill()
    proc.communicate(timeout=30)
    return artifact_id


def a_dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(30)
    return proc.pid


def put(store: ArtifactStore, provenance: str) -> object:
    t = pa.table({"x": pa.array(range(10), pa.int64())})
    return store.put(t.to_reader(), provenance=provenance)


def test_a_dead_build_is_failed_even_when_its_pid_was_reused(tmp_path: Path) -> None:
    root = tmp_path / "store"
    artifact_id = build_then_die(root)
    # The dead writer's pid now names a live process (here: this one's parent).
    db = sqlite3.connect(root / "store.db")
    db.execute("UPDATE artifacts SET build_pid=?", (os.getppid(),))
    db.commit()
    db.close()
    assert len(list((root / "tmp").iterdir())) == 1
    with ArtifactStore(root) as store:
        info = store.get(artifact_id, 1)
        assert info.state == "failed" and "interrupted" in info.error
        assert not list((root / "tmp").iterdir())
        assert [p.name for p in (root / "owners").iterdir()] == [f"{store.owner}.lock"]


def test_a_build_of_a_live_store_is_left_alone_even_in_this_process(tmp_path: Path) -> None:
    root = tmp_path / "store"
    writer = ArtifactStore(root)
    build = writer.begin_build(provenance="live", executor="x", params={}, inputs=[])
    build.write(pa.record_batch([pa.array([1, 2], pa.int64())], names=["x"]))
    with ArtifactStore(root) as other:  # recovers on open: the writer is alive
        assert other.get(build.artifact_id, 1).state == "building"
        assert build.tmp_path.exists()
    info = build.publish()
    assert info.state == "ready"
    writer.close()
    with ArtifactStore(root) as after:
        assert after.get(build.artifact_id, 1).state == "ready"
        assert after.open_table(build.artifact_id, 1).num_rows == 2


def test_a_closed_store_counts_as_gone(tmp_path: Path) -> None:
    root = tmp_path / "store"
    writer = ArtifactStore(root)
    build = writer.begin_build(provenance="left", executor="x", params={}, inputs=[])
    build.write(pa.record_batch([pa.array([1], pa.int64())], names=["x"]))
    token = writer.owner
    assert owners.alive(root / "owners", token)
    writer.close()  # without ending its build: a process that closed its store and lives on
    assert not owners.alive(root / "owners", token)
    with ArtifactStore(root) as store:
        assert store.get(build.artifact_id, 1).state == "failed"
        assert not build.tmp_path.exists()


def test_a_store_written_by_the_earlier_schema_opens_and_recovers(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with ArtifactStore(root) as store:
        ready = put(store, "kept")
    # As an earlier version left it: no build_owner column, builds named by pid alone,
    # one of them interrupted (a row and a temp file of a process that is gone).
    dead = a_dead_pid()
    db = sqlite3.connect(root / "store.db")
    db.execute("ALTER TABLE artifacts DROP COLUMN build_owner")
    db.execute(
        "INSERT INTO artifacts (artifact_id, version, provenance, state, kind, created_at, "
        "build_pid) VALUES ('old', 1, 'p-old', 'building', 'derived', 0, ?)",
        (dead,),
    )
    db.commit()
    db.close()
    (root / "tmp" / f"old.v1.{dead}.arrow").write_bytes(b"partial")
    with ArtifactStore(root) as store:
        assert store.get("old", 1).state == "failed"
        assert not list((root / "tmp").iterdir())
        assert store.open_table(ready.artifact_id, ready.version).num_rows == 10
        again = put(store, "new")  # and builds go on under the new schema
        assert store.get(again.artifact_id, again.version).state == "ready"
    db = sqlite3.connect(root / "store.db")
    assert "build_owner" in {r[1] for r in db.execute("PRAGMA table_info(artifacts)")}
    db.close()
