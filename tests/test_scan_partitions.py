"""Planning a ``scan@v1`` spread over Dask workers: files cut into contiguous shares
balanced by bytes, a big file into row-group ranges, and DuckDB reading only the row
groups of a range. The builds themselves run on a real cluster in tests/test_dask_scan.py."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from executors.scan.partitions import Unit, group_files, pieces, share_count, split_files
from executors.scan.sql import query_text
from tests.fixtures_iceberg import open_catalog, wide_table


def test_group_files_is_contiguous_and_balanced_by_bytes() -> None:
    assert group_files([], 10, 2) == []
    small = group_files([5, 5, 5], 100, 3)  # less than one target in all: not spread
    assert [(g.start, g.stop, g.bytes) for g in small] == [(0, 3, 15)]
    halves = group_files([10, 10, 10, 10], 40, 2)  # one target's worth, 2 worker threads
    assert [(g.start, g.stop, g.bytes) for g in halves] == [(0, 2, 20), (2, 4, 20)]
    # a big file stays alone; the small ones share a group; never more groups than files
    assert [(g.start, g.stop) for g in group_files([90, 5, 5], 50, 2)] == [(0, 1), (1, 3)]
    assert len(group_files([1, 1, 1], 1, 8)) == 3
    assert [(g.start, g.stop) for g in group_files([1, 1, 1, 1, 1, 1], 2, 1)] == [
        (0, 2), (2, 4), (4, 6),
    ]  # fmt: skip


def test_shares_are_a_multiple_of_the_worker_threads() -> None:
    assert share_count(99, 100, 2) == 1  # under one target: in-process
    assert share_count(300, 100, 1) == 3
    assert share_count(300, 100, 2) == 4  # 3 on 2 threads take two rounds: make them 4
    assert share_count(100, 100, 2) == 2 and share_count(700, 100, 4) == 8
    assert [g.bytes for g in group_files([75, 75, 75, 75], 100, 2)] == [75] * 4


def test_a_big_file_is_cut_into_row_group_ranges() -> None:
    groups = {0: [(10, 30), (10, 30), (10, 40)], 1: [(5, 1)]}
    units = split_files([100, 1], 50, 2, lambda i: groups[i])
    # the big file in its row groups (weighted to its size), the small one whole
    assert units == [Unit(0, 30, (0, 10)), Unit(0, 30, (10, 20)), Unit(0, 40, (20, 30)),
                     Unit(1, 1)]  # fmt: skip
    assert split_files([100, 1], 500, 2, lambda i: groups[i]) == [Unit(0, 100), Unit(1, 1)]
    assert split_files([100], 10, 2, lambda i: [(10, 1)]) == [Unit(0, 100)]  # one row group
    assert split_files([100], 10, 2, lambda i: []) == [Unit(0, 100)]  # an unreadable footer
    # consecutive units of a file join; all of a file's rows is the whole file
    assert pieces(units[:2], lambda i: 30) == [(0, (0, 20))]
    assert pieces(units, lambda i: 30) == [(0, None), (1, None)]
    assert pieces(units[2:], lambda i: 30) == [(0, (20, 30)), (1, None)]


def test_a_range_reads_only_its_row_groups_with_the_deletes_of_its_rows(tmp_path: Path) -> None:
    _, deleted = wide_table(tmp_path / "one", rows=8_000, files=1, appended=0, row_group_rows=1_000)
    cat = open_catalog(tmp_path / "one")
    table = cat.load_table("db.events")
    (task,) = list(table.scan().plan_files())
    cat.engine.dispose()
    data = task.file.file_path.removeprefix("file://")
    deletes = [d.file_path.removeprefix("file://") for d in task.delete_files]
    schema = table.schema()
    con = duckdb.connect()
    got = []
    for start, stop in [(0, 3_000), (3_000, 8_000)]:
        sql, params = query_text(
            schema, list(schema.fields), [], [data], deletes, row_ranges={data: (start, stop)}
        )
        plan = "\n".join(r[1] for r in con.execute(f"EXPLAIN ANALYZE {sql}", params).fetchall())
        scanned = f"Row Groups Scanned: {(stop - start) // 1_000} / 8"
        assert scanned in plan, [line for line in plan.splitlines() if "Row Groups" in line]
        got.append(con.sql(sql, params=params).to_arrow_table())
    con.close()
    first, second = (sorted(t["id"].to_pylist()) for t in got)
    whole = pq.read_table(data, columns=["id"])["id"].to_pylist()
    assert first == sorted(i for i in whole[:3_000] if i not in deleted)  # its own deletes
    assert second == sorted(i for i in whole[3_000:] if i not in deleted)
    assert set(deleted) & set(whole[:3_000]) and set(deleted) & set(whole[3_000:])
    assert {"kind"} <= set(pa.concat_tables(got).schema.names)  # renamed, read by field id
