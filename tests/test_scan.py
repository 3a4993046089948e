"""scan@v1 against real pyiceberg warehouses; pyiceberg's own scan is the ground truth."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from catalog import TableRef, Warehouses
from executors import Registry, RunContext
from executors.scan import TIMER_THREAD_NAME, ScanExecutor
from foundation import InvalidArgument, NotFound, QuiverError, Settings, Timeout, Unavailable
from tests.fixtures_iceberg import Evolved, ScanFn, WithDeletes, open_catalog, table_ref

_OPS: dict[str, str] = {
    "=": "EqualTo",
    "!=": "NotEqualTo",
    "<": "LessThan",
    "<=": "LessThanOrEqual",
    ">": "GreaterThan",
    ">=": "GreaterThanOrEqual",
    "in": "In",
    "is_null": "IsNull",
    "not_null": "NotNull",
}


def truth(
    warehouses: Warehouses,
    ref: TableRef,
    filters: list[dict[str, Any]] = (),  # type: ignore[assignment]
    columns: list[str] | None = None,
    snapshot_id: int | None = None,
) -> pa.Table:
    """pyiceberg's answer to the same question."""
    from pyiceberg import expressions as ex

    row_filter: Any = ex.AlwaysTrue()
    for f in filters:
        make = getattr(ex, _OPS[f["op"]])
        if f["op"] in ("is_null", "not_null"):
            expr = make(f["column"])
        elif f["op"] == "in":
            expr = make(f["column"], set(f["value"]))
        else:
            expr = make(f["column"], f["value"])
        row_filter = ex.And(row_filter, expr)
    table = warehouses.load(ref)
    kwargs: dict[str, Any] = {"row_filter": row_filter, "snapshot_id": snapshot_id}
    if columns is not None:
        kwargs["selected_fields"] = tuple(columns)
    return table.scan(**kwargs).to_arrow()


def rows(table: pa.Table, key: str = "id") -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=lambda r: r[key])


def drain(reader: pa.RecordBatchReader) -> pa.Table:
    batches = list(reader)
    for b in batches:
        assert b.schema == reader.schema
    return pa.Table.from_batches(batches, schema=reader.schema)


# --- results ---------------------------------------------------------------

TYPED_FILTERS = [
    ("i", "=", 20),
    ("i", "!=", 20),
    ("i", "<", 50),
    ("i", "<=", 50),
    ("i", ">", 50),
    ("i", ">=", 50),
    ("i", "in", [10, 20, 999, 20]),
    ("i", "is_null", None),
    ("i", "not_null", None),
    ("f", ">", 3),  # an integer is a fine value for a double column
    ("f", "<=", 4.5),
    ("f", "!=", 3.0),
    ("s", "=", "s1"),
    ("s", "!=", "s1"),
    ("s", "in", ["s1", "s2"]),
    ("s", "is_null", None),
    ("s", ">", "s0"),
    ("b", "=", True),
    ("b", "!=", True),
    ("b", "<", True),
    ("b", "is_null", None),
    ("d", ">=", "2024-01-05"),
    ("d", "in", ["2024-01-02", "2024-01-03"]),
    ("ts", "<", "2024-03-01T15:00:00"),
    ("ts", "=", "2024-03-01T14:00:00"),
    ("tstz", ">=", "2024-03-01T16:00:00+00:00"),
    ("dec", ">", "3.25"),
    ("dec", "=", "5.25"),
]


@pytest.mark.parametrize(("column", "op", "value"), TYPED_FILTERS)
def test_every_op_matches_pyiceberg(
    scan: ScanFn, nulls_table: TableRef, warehouses: Warehouses, column: str, op: str, value: Any
) -> None:
    f = {"column": column, "op": op, "value": value}
    got = drain(scan(nulls_table, {"filters": [f]}))
    want = truth(warehouses, nulls_table, [f])
    assert rows(got) == rows(want)
    if op == "!=":  # SQL semantics: null != x is not true
        assert None not in got[column].to_pylist()
        assert got.num_rows < 12


def test_values_with_offsets_compare_as_instants(scan: ScanFn, nulls_table: TableRef) -> None:
    f = {"column": "tstz", "op": "<", "value": "2024-03-01T17:00:00+02:00"}  # 15:00 UTC
    got = drain(scan(nulls_table, {"filters": [f], "columns": ["id"]}))
    assert sorted(got["id"].to_pylist()) == [1, 2]  # id 0 is null


