"""Setup shared by the pytest-benchmark files and the side-by-side script."""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pyarrow as pa

from catalog import ArtifactStore, TableRef, Warehouses, write_demo_warehouse
from executors import load_registry
from foundation import Settings
from materialize import Materializer, MaterializeRequest, Transform


def make_warehouse(root: Path, rows: int = 1_000_000, files: int = 4) -> TableRef:
    return write_demo_warehouse(root / f"wh-{rows}-{files}", rows=rows, files=files)


def data_files(warehouses: Warehouses, ref: TableRef) -> list[str]:
    table = warehouses.load(ref)
    return [t.file.file_path.removeprefix("file://") for t in table.scan().plan_files()]


PARQUET_SQL = "select * from read_parquet($files, hive_partitioning=false)"


def warm_duckdb(files: list[str]) -> Callable[[], pa.Table]:
    """DuckDB at its best: one connection kept open, reading the files into an Arrow
    table each call (the baseline a cold scan is held to)."""
    con = duckdb.connect()
    con.sql(PARQUET_SQL, params={"files": files}).to_arrow_table()  # warm it

    def read() -> pa.Table:
        return con.sql(PARQUET_SQL, params={"files": files}).to_arrow_table()

    return read


def make_materializer(data_dir: Path) -> Materializer:
    settings = Settings(data_dir=data_dir, cache_max_bytes=0)
    store = ArtifactStore(settings.data_dir, max_bytes=0)
    return Materializer(settings, store, load_registry(), Warehouses())


def scan_request(ref: TableRef, *, refresh: bool = True) -> MaterializeRequest:
    return MaterializeRequest(
        inputs=[ref.uri], transform=Transform(executor="scan@v1", params={}), refresh=refresh
    )


def cold_scan(m: Materializer, ref: TableRef) -> int:
    """One cold scan@v1 into a ready artifact (refresh forces a build); returns rows."""
    res = m.materialize(scan_request(ref), wait=True)
    assert res.info is not None and res.info.state == "ready"
    return res.info.row_count or 0


def best_and_median(samples: list[float]) -> tuple[float, float]:
    return min(samples), statistics.median(samples)


def median_time(fn: Callable[[], object], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


@contextlib.contextmanager
def quiver_serve(
    root: Path, command: str = "serve"
) -> Iterator[tuple[subprocess.Popen, dict[str, str]]]:
    """A ``quiver serve`` (or ``quiver flight``) process of its own (data and notebooks
    under ``root``), on free ports: the process and its ``key: value`` start-up lines
    (``rest``, ``flight``)."""
    quiver = shutil.which("quiver", path=str(Path(sys.executable).parent)) or "quiver"
    rest = ["--notebook-root", str(root / "nb"), "--rest-port", "0"] if command == "serve" else []
    proc = subprocess.Popen(
        [quiver, command, "--data-dir", str(root / "data"), "--flight-port", "0", *rest],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "QUIVER_LOG_LEVEL": "warning"},
    )  # fmt: skip
    try:
        seen: dict[str, str] = {}
        assert proc.stdout is not None
        for line in proc.stdout:
            key, _, value = line.strip().partition(": ")
            seen[key] = value
            if line.startswith("ready"):
                break
        yield proc, seen
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(30)


def rss_parts(pid: int) -> tuple[int, int, int]:
    """A process's resident memory, bytes: (RSS, its anonymous part: heap and buffers it
    holds, its file-backed part: pages of mapped files, which the kernel may drop)."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    anon, file = (int(fields[k].split()[0]) * 1024 for k in ("RssAnon", "RssFile"))
    return anon + file + int(fields["RssShmem"].split()[0]) * 1024, anon, file


def peak_rss_rise(pid: int, fn: Callable[[], object]) -> tuple[int, int, int]:
    """Peak rise of ``rss_parts(pid)`` (each part's own peak, sampled every 5 ms) while
    ``fn`` runs, bytes."""
    before = rss_parts(pid)
    peak = list(before)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak[:] = map(max, peak, rss_parts(pid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        fn()
    finally:
        done.set()
        sampler.join()
    rss, anon, file = (p - b for p, b in zip(peak, before, strict=True))
    return rss, anon, file
