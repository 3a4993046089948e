"""Setup shared by the pytest-benchmark files and the side-by-side script."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
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


def duckdb_baseline(files: list[str]) -> pa.Table:
    """DuckDB reading the same Parquet files straight into an Arrow table."""
    con = duckdb.connect()
    try:
        return con.sql(
            "select * from read_parquet($files, hive_partitioning=false)",
            params={"files": files},
        ).to_arrow_table()
    finally:
        con.close()


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


def median_time(fn: Callable[[], object], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)
