"""Flight SQL through the real ADBC Flight SQL driver (DBAPI) against a real server.

Every query is a ``sql@v1`` artifact over a pyiceberg warehouse made in tmp_path:
the same query twice is a cache hit; errors are clean and say what went wrong.
"""

from __future__ import annotations

import json
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as fl
import pytest

from catalog import TableRef, write_demo_warehouse

ROWS = 4000


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> TableRef:
    return write_demo_warehouse(tmp_path_factory.mktemp("wh"), rows=ROWS, files=2)


def test_query_over_a_warehouse_table(conn) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) AS n, min(id) AS lo, max(id) AS hi FROM wh.db.events")
        assert cur.fetchall() == [(ROWS, 0, ROWS - 1)]
        cur.execute("SELECT events.id FROM wh.db.events WHERE id < 3 ORDER BY id")
        assert cur.fetch_arrow_table().column("id").to_pylist() == [0, 1, 2]


def test_a_second_identical_query_is_a_cache_hit(sql_server, conn) -> None:
    query = "SELECT id % 7 AS k, count(*) AS n FROM wh.db.events GROUP BY k ORDER BY k"
    descriptor = fl.FlightDescriptor.for_command(_statement(query))
    with fl.connect(sql_server.location) as plain:
        first = plain.get_flight_info(descriptor)
        assert plain.do_get(first.endpoints[0].ticket).read_all().num_rows == 7
        second = plain.get_flight_info(descriptor)
    meta = [json.loads(i.app_metadata) for i in (first, second)]
    assert meta[0]["artifact_uri"] == meta[1]["artifact_uri"]
    assert meta[1]["hit"] is True
    assert second.total_records == 7
    with conn.cursor() as cur:  # and ADBC reads the same artifact
        cur.execute(query)
        assert cur.fetch_arrow_table().num_rows == 7


def test_parameters_are_bound_not_pasted(conn) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM wh.db.events WHERE id < ?", parameters=(10,))
        assert cur.fetchone() == (10,)
        cur.execute("SELECT ? AS s", parameters=("x' OR 1=1 --",))
        assert cur.fetchone() == ("x' OR 1=1 --",)
        cur.execute("SELECT count(*) FROM wh.db.events WHERE id < ?", parameters=(20,))
        assert cur.fetchone() == (20,)


def test_a_named_artifact_is_a_table(sql_server, conn) -> None:
    from flight import connect

    client = connect(sql_server.location)
    try:
        client.put(pa.table({"x": [1, 2, 3]}), name="team/small")
    finally:
        client.close()
    with conn.cursor() as cur:
        cur.execute('SELECT sum(x) FROM quiver.names."team/small"')
        assert cur.fetchone() == (6,)


def test_objects_and_table_schema(conn) -> None:
    objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
    catalogs = {c["catalog_name"]: c for c in objects}
    assert set(catalogs) == {"wh", "quiver"}
    tables = catalogs["wh"]["catalog_db_schemas"][0]["db_schema_tables"]
    assert [t["table_name"] for t in tables] == ["events"]
    schema = conn.adbc_get_table_schema("events", catalog_filter="wh", db_schema_filter="db")
    assert "id" in schema.names
    assert conn.adbc_get_table_types() == ["TABLE", "VIEW"]
    info = conn.adbc_get_info()
    assert info["vendor_name"] == "Quiver"


