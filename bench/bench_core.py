"""Core data plane figures (issue 2), with pytest-benchmark.

Run with ``make bench``; ``bench/side_by_side.py`` prints the ratios.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.common import (
    cold_scan,
    data_files,
    make_materializer,
    make_warehouse,
    warm_duckdb,
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("bench-core")
    ref = make_warehouse(Path(root), rows=1_000_000, files=4)
    m = make_materializer(Path(root) / "data")
    files = data_files(m.warehouses, ref)
    yield m, ref, files
    m.close()
    m.store.close()


def test_duckdb_parquet_to_arrow_baseline(benchmark, setup) -> None:
    _, _, files = setup
    table = benchmark(warm_duckdb(files))  # DuckDB at its best: a warm connection
    assert table.num_rows == 1_000_000


def test_cold_scan_into_artifact(benchmark, setup) -> None:
    m, ref, _ = setup
    rows = benchmark(cold_scan, m, ref)
    assert rows == 1_000_000
