"""``sql@v1`` over Iceberg tables: read from the files when the scan is not built, the
same answer and provenance whichever way, and no file but the table's own readable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from catalog import ArtifactStore, TableRef
from executors import load_registry, prepare_query_database, spares
from foundation import InvalidArgument, Settings
from materialize import Materializer, MaterializeRequest, Transform
from tests.polling import wait_until


def req(inputs: list[str], executor: str, params: dict[str, Any]) -> MaterializeRequest:
    return MaterializeRequest(inputs=inputs, transform=Transform(executor=executor, params=params))


def sql(ref: TableRef, text: str) -> MaterializeRequest:
    return req([ref.uri], "sql@v1", {"sql": text})


def scan(ref: TableRef) -> MaterializeRequest:
    return req([ref.uri], "scan@v1", {})


@pytest.fixture
def open_materializer(tmp_path: Path) -> Iterator[Any]:
    """Materializers on fresh data directories, closed at the end."""
    opened: list[tuple[Materializer, ArtifactStore]] = []

    def make(label: str) -> Materializer:
        settings = Settings(data_dir=tmp_path / label, notebook_root=tmp_path / "nb")
        store = ArtifactStore(settings.data_dir, max_bytes=settings.cache_max_bytes)
        m = Materializer(settings, store, load_registry())
        opened.append((m, store))
        return m

    yield make
    for m, store in opened:
        m.close(cancel=True)
        store.close()


def answer(m: Materializer, request: MaterializeRequest) -> tuple[pa.Table, str]:
    res = m.materialize(request, wait=True)
    assert res.state == "ready", res
    return m.open(res).read_all(), res.artifact_uri


def scan_built(m: Materializer, ref: TableRef) -> bool:
    return bool(m.explain(scan(ref))["would_hit"])


DENIED = "file system operations are disabled by configuration"

QUERIES = [
    "SELECT * FROM input0 ORDER BY ALL",
    "SELECT count(*) AS n FROM input0",
    "SELECT * EXCLUDE (id), id * 2 AS twice FROM input0 WHERE id % 3 = 1 ORDER BY twice",
]

# fixture name, whether a raw read of the files is safe (else the scan is built)
TABLES = [
    ("demo_table", True),
    ("nulls_table", True),
    ("partitioned_table", True),
    ("empty_table", True),
    ("evolved_table", False),  # a dropped column is still in the older files
    ("deletes_table", False),  # a raw read would see the deleted rows
]


@pytest.mark.parametrize(("fixture", "direct"), TABLES)
def test_same_answer_and_provenance_from_the_files_or_the_scan(
    request: pytest.FixtureRequest, open_materializer: Any, fixture: str, direct: bool
) -> None:
    table = request.getfixturevalue(fixture)
    ref: TableRef = table if isinstance(table, TableRef) else table.ref
    cold = open_materializer("cold")
    scanned = open_materializer("scanned")
    scanned.materialize(scan(ref), wait=True)  # this one reads through the built scan
    for text in QUERIES:
        got, got_uri = answer(cold, sql(ref, text))
        want, want_uri = answer(scanned, sql(ref, text))
        assert got.schema == want.schema, text
        assert got.to_pylist() == want.to_pylist(), text
        assert cold.plan(sql(ref, text)).provenance == scanned.plan(sql(ref, text)).provenance
        assert got_uri != want_uri  # two stores, but the same content address above
    assert scan_built(cold, ref) is not direct


def test_an_uncached_table_is_read_from_its_files_and_a_repeat_is_a_hit(
    materializer: Materializer, demo_table: TableRef
) -> None:
    query = sql(demo_table, "SELECT category, count(*) AS n FROM input0 GROUP BY 1 ORDER BY 1")
    first = materializer.materialize(query, wait=True)
    rows = materializer.open(first).read_all().to_pylist()
    assert sum(r["n"] for r in rows) == 20_000
    assert not scan_built(materializer, demo_table)  # no copy of the whole table was made
    again = materializer.materialize(query, wait=True)
    assert again.hit and again.artifact_uri == first.artifact_uri
    assert materializer.open(again).read_all().to_pylist() == rows


def test_a_built_scan_is_used_rather_than_the_files(
    materializer: Materializer, demo_table: TableRef
) -> None:
    materializer.materialize(scan(demo_table), wait=True)
    hits = materializer.counters["hits"]
    table, _ = answer(materializer, sql(demo_table, "SELECT max(id) AS m FROM input0"))
    assert table.to_pylist() == [{"m": 19_999}]
    assert materializer.counters["hits"] == hits + 1  # the scan, opened memory-mapped


def parquet_files(ref: TableRef) -> list[Path]:
    return sorted(Path(ref.warehouse).rglob("*.parquet"))


@pytest.mark.parametrize(
    "reads",
    [
        "read_csv('/etc/passwd')",
        "read_text('/etc/hostname')",
        "read_parquet({other!r})",
        "read_parquet({own_dir!r} || '/*.parquet')",
        "glob({own_dir!r} || '/*')",
        "read_parquet({own!r} || '/../' || {own_name!r})",
    ],
)
def test_a_query_reads_no_file_but_through_its_inputs(
    materializer: Materializer, demo_table: TableRef, nulls_table: TableRef, reads: str
) -> None:
    own = parquet_files(demo_table)[0]
    source = reads.format(
        other=str(parquet_files(nulls_table)[0]),
        own_dir=str(own.parent),
        own=str(own),
        own_name=own.name,
    )
    query = sql(demo_table, f"SELECT (SELECT count(*) FROM input0) AS n, * FROM {source}")
    with pytest.raises(InvalidArgument, match=DENIED):
        answer(materializer, query)


def test_a_table_with_deletes_gives_its_files_no_access(
    materializer: Materializer, deletes_table: Any
) -> None:
    own = str(parquet_files(deletes_table.ref)[0])
    query = sql(deletes_table.ref, f"SELECT * FROM read_parquet('{own}')")
    with pytest.raises(InvalidArgument, match=DENIED):
        answer(materializer, query)


def test_a_database_opened_ahead_is_taken_locked_down_and_replaced(
    materializer: Materializer, settings: Settings, demo_table: TableRef
) -> None:
    prepare_query_database(settings)
    assert spares.held() >= 1
    first, _ = answer(materializer, sql(demo_table, "SELECT count(*) AS n FROM input0"))
    assert first.to_pylist() == [{"n": 20_000}]
    # once published, the query's build closed its database and opened the next one
    assert wait_until(lambda: spares.held() >= 1, timeout=10), "no spare after the query"
    with pytest.raises(InvalidArgument, match=DENIED):
        answer(materializer, sql(demo_table, "SELECT * FROM read_csv('/etc/passwd')"))
    spares.close_all()
    assert spares.held() == 0
