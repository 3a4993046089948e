"""Dask-built scan figure (issue 20): a cold ``scan@v1`` of 10M rows into an artifact, built
as one Dask task per partition on 2 workers pinned to separate cores, against 1 worker.

Two clusters of real processes: a ``dask scheduler`` each, with ``dask worker --nthreads 1``
processes under ``taskset -c N`` (one on core 0; or one on core 0 and one on core 1). The
bench process is the head: a :class:`Materializer` with ``dask_scheduler`` set, which plans
the partitions, waits for the parts and publishes them. Every build is the same 8 tasks
(one per data file), with DuckDB on one thread per task, so the only difference is how
many cores run them. The ``one_file`` variant (``side_by_side.py daskscan1``) puts the rows
in ONE file, which the planner cuts into row-group ranges. Builds alternate between the
clusters (``refresh``: a new build each round). ``distributed``'s task stream says where
a build's time went: compute on the workers, and the rest (planning, scheduling,
publishing) on the head.
``bench/side_by_side.py daskscan`` prints the figure.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from catalog import ArtifactStore, TableRef, Warehouses, write_demo_warehouse
from executors import load_registry
from foundation import Settings
from materialize import Materializer, MaterializeRequest, Transform

ROWS = 10_000_000
FILES = 8
ONE_FILE_ROW_GROUPS = 10
START_TIMEOUT_S = 60.0


def _dask_command() -> str:
    return str(Path(sys.executable).parent / "dask")


@contextlib.contextmanager
def pinned_cluster(root: Path, cores: list[int]) -> Iterator[str]:
    """A ``dask scheduler`` and one single-threaded ``dask worker`` per core in ``cores``,
    each pinned there with ``taskset``; the scheduler's address. Every process is stopped
    on the way out."""
    from distributed import Client

    root.mkdir(parents=True, exist_ok=True)
    file = root / "scheduler.json"
    quiet = {**os.environ, "DASK_LOGGING__DISTRIBUTED": "error"}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            subprocess.Popen(
                [_dask_command(), "scheduler", "--host", "127.0.0.1", "--port", "0",
                 "--dashboard-address", ":0", "--scheduler-file", str(file)],
                env=quiet, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while not file.exists():
            if time.monotonic() > deadline or procs[0].poll() is not None:
                raise RuntimeError(f"dask scheduler did not start (exit {procs[0].poll()})")
            time.sleep(0.05)
        for core in cores:
            procs.append(
                subprocess.Popen(
                    ["taskset", "-c", str(core), _dask_command(), "worker",
                     "--scheduler-file", str(file), "--nthreads", "1", "--nworkers", "1",
                     "--no-nanny", "--no-dashboard", "--host", "127.0.0.1",
                     "--memory-limit", "0", "--local-directory", str(root / f"w{core}")],
                    env=quiet, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
        address = json.loads(file.read_text())["address"]
        with Client(address, set_as_default=False, timeout=START_TIMEOUT_S) as client:
            client.wait_for_workers(len(cores), timeout=START_TIMEOUT_S)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def head(root: Path, address: str, part_target_bytes: int) -> Materializer:
    """The head: a materializer building on the cluster at ``address`` (DuckDB one thread
    per task: each worker has one core)."""
    settings = Settings(
        data_dir=root, cache_max_bytes=0, dask_scheduler=address, duckdb_threads=1,
        part_target_bytes=part_target_bytes,
    )  # fmt: skip
    store = ArtifactStore(settings.data_dir, max_bytes=0)
    return Materializer(settings, store, load_registry(), Warehouses())


def cold_build(m: Materializer, ref: TableRef, rows: int) -> tuple[float, dict[str, float], int]:
    """One refreshed build of the whole table: its wall time, the seconds each worker
    spent computing parts (from the task stream), and how many parts it made."""
    from distributed import get_task_stream

    from materialize.dask_builds import dask_client

    request = MaterializeRequest(
        inputs=[ref.uri], transform=Transform(executor="scan@v1", params={}), refresh=True
    )
    client = dask_client(m.settings.dask_scheduler)
    with get_task_stream(client=client) as stream:
        t0 = time.perf_counter()
        res = m.materialize(request, wait=True)
        wall = time.perf_counter() - t0
    assert res.info is not None and res.info.row_count == rows, res.info
    parts = m.store.parts_of(res.artifact_id, res.version)
    busy: dict[str, float] = {}
    for task in stream.data:
        for span in task.get("startstops", ()):
            if span.get("action") == "compute":
                busy[task["worker"]] = busy.get(task["worker"], 0.0) + span["stop"] - span["start"]
    m.store.delete(res.artifact_id, res.version)  # keep the disk and page cache calm
    return wall, busy, len(parts)


def measure(rounds: int = 3, rows: int = ROWS, *, one_file: bool = False) -> dict[str, Any]:
    """Builds alternating between the 1-worker and the 2-worker cluster: per cluster the
    wall times, per-build worker compute seconds and part counts.

    By default the rows are in :data:`FILES` files of one row group each, built one part
    per file. ``one_file`` writes them in ONE append of :data:`ONE_FILE_ROW_GROUPS` row groups
    (one file up to pyiceberg's target file size), which the planner cuts into row-group
    ranges: one part per row group."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = 1 if one_file else FILES
        row_groups = rows // (ONE_FILE_ROW_GROUPS if one_file else FILES) + 1
        ref = write_demo_warehouse(root / "wh", rows=rows, files=files, row_group_rows=row_groups)
        # pyiceberg rolls an append over to a new file past its target file size: 10M rows
        # in one append are 2 files (10 row groups and 1)
        data_files = len([p for p in (root / "wh").rglob("*.parquet") if "metadata" not in p.parts])
        target = 1  # one part per data file (or per row group of the one file), on both clusters
        out: dict[str, Any] = {"one": [], "two": [], "one_busy": [], "two_busy": []}
        out |= {"one_parts": [], "two_parts": [], "files": data_files}
        with (
            pinned_cluster(root / "c1", [0]) as one_addr,
            pinned_cluster(root / "c2", [0, 1]) as two_addr,
        ):
            heads = {"one": head(root / "d1", one_addr, target),
                     "two": head(root / "d2", two_addr, target)}  # fmt: skip
            try:
                for m in heads.values():
                    cold_build(m, ref, rows)  # warm: imports and DuckDB on every worker
                for _ in range(rounds):
                    for name, m in heads.items():
                        wall, busy, parts = cold_build(m, ref, rows)
                        assert one_file or parts == FILES, parts
                        out[name].append(wall)
                        out[f"{name}_busy"].append(busy)
                        out[f"{name}_parts"].append(parts)
            finally:
                for m in heads.values():
                    m.close()
                    m.store.close()
                from materialize.dask_builds import close_clients

                close_clients()
    return out