def test_table_filters_take_like_patterns(conn) -> None:
    objects = conn.adbc_get_objects(depth="tables", table_name_filter="ev_nt%").read_all()
    names = [
        t["table_name"]
        for c in objects.to_pylist()
        for s in c["catalog_db_schemas"] or []
        for t in s["db_schema_tables"] or []
    ]
    assert names == ["events"]
    objects = conn.adbc_get_objects(depth="tables", table_name_filter="x%").read_all()
    assert all(
        not s["db_schema_tables"]
        for c in objects.to_pylist()
        for s in c["catalog_db_schemas"] or []
    )


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("SELECT * FORM wh.db.events", ["syntax error at or near", "at character 15"]),
        ("SELECT * FROM wh.db.nope", ["'db.nope' does not exist"]),
        ("SELECT * FROM elsewhere.db.t", ["unknown catalog 'elsewhere'"]),
        ("SELECT * FROM nope", ["nope"]),
        ("INSERT INTO wh.db.events VALUES (1)", ["read-only"]),
        ("DROP TABLE wh.db.events", ["read-only"]),
        ("SELECT * FROM read_csv('/etc/passwd')", ["disabled"]),
        ("COPY (SELECT 1) TO '/tmp/x.csv'", ["read-only"]),
        ("ATTACH '/tmp/x.db'", ["read-only"]),
    ],
)
def test_errors_are_clear(conn, query: str, words: list[str]) -> None:
    with conn.cursor() as cur, pytest.raises(flightsql.Error) as caught:
        cur.execute(query)
        cur.fetchall()
    message = str(caught.value)
    assert "Traceback" not in message
    for word in words:
        assert word in message, message


def test_auth_on_needs_the_token(make_server, warehouse: TableRef) -> None:
    server = make_server(token="s3cret", warehouses={"wh": str(warehouse.warehouse)})
    with (
        pytest.raises(flightsql.Error, match=r"(?i)unauthenticated|bearer"),
        flightsql.connect(server.location, autocommit=True) as refused,
        refused.cursor() as cur,
    ):
        cur.execute("SELECT 1")
    header = {"adbc.flight.sql.authorization_header": "Bearer s3cret"}
    with (
        flightsql.connect(server.location, db_kwargs=header, autocommit=True) as ok,
        ok.cursor() as cur,
    ):
        cur.execute("SELECT count(*) FROM wh.db.events")
        assert cur.fetchone() == (ROWS,)


def test_auth_by_username_and_password(make_server, warehouse: TableRef) -> None:
    """ADBC's username/password: a Basic handshake answered with the bearer token."""
    server = make_server(token="s3cret", warehouses={"wh": str(warehouse.warehouse)})
    login = {"username": "anyone", "password": "s3cret"}
    with (
        flightsql.connect(server.location, db_kwargs=login, autocommit=True) as c,
        c.cursor() as cur,
    ):
        cur.execute("SELECT count(*) FROM wh.db.events WHERE id < ?", parameters=(5,))
        assert cur.fetchone() == (5,)
    wrong = {"username": "anyone", "password": "guess"}
    with pytest.raises(flightsql.Error, match="bearer token"):
        flightsql.connect(server.location, db_kwargs=wrong, autocommit=True).close()


def test_auth_off_needs_nothing(sql_server) -> None:
    login = {"username": "anyone", "password": "whatever"}
    with (
        flightsql.connect(sql_server.location, db_kwargs=login, autocommit=True) as c,
        c.cursor() as cur,
    ):
        cur.execute("SELECT 42")
        assert cur.fetchone() == (42,)


def _statement(query: str) -> bytes:
    from flight.sql.flightsql_pb2 import CommandStatementQuery
    from flight.sql.proto import pack

    return pack(CommandStatementQuery(query=query))


def test_warehouse_path_forms(tmp_path: Path, make_server) -> None:
    ref = write_demo_warehouse(tmp_path / "w2", rows=10, files=1)
    server = make_server(warehouses=f"lake={ref.warehouse}")
    with flightsql.connect(server.location, autocommit=True) as c, c.cursor() as cur:
        cur.execute("SELECT count(*) FROM lake.db.events")
        assert cur.fetchone() == (10,)


def test_a_starting_server_loads_the_warehouse_tables_ahead(sql_server, warehouse) -> None:
    # the table's metadata is in memory before any query: a lookup that never loads finds it
    resolved = sql_server.core.warehouses.resolve_cached(warehouse)
    assert resolved is not None and resolved.snapshot_id is not None


def test_a_warehouse_missing_at_start_is_reported_by_its_query(tmp_path: Path, make_server) -> None:
    server = make_server(warehouses={"gone": f"file://{tmp_path / 'not-yet'}"})  # starts anyway
    with (
        flightsql.connect(server.location, autocommit=True) as c,
        c.cursor() as cur,
        pytest.raises(flightsql.Error, match="does not exist"),
    ):
        cur.execute("SELECT count(*) FROM gone.db.events")
