"""Warehouses, resolution, planning and the demo table against real pyiceberg catalogs."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pytest

from catalog import Predicate, TableRef, Warehouses, write_demo_warehouse
from foundation import NotFound
from tests.fixtures_iceberg import Evolved, open_catalog, table_ref


def test_demo_table_shape(demo_table: TableRef, warehouses: Warehouses) -> None:
    table = warehouses.load(demo_table)
    assert [f.name for f in table.schema().fields] == ["id", "value", "category", "ts", "payload"]
    assert len(warehouses.snapshots(demo_table)) == 4
    resolved = warehouses.resolve(demo_table)
    assert len(warehouses.plan(resolved)) == 4
    data = table.scan().to_arrow().sort_by("id")
    assert data["id"].to_pylist() == list(range(20_000))


def test_demo_is_deterministic(tmp_path: Path) -> None:
    a = write_demo_warehouse(tmp_path / "a", rows=1_000, files=2, seed=7)
    b = write_demo_warehouse(tmp_path / "b", rows=1_000, files=2, seed=7)
    w = Warehouses()
    try:
        ta = w.load(a).scan().to_arrow().sort_by("id")
        tb = w.load(b).scan().to_arrow().sort_by("id")
        assert ta.equals(tb)
    finally:
        w.close()


def test_resolve_current_and_pinned(demo_table: TableRef, warehouses: Warehouses) -> None:
    snaps = warehouses.snapshots(demo_table)
    current = warehouses.resolve(demo_table)
    assert current.snapshot_id == snaps[-1]
    assert current.version == str(snaps[-1])
    assert current.table_uuid == str(current.table.metadata.table_uuid)
    first = warehouses.resolve(demo_table, snaps[0])
    assert first.snapshot_id == snaps[0]
    assert len(warehouses.plan(first)) == 1


def test_catalog_is_cached_and_thread_safe(demo_table: TableRef) -> None:
    w = Warehouses()
    seen: list[object] = []
    threads = [
        threading.Thread(target=lambda: seen.append(w.catalog(demo_table.warehouse)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in seen}) == 1
    w.close()


def test_other_catalog_name_is_found(tmp_path: Path) -> None:
    cat = open_catalog(tmp_path, name="default")
    cat.create_namespace("ns")
    cat.create_table("ns.t", schema=pa.schema([("x", pa.int64())]))
    cat.engine.dispose()
    w = Warehouses()
    try:
        assert w.resolve(table_ref(tmp_path, "ns.t")).version == "empty"
    finally:
        w.close()


def test_time_travel_gives_the_old_schema(evolved_table: Evolved, warehouses: Warehouses) -> None:
    names = {
        step: [f.name for f in warehouses.resolve(evolved_table.ref, sid).schema.fields]
        for step, sid in evolved_table.snapshots.items()
    }
    assert names == {
        "v1": ["id", "name", "score"],
        "added": ["id", "name", "score", "extra"],
        "renamed": ["id", "label", "score", "extra"],
        "dropped": ["id", "label", "extra"],
    }


def test_empty_table(empty_table: TableRef, warehouses: Warehouses) -> None:
    resolved = warehouses.resolve(empty_table)
    assert resolved.snapshot_id is None
    assert resolved.version == "empty"
    assert warehouses.plan(resolved) == []
    assert warehouses.snapshots(empty_table) == []


@pytest.mark.parametrize(
    ("predicates", "files"),
    [
        ([], 8),
        ([Predicate(2, "=", "north")], 2),
        ([Predicate(2, "in", ("north", "east"))], 4),
        ([Predicate(3, "=", 1)], 4),
        ([Predicate(2, "=", "north"), Predicate(3, "=", 0)], 1),
        ([Predicate(2, "=", "nowhere")], 0),
        ([Predicate(1, "<", 0)], 0),  # column stats (min id is 0)
        ([Predicate(2, "is_null")], 0),
        ([Predicate(2, "!=", "north")], 6),
    ],
)
def test_plan_prunes_files(
    partitioned_table: TableRef,
    warehouses: Warehouses,
    predicates: list[Predicate],
    files: int,
) -> None:
    resolved = warehouses.resolve(partitioned_table)
    assert len(warehouses.plan(resolved, predicates)) == files


def test_plan_is_cached(partitioned_table: TableRef, warehouses: Warehouses) -> None:
    resolved = warehouses.resolve(partitioned_table)
    preds = [Predicate(2, "=", "south")]
    assert warehouses.plan(resolved, preds) is warehouses.plan(resolved, list(preds))


def test_pruning_uses_current_names_for_old_snapshots(
    evolved_table: Evolved, warehouses: Warehouses
) -> None:
    # Field 2 is "name" in v1 and "label" now; pyiceberg binds by current name.
    resolved = warehouses.resolve(evolved_table.ref, evolved_table.snapshots["added"])
    assert len(warehouses.plan(resolved, [Predicate(2, "=", "a")])) == 1
    # Field 3 (score) was dropped: it cannot prune, so nothing is dropped.
    assert len(warehouses.plan(resolved, [Predicate(3, "=", 999)])) == 2


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: TableRef(str(root / "missing"), ("db",), "t"), "no such directory"),
        (lambda root: TableRef(str(root / "bare"), ("db",), "t"), "has no catalog.db"),
        (lambda root: TableRef(str(root / "wh"), ("nope",), "t"), "namespace 'nope' does not"),
        (lambda root: TableRef(str(root / "wh"), ("db",), "nope"), "tables in 'db': db.t"),
    ],
    ids=["no-warehouse", "no-catalog-db", "no-namespace", "no-table"],
)
def test_not_found(tmp_path: Path, make: object, message: str) -> None:
    (tmp_path / "bare").mkdir()
    cat = open_catalog(tmp_path / "wh")
    cat.create_namespace("db")
    cat.create_table("db.t", schema=pa.schema([("x", pa.int64())]))
    cat.engine.dispose()
    w = Warehouses()
    try:
        with pytest.raises(NotFound, match=message):
            w.resolve(make(tmp_path))  # type: ignore[operator]
        assert not (tmp_path / "bare" / "catalog.db").exists()
    finally:
        w.close()


def test_unknown_snapshot_names_the_known_ones(
    demo_table: TableRef, warehouses: Warehouses
) -> None:
    snaps = warehouses.snapshots(demo_table)
    with pytest.raises(NotFound) as info:
        warehouses.resolve(demo_table, 12345)
    assert "snapshot 12345 does not exist in table db.events" in str(info.value)
    assert all(str(s) in str(info.value) for s in snaps)
