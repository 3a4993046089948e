"""Fixtures that build real Iceberg warehouses with pyiceberg in tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalog import TableRef, Warehouses, demo_batch, write_demo_warehouse
from executors import ResolvedInput, RunContext
from executors.scan import ScanExecutor
from foundation import Settings


def open_catalog(path: Path, name: str = "strata") -> Any:
    from pyiceberg.catalog.sql import SqlCatalog

    path.mkdir(parents=True, exist_ok=True)
    return SqlCatalog(name, uri=f"sqlite:///{path}/catalog.db", warehouse=f"file://{path}")


def table_ref(path: Path, identifier: str) -> TableRef:
    *ns, table = identifier.split(".")
    return TableRef(warehouse=str(path), namespace=tuple(ns), table=table)


@dataclass
class Evolved:
    """A table whose schema changed between appends; snapshot ids by step."""

    ref: TableRef
    snapshots: dict[str, int] = field(default_factory=dict)


@pytest.fixture(scope="session")
def iceberg_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("iceberg")


@pytest.fixture(scope="session")
def demo_table(iceberg_root: Path) -> TableRef:
    """``db.events``: 20,000 rows in 4 files and 4 snapshots."""
    return write_demo_warehouse(iceberg_root / "demo", rows=20_000, files=4)


@pytest.fixture(scope="session")
def evolved_table(iceberg_root: Path) -> Evolved:
    """v1 (id, name, score) → add ``extra`` → rename name→label → drop score."""
    from pyiceberg.types import DoubleType

    path = iceberg_root / "evolved"
    cat = open_catalog(path)
    cat.create_namespace("db")
    schema = pa.schema([("id", pa.int64()), ("name", pa.string()), ("score", pa.int32())])
    table = cat.create_table("db.evolved", schema=schema)
    out = Evolved(ref=table_ref(path, "db.evolved"))

    table.append(
        pa.table({"id": [1, 2, 3], "name": ["a", "b", None], "score": [10, 20, 30]}, schema=schema)
    )
    out.snapshots["v1"] = table.current_snapshot().snapshot_id
    with table.update_schema() as upd:
        upd.add_column("extra", DoubleType())
    table.append(
        pa.table(
            {"id": [4, 5], "name": ["d", "e"], "score": [40, None], "extra": [0.5, 1.5]},
            schema=table.schema().as_arrow(),
        )
    )
    out.snapshots["added"] = table.current_snapshot().snapshot_id
    with table.update_schema() as upd:
        upd.rename_column("name", "label")
    table.append(
        pa.table(
            {"id": [6], "label": ["f"], "score": [60], "extra": [2.5]},
            schema=table.schema().as_arrow(),
        )
    )
    out.snapshots["renamed"] = table.current_snapshot().snapshot_id
    with table.update_schema() as upd:
        upd.delete_column("score")
    table.append(
        pa.table(
            {"id": [7, 8], "label": ["g", "h"], "extra": [3.5, None]},
            schema=table.schema().as_arrow(),
        )
    )
    out.snapshots["dropped"] = table.current_snapshot().snapshot_id
    cat.engine.dispose()
    return out


PARTITIONED_CATEGORIES = ("north", "south", "east", "west")


@pytest.fixture(scope="session")
def partitioned_table(iceberg_root: Path) -> TableRef:
    """Identity partitions on ``category`` and on the numeric ``part``; 8 files."""
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import IdentityTransform
    from pyiceberg.types import IntegerType, LongType, NestedField, StringType

    path = iceberg_root / "partitioned"
    cat = open_catalog(path)
    cat.create_namespace("db")
    schema = Schema(
        NestedField(1, "id", LongType(), required=False),
        NestedField(2, "category", StringType(), required=False),
        NestedField(3, "part", IntegerType(), required=False),
    )
    spec = PartitionSpec(
        PartitionField(source_id=2, field_id=1000, transform=IdentityTransform(), name="category"),
        PartitionField(source_id=3, field_id=1001, transform=IdentityTransform(), name="part"),
    )
    table = cat.create_table("db.parts", schema=schema, partition_spec=spec)
    n = 800
    ids = list(range(n))
    table.append(
        pa.table(
            {
                "id": pa.array(ids, pa.int64()),
                "category": [PARTITIONED_CATEGORIES[i % 4] for i in ids],
                "part": pa.array([(i // 100) % 2 for i in ids], pa.int32()),
            },
            schema=table.schema().as_arrow(),
        )
    )
    cat.engine.dispose()
    return table_ref(path, "db.parts")


def nulls_rows() -> pa.Table:
    base_ts = datetime(2024, 3, 1, 12, 0, 0)
    rows = 12

    def maybe(values: list[Any], every: int) -> list[Any]:
        return [None if i % every == 0 else v for i, v in enumerate(values)]

    return pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "i": pa.array(maybe([i * 10 for i in range(rows)], 5), pa.int32()),
            "f": pa.array(maybe([i * 1.5 for i in range(rows)], 4), pa.float64()),
            "s": pa.array(maybe([f"s{i % 3}" for i in range(rows)], 3), pa.string()),
            "b": pa.array(maybe([i % 2 == 0 for i in range(rows)], 6), pa.bool_()),
            "d": pa.array(
                maybe([date(2024, 1, 1) + timedelta(days=i) for i in range(rows)], 7), pa.date32()
            ),
            "ts": pa.array(
                maybe([base_ts + timedelta(hours=i) for i in range(rows)], 8), pa.timestamp("us")
            ),
            "tstz": pa.array(
                maybe([(base_ts + timedelta(hours=i)).replace(tzinfo=UTC) for i in range(rows)], 9),
                pa.timestamp("us", tz="UTC"),
            ),
            "dec": pa.array(
                maybe([Decimal(f"{i}.25") for i in range(rows)], 10), pa.decimal128(10, 2)
            ),
        }
    )


@pytest.fixture(scope="session")
def nulls_table(iceberg_root: Path) -> TableRef:
    """Every primitive kind we filter on, with nulls; two data files."""
    path = iceberg_root / "nulls"
    cat = open_catalog(path)
    cat.create_namespace("db")
    data = nulls_rows()
    table = cat.create_table("db.typed", schema=data.schema)
    table.append(data.slice(0, 6))
    table.append(data.slice(6))
    cat.engine.dispose()
    return table_ref(path, "db.typed")


@pytest.fixture(scope="session")
def empty_table(iceberg_root: Path) -> TableRef:
    path = iceberg_root / "empty"
    cat = open_catalog(path)
    cat.create_namespace("db")
    cat.create_table("db.nothing", schema=pa.schema([("id", pa.int64()), ("s", pa.string())]))
    cat.engine.dispose()
    return table_ref(path, "db.nothing")


# --- delete files -------------------------------------------------------------
# pyiceberg 0.12 writes deletes copy-on-write only, so merge-on-read delete files
# are crafted here: a Parquet file in the spec's layout, committed through a
# snapshot producer whose new manifest has content=deletes.


def _delete_manifest_writer(producer: Any) -> Any:
    from pyiceberg.manifest import ManifestContent, ManifestWriterV2

    class DeleteManifestWriter(ManifestWriterV2):
        def content(self) -> ManifestContent:
            return ManifestContent.DELETES

        @property
        def _meta(self) -> dict[str, str]:
            return {**super()._meta, "content": "deletes"}

    return DeleteManifestWriter(
        producer._transaction.table_metadata.spec(),
        producer.schema(),
        producer.new_manifest_output(),
        producer._snapshot_id,
        producer._compression,
    )


def commit_delete_file(table: Any, data: pa.Table, *, equality_ids: list[int] | None = None) -> int:
    """Write ``data`` as a delete file of ``table`` and commit it; the new snapshot id."""
    from pyiceberg.manifest import (
        DataFile,
        DataFileContent,
        FileFormat,
        ManifestEntry,
        ManifestEntryStatus,
    )
    from pyiceberg.table.snapshots import Operation
    from pyiceberg.table.update.snapshot import _FastAppendFiles
    from pyiceberg.typedef import Record

    class AddDeleteFiles(_FastAppendFiles):
        def _manifests(self) -> list[Any]:
            writer = _delete_manifest_writer(self)
            with writer:
                for f in self._added_data_files:
                    writer.add(
                        ManifestEntry.from_args(
                            status=ManifestEntryStatus.ADDED,
                            snapshot_id=self._snapshot_id,
                            sequence_number=None,
                            file_sequence_number=None,
                            data_file=f,
                        )
                    )
            return [writer.to_manifest_file(), *self._existing_manifests()]

    location = f"{table.location()}/data/deletes-{len(table.snapshots())}.parquet"
    local = location.removeprefix("file://")
    pq.write_table(data, local)
    content = (
        DataFileContent.POSITION_DELETES
        if equality_ids is None
        else DataFileContent.EQUALITY_DELETES
    )
    delete_file = DataFile.from_args(
        content=content,
        file_path=location,
        file_format=FileFormat.PARQUET,
        partition=Record(),
        record_count=data.num_rows,
        file_size_in_bytes=Path(local).stat().st_size,
        equality_ids=equality_ids,
    )
    delete_file.spec_id = 0
    with table.transaction() as tx:
        producer = AddDeleteFiles(operation=Operation.DELETE, transaction=tx, io=table.io)
        producer.append_data_file(delete_file)
        producer.commit()
    return table.current_snapshot().snapshot_id


def position_deletes(deletes: dict[str, list[int]]) -> pa.Table:
    """A position-delete file's rows: (data file location, row position)."""
    schema = pa.schema(
        [
            pa.field("file_path", pa.string(), False, {b"PARQUET:field_id": b"2147483546"}),
            pa.field("pos", pa.int64(), False, {b"PARQUET:field_id": b"2147483545"}),
        ]
    )
    paths = sorted(deletes)
    return pa.table(
        {
            "file_path": [p for p in paths for _ in deletes[p]],
            "pos": [x for p in paths for x in sorted(deletes[p])],
        },
        schema=schema,
    )