def test_all_types_round_trip(scan: ScanFn, nulls_table: TableRef, warehouses: Warehouses) -> None:
    got = drain(scan(nulls_table))
    want = truth(warehouses, nulls_table)
    assert got.schema.names == want.schema.names
    assert rows(got) == rows(want)
    assert got.schema.field("tstz").type == pa.timestamp("us", tz="UTC")
    assert got.schema.field("dec").type == pa.decimal128(10, 2)


def test_demo_full_scan_in_batches(
    scan: ScanFn, demo_table: TableRef, warehouses: Warehouses, settings: Settings
) -> None:
    ctx = RunContext(settings=settings.model_copy(update={"batch_size": 1000}))
    reader = scan(demo_table, ctx=ctx)
    batches = list(reader)
    assert len(batches) >= 20
    assert all(b.num_rows <= 1000 for b in batches)
    got = pa.Table.from_batches(batches)
    assert sorted(got["id"].to_pylist()) == list(range(20_000))
    want = truth(warehouses, demo_table)
    assert got.cast(want.schema).sort_by("id").equals(want.sort_by("id"))


@pytest.mark.parametrize(
    "params",
    [
        {"columns": ["payload", "id"]},
        {"columns": ["ts"], "filters": [{"column": "id", "op": "<", "value": 100}]},
        {
            "columns": ["id", "category"],
            "filters": [
                {"column": "category", "op": "in", "value": ["beta", "gamma"]},
                {"column": "value", "op": ">", "value": 120},
                {"column": "ts", "op": ">=", "value": "2024-01-01T03:00:00"},
            ],
        },
    ],
)
def test_projections_and_filters(
    scan: ScanFn, demo_table: TableRef, warehouses: Warehouses, params: dict[str, Any]
) -> None:
    got = drain(scan(demo_table, params))
    assert got.schema.names == params["columns"]
    cols = list({*params["columns"], "id"})
    want = truth(warehouses, demo_table, params.get("filters", []), cols)
    key = "id" if "id" in params["columns"] else params["columns"][0]
    assert rows(got, key) == rows(want.select(params["columns"]), key)


def test_time_travel_by_snapshot_id(
    scan: ScanFn, demo_table: TableRef, warehouses: Warehouses
) -> None:
    first = warehouses.snapshots(demo_table)[0]
    got = drain(scan(demo_table, {"snapshot_id": first, "columns": ["id"]}))
    assert got["id"].to_pylist() == list(range(5_000))


def test_schema_evolution_at_every_snapshot(
    scan: ScanFn, evolved_table: Evolved, warehouses: Warehouses
) -> None:
    for step, sid in evolved_table.snapshots.items():
        got = drain(scan(evolved_table.ref, {"snapshot_id": sid}))
        want = truth(warehouses, evolved_table.ref, snapshot_id=sid)
        assert got.schema.names == want.schema.names, step
        assert rows(got) == rows(want), step


def test_renamed_added_dropped_columns(scan: ScanFn, evolved_table: Evolved) -> None:
    got = drain(scan(evolved_table.ref))
    assert got.schema.names == ["id", "label", "extra"]
    assert rows(got) == [
        {"id": 1, "label": "a", "extra": None},  # old files: renamed read by field id,
        {"id": 2, "label": "b", "extra": None},  # the added column is null
        {"id": 3, "label": None, "extra": None},
        {"id": 4, "label": "d", "extra": 0.5},
        {"id": 5, "label": "e", "extra": 1.5},
        {"id": 6, "label": "f", "extra": 2.5},
        {"id": 7, "label": "g", "extra": 3.5},
        {"id": 8, "label": "h", "extra": None},
    ]
    by_new_name = {"column": "label", "op": "in", "value": ["a", "f"]}
    got = drain(scan(evolved_table.ref, {"filters": [by_new_name], "columns": ["id"]}))
    assert sorted(got["id"].to_pylist()) == [1, 6]
    v1 = evolved_table.snapshots["v1"]
    old = drain(scan(evolved_table.ref, {"snapshot_id": v1, "columns": ["name", "score"]}))
    assert old.to_pylist() == [
        {"name": "a", "score": 10},
        {"name": "b", "score": 20},
        {"name": None, "score": 30},
    ]
    with pytest.raises(InvalidArgument, match="unknown column 'score'"):
        scan(evolved_table.ref, {"columns": ["score"]})
    with pytest.raises(InvalidArgument, match="unknown column 'label'"):
        scan(evolved_table.ref, {"snapshot_id": v1, "columns": ["label"]})


