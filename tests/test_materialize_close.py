"""Materializer.close is bounded: a build whose executor ignores its cancel is abandoned
(failed, its followers woken, nothing of it ever published) and cannot keep the process
from exiting."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest

import catalog.publish
from catalog import ArtifactStore, Build
from executors import load_registry
from foundation import BuildFailed, Settings
from materialize import Materializer
from tests.polling import wait_until
from tests.test_materialize import GatedExecutor, req
from tests.test_store import concurrently

ROOT = Path(__file__).resolve().parents[1]


def build_threads_running() -> bool:
    return any(t.name == "quiver-build" and t.is_alive() for t in threading.enumerate())


def test_close_abandons_a_build_that_ignores_its_cancel(
    settings: Settings, store: ArtifactStore
) -> None:
    stubborn = GatedExecutor()  # its second batch waits for the gate, cancel or not
    m = Materializer(settings, store, load_registry(extra=[stubborn]))
    try:
        result = m.materialize(req([], "gated@v1"))
        build = result.build
        assert build is not None
        follower = m.open(result)
        assert follower.read_next_batch().num_rows == 2

        start = time.monotonic()
        m.close(cancel=True, timeout=0.5)
        took = time.monotonic() - start
        assert 0.5 <= took < 3, f"close took {took:.2f} s"

        info = store.get(build.artifact_id, build.version)
        assert info.state == "failed" and "abandoned" in info.error
        with pytest.raises(BuildFailed, match="abandoned"):
            follower.read_next_batch()
        assert not build.tmp_path.exists()
    finally:
        stubborn.gate.set()  # the executor goes on at last: what it writes goes nowhere
    assert wait_until(lambda: not build_threads_running())
    assert store.get(build.artifact_id, build.version).state == "failed"
    assert not build.final_path.exists()
    assert not list(store.tmp_dir.iterdir())
    assert m.counters["builds_failed"] == 1


STUCK = textwrap.dedent(
    """
    import sys
    from catalog import ArtifactStore
    from executors import load_registry
    from materialize import Materializer
    from foundation import Settings
    from tests.test_materialize import GatedExecutor, req
    settings = Settings(data_dir=sys.argv[1])
    store = ArtifactStore(settings.store_dir)
    m = Materializer(settings, store, load_registry(extra=[GatedExecutor()]))
    m.materialize(req([], "gated@v1"))  # its build waits for a gate nobody opens
    m.close(cancel=True, timeout=0.2)
    store.close()
    print("closed", flush=True)
    from materialize import leave  # how the quiver command ends
    sys.exit(leave(0))
    """
)


def test_a_build_that_never_stops_does_not_keep_the_process_alive(tmp_path: Path) -> None:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", STUCK, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    took = time.monotonic() - start
    assert proc.returncode == 0 and proc.stdout == "closed\n", proc.stderr
    assert took < 15, f"the process took {took:.1f} s to exit (the gate waits 30 s)"
    with ArtifactStore(tmp_path / "data") as store:
        [failed] = store.list(state="failed")
        assert "abandoned" in failed.error
        assert not store.list(state="building") and not store.list(state="ready")


def started(store: ArtifactStore, provenance: str) -> Build:
    build = store.begin_build(
        provenance=provenance, executor="x", params={}, inputs=[], kind="upload"
    )  # an upload: durable, so its publish syncs the directory between rename and commit
    build.write(pa.record_batch([pa.array([1, 2], pa.int64())], names=["x"]))
    return build


@pytest.mark.parametrize(
    "module, step",
    [
        (None, None),  # abandoned before the publish began
        (os, "replace"),  # ... as the publish renames its file
        (catalog.publish, "fsync_dir"),  # ... between the rename and the commit
    ],
)
def test_an_abandoned_build_publishes_nothing(
    store: ArtifactStore, module: object, step: str | None
) -> None:
    build = started(store, "late")

    def abandon() -> None:
        build.abandon(BuildFailed("gave up"))

    if module is None:
        abandon()
        with pytest.raises(BuildFailed, match="abandoned"):
            build.publish()
    else:
        with (
            concurrently(store, module, step, abandon),
            pytest.raises(BuildFailed, match="abandoned"),
        ):
            build.publish()
    assert store.get(build.artifact_id, build.version).state == "failed"
    assert store.find_ready("late") is None
    assert not build.final_path.exists() and not build.tmp_path.exists()


def test_abandon_after_the_publish_changes_nothing(store: ArtifactStore) -> None:
    build = started(store, "on-time")
    info = build.publish()
    build.abandon(BuildFailed("too late"))
    assert store.get(build.artifact_id, build.version).state == "ready"
    assert build.final_path.stat().st_size == info.byte_size