def wide_table(
    path: Path, rows: int, files: int, *, appended: int = 500, row_group_rows: int | None = None
) -> tuple[TableRef, list[int]]:
    """``rows`` demo rows in ``files`` files plus one appended file of ``appended`` rows
    (none if 0), ``category`` renamed to ``kind``, position deletes (first, fourth and
    last row) in the first two files; the deleted ids."""
    ref = write_demo_warehouse(path, rows=rows, files=files, row_group_rows=row_group_rows)
    cat = open_catalog(path)
    table = cat.load_table("db.events")
    with table.update_schema() as upd:
        upd.rename_column("category", "kind")
    deleted: list[int] = []
    by_file: dict[str, list[int]] = {}
    for task in list(table.scan().plan_files())[:2]:
        ids = pq.read_table(task.file.file_path.removeprefix("file://"), columns=["id"])["id"]
        by_file[task.file.file_path] = [0, 3, len(ids) - 1]
        deleted += [ids[p].as_py() for p in by_file[task.file.file_path]]
    commit_delete_file(table, position_deletes(by_file))
    if appended:
        batch = demo_batch(rows, rows + appended)
        table.append(batch.rename_columns(table.schema().column_names))
    cat.engine.dispose()
    return ref, deleted


@dataclass
class WithDeletes:
    ref: TableRef
    snapshots: dict[str, int] = field(default_factory=dict)
    deleted_ids: list[int] = field(default_factory=list)