@pytest.mark.parametrize(
    "filters",
    [
        [{"column": "category", "op": "=", "value": "north"}],
        [
            {"column": "category", "op": "=", "value": "north"},
            {"column": "part", "op": "=", "value": 1},
        ],
        [{"column": "part", "op": "in", "value": [1]}, {"column": "id", "op": ">=", "value": 150}],
        [{"column": "category", "op": "!=", "value": "west"}],
    ],
)
def test_partitioned_table(
    scan: ScanFn, partitioned_table: TableRef, warehouses: Warehouses, filters: list[Any]
) -> None:
    got = drain(scan(partitioned_table, {"filters": filters}))
    assert got.num_rows > 0
    assert rows(got) == rows(truth(warehouses, partitioned_table, filters))


def test_empty_results_keep_the_schema(scan: ScanFn, demo_table: TableRef) -> None:
    full = scan(demo_table).schema
    pruned = scan(demo_table, {"filters": [{"column": "id", "op": "<", "value": 0}]})
    assert pruned.schema == full
    assert drain(pruned).num_rows == 0
    unmatched = scan(demo_table, {"filters": [{"column": "payload", "op": "=", "value": "x"}]})
    assert unmatched.schema == full
    assert drain(unmatched).num_rows == 0


def test_table_without_snapshot(scan: ScanFn, empty_table: TableRef) -> None:
    got = drain(scan(empty_table, {"filters": [{"column": "id", "op": ">", "value": 1}]}))
    assert got.num_rows == 0
    assert got.schema == pa.schema([("id", pa.int64()), ("s", pa.string())])


# --- identity ----------------------------------------------------------------


def identity(params: dict[str, Any]) -> str:
    """The identity as the provenance hash sees it (JSON: true is not 1)."""
    ex = ScanExecutor()
    return json.dumps(ex.identity(ex.params_model.model_validate(params)), sort_keys=True)


def test_identity_normalises_filters() -> None:
    a = identity(
        {
            "filters": [
                {"column": "b", "op": "in", "value": [3, 1, 3]},
                {"column": "a", "op": "=", "value": 1},
            ]
        }
    )
    b = identity(
        {
            "filters": [
                {"column": "a", "op": "=", "value": 1},
                {"column": "b", "op": "in", "value": [1, 3]},
                {"column": "a", "op": "=", "value": 1},
            ]
        }
    )
    assert a == b
    assert identity({"filters": [{"column": "a", "op": "in", "value": [1]}]}) == identity(
        {"filters": [{"column": "a", "op": "=", "value": 1}]}
    )
    assert identity({"columns": ["a", "b"]}) != identity({"columns": ["b", "a"]})
    assert identity({"snapshot_id": 1}) != identity({})
    eq_true = {"filters": [{"column": "a", "op": "=", "value": True}]}
    eq_one = {"filters": [{"column": "a", "op": "=", "value": 1}]}
    assert identity(eq_true) != identity(eq_one)
    in_mixed = {"filters": [{"column": "a", "op": "in", "value": [True, 1]}]}
    assert json.loads(identity(in_mixed))["filters"][0]["value"] == [True, 1]


# --- refusals ------------------------------------------------------------------

BAD_PARAMS: list[tuple[str, dict[str, Any], type[QuiverError], str]] = [
    (
        "unknown-column",
        {"columns": ["id", "nope"]},
        InvalidArgument,
        "params.columns: unknown column 'nope'; the table's columns are: id, value, category, "
        "ts, payload",
    ),
    (
        "unknown-filter-column",
        {"filters": [{"column": "nope", "op": "=", "value": 1}]},
        InvalidArgument,
        "filter 0: unknown column 'nope'",
    ),
    (
        "string-for-long",
        {"filters": [{"column": "id", "op": "=", "value": "5"}]},
        InvalidArgument,
        "value \"5\" (a string) does not fit column 'id' of type long; it needs an integer",
    ),
    (
        "bool-for-long",
        {"filters": [{"column": "id", "op": "=", "value": True}]},
        InvalidArgument,
        "value true (a boolean) does not fit column 'id' of type long",
    ),
    (
        "int-for-string",
        {"filters": [{"column": "category", "op": "=", "value": 5}]},
        InvalidArgument,
        "value 5 (an integer) does not fit column 'category' of type string",
    ),
    (
        "bad-timestamp",
        {"filters": [{"column": "ts", "op": ">", "value": "yesterday"}]},
        InvalidArgument,
        "it needs an ISO-8601 timestamp string",
    ),
    (
        "offset-on-naive-timestamp",
        {"filters": [{"column": "ts", "op": ">", "value": "2024-01-01T00:00:00+02:00"}]},
        InvalidArgument,
        "without a UTC offset",
    ),
    (
        "wrong-in-element",
        {"filters": [{"column": "id", "op": "in", "value": [1, "2"]}]},
        InvalidArgument,
        "filter 0 (id in): value \"2\" (a string) does not fit column 'id'",
    ),
    (
        "missing-value",
        {"filters": [{"column": "id", "op": "<"}]},
        InvalidArgument,
        "filter 0 (id <): op '<' needs a value",
    ),
    (
        "value-for-is-null",
        {"filters": [{"column": "id", "op": "is_null", "value": 3}]},
        InvalidArgument,
        "filter 0 (id is_null): op 'is_null' takes no value, got 3",
    ),
    (
        "empty-in",
        {"filters": [{"column": "id", "op": "in", "value": []}]},
        InvalidArgument,
        "op 'in' needs a non-empty list of values",
    ),
    (
        "scalar-in",
        {"filters": [{"column": "id", "op": "in", "value": 3}]},
        InvalidArgument,
        "op 'in' needs a non-empty list of values, got 3",
    ),
    (
        "list-for-comparison",
        {"filters": [{"column": "id", "op": "=", "value": [3]}]},
        InvalidArgument,
        "op '=' takes one value, not a list",
    ),
    (
        "duplicate-column",
        {"columns": ["id", "id"]},
        InvalidArgument,
        "params.columns names 'id' twice",
    ),
    ("empty-columns", {"columns": []}, InvalidArgument, "params.columns is empty"),
    (
        "unknown-snapshot",
        {"snapshot_id": 42},
        NotFound,
        "snapshot 42 does not exist in table db.events",
    ),
]


@pytest.mark.parametrize(
    ("params", "error", "message"),
    [case[1:] for case in BAD_PARAMS],
    ids=[case[0] for case in BAD_PARAMS],
)
def test_bad_params(
    scan: ScanFn,
    demo_table: TableRef,
    params: dict[str, Any],
    error: type[QuiverError],
    message: str,
) -> None:
    with pytest.raises(error) as info:
        scan(demo_table, params)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": 3}, "params.limit: Extra inputs are not permitted"),
        (
            {"filters": [{"column": "id", "op": "like", "value": "x"}]},
            "params.filters.0.op: Input should be",
        ),
        (
            {"filters": [{"column": "id", "op": "=", "value": 1, "extra": 2}]},
            "params.filters.0.extra: Extra inputs are not permitted",
        ),
        ({"columns": "id"}, "params.columns: Input should be a valid list"),
    ],
    ids=["extra-key", "bad-op", "extra-filter-key", "columns-not-list"],
)
def test_params_model_refuses(params: dict[str, Any], message: str) -> None:
    registry = Registry()
    ex = ScanExecutor()
    registry.register(ex)
    with pytest.raises(InvalidArgument) as info:
        registry.parse_params(ex, params)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("uris", "message"),
    [
        ([], "scan@v1 transform requires exactly one input, got 0"),
        (["/w#db.a", "/w#db.b"], "scan@v1 transform requires exactly one input, got 2"),
        (
            ["strata://artifact/abc@v=1"],
            "scan@v1 reads a table URI, not 'strata://artifact/abc@v=1'",
        ),
        (["strata://name/daily"], "scan@v1 reads a table URI, not 'strata://name/daily'"),
    ],
)
def test_check_inputs(uris: list[str], message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        ScanExecutor().check_inputs(uris)
    assert message in str(info.value)


def test_check_inputs_accepts_a_table() -> None:
    ScanExecutor().check_inputs(["file:///w#db.events"])


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("missing", "no such directory"),
        ("bare", "has no catalog.db"),
        ("wh#nope.t", "namespace 'nope' does not exist"),
        ("wh#db.nope", "table 'db.nope' does not exist"),
    ],
)
def test_missing_table_parts(scan: ScanFn, tmp_path: Path, where: str, message: str) -> None:
    (tmp_path / "bare").mkdir()
    cat = open_catalog(tmp_path / "wh")
    cat.create_namespace("db")
    cat.engine.dispose()
    path, _, ident = where.partition("#")
    with pytest.raises(NotFound, match=message):
        scan(table_ref(tmp_path / path, ident or "db.t"))