@pytest.fixture(scope="session")
def deletes_table(iceberg_root: Path) -> WithDeletes:
    """1,000 demo rows in 2 files; position deletes in both; then one more append."""
    path = iceberg_root / "deletes"
    ref = write_demo_warehouse(path, rows=1_000, files=2)
    cat = open_catalog(path)
    table = cat.load_table("db.events")
    out = WithDeletes(ref=ref)
    out.snapshots["before"] = table.current_snapshot().snapshot_id
    by_file: dict[str, list[int]] = {}
    for task in table.scan().plan_files():
        ids = pq.read_table(task.file.file_path.removeprefix("file://"), columns=["id"])["id"]
        positions = [0, 7, 499] if ids[0].as_py() == 0 else [3, 4, 250]
        by_file[task.file.file_path] = positions
        out.deleted_ids += [ids[p].as_py() for p in positions]
    out.snapshots["deleted"] = commit_delete_file(table, position_deletes(by_file))
    table.append(demo_batch(1_000, 1_100))
    out.snapshots["appended"] = table.current_snapshot().snapshot_id
    cat.engine.dispose()
    return out


@pytest.fixture(scope="session")
def equality_deletes_table(iceberg_root: Path) -> TableRef:
    """The demo table with an equality-delete file on ``id``."""
    path = iceberg_root / "eqdeletes"
    ref = write_demo_warehouse(path, rows=100, files=1)
    cat = open_catalog(path)
    table = cat.load_table("db.events")
    schema = pa.schema([pa.field("id", pa.int64(), False, {b"PARQUET:field_id": b"1"})])
    commit_delete_file(table, pa.table({"id": [5, 6]}, schema=schema), equality_ids=[1])
    cat.engine.dispose()
    return ref


@pytest.fixture(scope="session")
def warehouses() -> Iterator[Warehouses]:
    w = Warehouses()
    yield w
    w.close()


ScanFn = Callable[..., pa.RecordBatchReader]


@pytest.fixture
def scan(warehouses: Warehouses, settings: Settings) -> ScanFn:
    """``scan(ref, params, settings=None)`` → the reader scan@v1 returns.

    Resolves the table as the materialize layer does (at ``snapshot_id`` when
    given) and validates params through the model, as the registry does.
    """
    executor = ScanExecutor(warehouses)

    def run(
        ref: TableRef, params: dict[str, Any] | None = None, *, ctx: RunContext | None = None
    ) -> pa.RecordBatchReader:
        p = executor.params_model.model_validate(params or {})
        resolved = warehouses.resolve(ref, p.snapshot_id)
        inp = ResolvedInput(
            uri=ref.uri,
            kind="table",
            version=resolved.version,
            open_table=_unused_table,
            open_reader=_unused_reader,
            table=resolved,
            snapshot_id=resolved.snapshot_id,
        )
        return executor.run([inp], p, ctx or RunContext(settings=settings))

    return run


def _unused_table() -> pa.Table:
    raise AssertionError("scan@v1 must plan its own reads")


def _unused_reader() -> pa.RecordBatchReader:
    raise AssertionError("scan@v1 must plan its own reads")