# --- time limit and cancellation ---------------------------------------------------


def test_time_limit_interrupts_the_query(
    scan: ScanFn, demo_table: TableRef, settings: Settings
) -> None:
    limited = settings.model_copy(update={"query_time_limit_s": 0.05, "batch_size": 100})
    reader = scan(demo_table, ctx=RunContext(settings=limited))
    reader.read_next_batch()
    for t in threading.enumerate():  # let the limit pass: the timer thread ends when it fires
        if t.name == TIMER_THREAD_NAME:
            t.join()
    with pytest.raises(Timeout, match=r"query exceeded the time limit of 0.05 s"):
        for _ in reader:
            pass


@pytest.mark.parametrize("read_first", [True, False], ids=["running", "not-yet-started"])
def test_cancel_interrupts_the_query(
    scan: ScanFn, demo_table: TableRef, settings: Settings, read_first: bool
) -> None:
    # The query may start only on the first read: an interrupt sent before that
    # would be dropped by DuckDB, so the cancel keeps interrupting until it lands.
    ctx = RunContext(settings=settings.model_copy(update={"batch_size": 100}))
    reader = scan(demo_table, ctx=ctx)
    if read_first:
        reader.read_next_batch()
    ctx.cancel()
    with pytest.raises(Unavailable, match="scan@v1 query was cancelled"):
        for _ in reader:
            pass


def test_closing_the_reader_stops_the_timer(scan: ScanFn, demo_table: TableRef) -> None:
    reader = scan(demo_table)
    reader.read_next_batch()
    reader.close()
    del reader
    import gc

    gc.collect()
    assert not [t for t in threading.enumerate() if t.name == TIMER_THREAD_NAME]


# --- delete files -------------------------------------------------------------------


@pytest.mark.parametrize("step", ["before", "deleted", "appended"])
@pytest.mark.parametrize(
    "filters",
    [
        [],
        [{"column": "id", "op": ">=", "value": 4}],
        [{"column": "category", "op": "=", "value": "beta"}],
    ],
)
def test_position_deletes_are_applied(
    scan: ScanFn, deletes_table: WithDeletes, warehouses: Warehouses, step: str, filters: list[Any]
) -> None:
    sid = deletes_table.snapshots[step]
    got = drain(scan(deletes_table.ref, {"snapshot_id": sid, "filters": filters}))
    want = truth(warehouses, deletes_table.ref, filters, snapshot_id=sid)
    assert rows(got) == rows(want)
    ids = set(got["id"].to_pylist())
    if step == "before" and not filters:
        assert ids >= set(deletes_table.deleted_ids)
    elif step != "before":
        assert not ids & set(deletes_table.deleted_ids)


def test_position_deletes_are_planned(
    scan: ScanFn, deletes_table: WithDeletes, warehouses: Warehouses
) -> None:
    resolved = warehouses.resolve(deletes_table.ref)
    assert sum(1 for t in warehouses.plan(resolved) if t.delete_files) == 2
    assert len(deletes_table.deleted_ids) == 6
    assert drain(scan(deletes_table.ref, {"columns": ["id"]})).num_rows == 1_100 - 6


def test_equality_deletes_are_refused(scan: ScanFn, equality_deletes_table: TableRef) -> None:
    with pytest.raises(InvalidArgument) as info:
        scan(equality_deletes_table)
    assert "has equality delete files, which Quiver cannot apply yet" in str(info.value)
    assert "refusing to read rows that may have been deleted" in str(info.value)


def test_nested_columns_are_refused_not_misread(scan: ScanFn, tmp_path: Path) -> None:
    cat = open_catalog(tmp_path)
    cat.create_namespace("db")
    table = cat.create_table(
        "db.n", schema=pa.schema([("id", pa.int64()), ("st", pa.struct([("a", pa.int64())]))])
    )
    table.append(pa.table({"id": [1, 2], "st": [{"a": 1}, None]}, schema=table.schema().as_arrow()))
    cat.engine.dispose()
    ref = table_ref(tmp_path, "db.n")
    assert drain(scan(ref, {"columns": ["id"]}))["id"].to_pylist() == [1, 2]
    with pytest.raises(InvalidArgument, match="cannot read column 'st' of type struct"):
        scan(ref)
    with pytest.raises(InvalidArgument, match=r"filter 0 \(st is_null\): scan@v1 cannot filter"):
        scan(ref, {"columns": ["id"], "filters": [{"column": "st", "op": "is_null"}]})
