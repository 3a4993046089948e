"""A notebook's output data for the table viewer (API.md §16): pages, views, summaries,
exports and display blobs — answered by the Flight server from the artifact's mapped file."""

from __future__ import annotations

import base64
import io
import json

import pyarrow as pa
import pyarrow.flight as fl
import pyarrow.parquet as pq
import pytest

from tests.fixtures_execution import Nb

SOURCE = """\
import pyarrow as pa
n = 1000
t = pa.table({
    "id": list(range(n)),
    "grp": [i % 3 for i in range(n)],
    "name": [None if i % 10 == 0 else f"Row-{i}" for i in range(n)],
    "score": [float(i % 7) / 2 for i in range(n)],
})
t
"""


@pytest.fixture
def table_nb(nb: Nb) -> tuple[Nb, str, str]:
    cid = nb.add(SOURCE)
    res = nb.run(cid)
    assert res["status"] == "ready", res
    shown = res["displays"][-1]
    assert shown["content_type"] == "arrow/ipc" and shown["rows"] == 1000
    # the display is the variable t itself: its artifact, not a second upload
    assert shown["artifact_uri"] == res["outputs"]["t"]["artifact_uri"]
    return nb, cid, shown["artifact_uri"]


def page(nb: Nb, cid: str, uri: str, status: int = 200, **params) -> dict:
    query = {"artifact_uri": uri, **params}
    if isinstance(query.get("filters"), list):
        query["filters"] = json.dumps(query["filters"])
    r = nb.client.get(f"{nb.base}/cells/{cid}/data", params=query)
    assert r.status_code == status, r.text
    return r.json()


def test_pages_of_the_stored_order(table_nb) -> None:
    nb, cid, uri = table_nb
    first = page(nb, cid, uri, limit=5)
    assert first["columns"] == ["id", "grp", "name", "score"]
    assert first["rows"][:2] == [[0, 0, None, 0.0], [1, 1, "Row-1", 0.5]]
    assert first["total"] == 1000 and first["pageable"] is True
    assert (first["offset"], first["limit"], first["sort_by"], first["sort_dir"]) == (
        0,
        5,
        None,
        "asc",
    )
    across = page(nb, cid, uri, offset=995, limit=10)  # past the end: what is there
    assert [r[0] for r in across["rows"]] == [995, 996, 997, 998, 999]
    assert page(nb, cid, uri, limit=100_000)["limit"] == 500
    assert len(page(nb, cid, uri, limit=0)["rows"]) == 1
    assert page(nb, cid, uri, offset=5000)["rows"] == []


def test_sort_is_global_and_ties_keep_the_stored_order(table_nb) -> None:
    nb, cid, uri = table_nb
    down = page(nb, cid, uri, sort_by="score", sort_dir="desc", limit=3)
    assert [r[3] for r in down["rows"]] == [3.0, 3.0, 3.0]
    assert [r[0] for r in down["rows"]] == [6, 13, 20]  # ties in stored order
    seen: list[int] = []
    for offset in range(0, 1000, 250):  # paging a sort with many ties: every row once
        rows = page(nb, cid, uri, sort_by="grp", offset=offset, limit=250)["rows"]
        seen += [r[0] for r in rows]
    assert sorted(seen) == list(range(1000)) and seen[:3] == [0, 3, 6]
    assert page(nb, cid, uri, sort_by="name", limit=1)["rows"][0][2] == "Row-1"  # text order
    for direction in ("asc", "desc"):  # nulls last either way
        tail = page(nb, cid, uri, sort_by="name", sort_dir=direction, offset=899, limit=101)
        assert tail["rows"][0][2] is not None and {r[2] for r in tail["rows"][1:]} == {None}
    assert page(nb, cid, uri, sort_by="nope", limit=2)["rows"][0][0] == 0  # unknown: ignored


def test_filters_search_and_their_total(table_nb) -> None:
    nb, cid, uri = table_nb
    f = [{"col": "grp", "op": "eq", "value": "2"}, {"col": "id", "op": "lt", "value": 30}]
    got = page(nb, cid, uri, filters=f)
    assert got["total"] == 10 and [r[0] for r in got["rows"]][:3] == [2, 5, 8]
    between = page(
        nb, cid, uri, filters=[{"col": "id", "op": "between", "value": 10, "value2": 12}]
    )
    assert [r[0] for r in between["rows"]] == [10, 11, 12]
    assert page(nb, cid, uri, filters=[{"col": "name", "op": "is_null"}])["total"] == 100
    assert page(nb, cid, uri, filters=[{"col": "name", "op": "not_null"}])["total"] == 900
    contains = page(nb, cid, uri, filters=[{"col": "name", "op": "contains", "value": "row-99"}])
    assert [r[0] for r in contains["rows"]] == [99, 991, 992, 993, 994, 995, 996, 997, 998, 999]
    skipped = [
        {"col": "nope", "op": "eq", "value": 1},
        {"col": "id", "op": "like", "value": 1},
        {"col": "id", "op": "eq", "value": "not a number"},
        "not even an object",
    ]
    assert page(nb, cid, uri, filters=skipped)["total"] == 1000
    search = page(nb, cid, uri, search="ROW-12", sort_by="id", sort_dir="desc")
    assert [r[0] for r in search["rows"]][:3] == [129, 128, 127] and search["total"] == 10
    assert page(nb, cid, uri, search="2.5")["total"] == 143  # numbers match as text


def test_bad_requests(table_nb) -> None:
    nb, cid, uri = table_nb
    bad = page(nb, cid, uri, 400, filters="{not json")
    assert bad["detail"] == "filters must be valid JSON"
    assert page(nb, cid, uri, 400, filters='{"a": 1}')["detail"] == "filters must be a JSON array"
    assert page(nb, cid, uri, 400, sort_dir="up")["detail"] == "sort_dir must be 'asc' or 'desc'"
    assert "Malformed artifact_uri" in page(nb, cid, "strata://name/x", 400)["detail"]
    assert page(nb, cid, "strata://artifact/nope@v=1", 404)["detail"]
    r = nb.client.get(f"{nb.base}/cells/zzz/data", params={"artifact_uri": uri})
    assert r.status_code == 404 and r.json()["detail"] == "Cell not found"
    r = nb.client.get(f"{nb.base}/cells/{cid}/data")
    assert r.status_code == 422


def test_summary(table_nb) -> None:
    nb, cid, uri = table_nb
    r = nb.client.get(f"{nb.base}/cells/{cid}/data/summary", params={"artifact_uri": uri})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 1000 and body["pageable"] is True
    cols = {c["name"]: c for c in body["columns"]}
    assert cols["id"] == {"name": "id", "dtype": "int64", "nulls": 0, "distinct": 1000,
                          "min": 0, "max": 999}  # fmt: skip
    assert cols["name"]["nulls"] == 100 and cols["name"]["distinct"] == 900
    assert cols["name"]["min"] is None and cols["score"]["max"] == 3.0


def test_export_streams_the_view(table_nb) -> None:
    nb, cid, uri = table_nb
    base = f"{nb.base}/cells/{cid}/data/export"
    view = {"artifact_uri": uri, "sort_by": "score", "sort_dir": "desc", "search": "row-1"}
    csv = nb.client.get(base, params={**view, "fmt": "csv"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert f'filename="{cid}.csv"' in csv.headers["content-disposition"]
    lines = csv.text.splitlines()
    assert lines[0] == '"id","grp","name","score"' and lines[1].startswith("13,")
    parquet = nb.client.get(base, params={**view, "fmt": "parquet"})
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.num_rows == len(lines) - 1 == 100  # Row-1, -11..19, -101..199 (not nulls)
    assert table.column("score").to_pylist() == sorted(
        table.column("score").to_pylist(), reverse=True
    )
    everything = nb.client.get(base, params={"artifact_uri": uri})
    assert len(everything.text.splitlines()) == 1001
    r = nb.client.get(base, params={"artifact_uri": uri, "fmt": "xlsx"})
    assert r.status_code == 400 and r.json()["detail"] == "fmt must be 'csv' or 'parquet'"


def test_a_view_ticket_is_plain_flight(table_nb) -> None:
    nb, _, uri = table_nb
    aid, version = uri.removeprefix("strata://artifact/").split("@v=")
    view = {
        "filters": [{"col": "grp", "op": "eq", "value": 1}],
        "sort_by": "id",
        "sort_dir": "desc",
    }
    ticket = json.dumps({"artifact_id": aid, "version": int(version), "view": view})
    client = fl.connect(nb.location)
    try:
        got = client.do_get(fl.Ticket(ticket.encode())).read_all()
        assert got.num_rows == 333 and got.column("id")[0].as_py() == 997
        bad = json.dumps({"artifact_id": aid, "version": int(version), "view": 3})
        with pytest.raises(fl.FlightError, match='"view" must be an object'):
            client.do_get(fl.Ticket(bad.encode())).read_all()
        action = fl.Action("table-page", json.dumps({"artifact_uri": uri, "limit": 2}).encode())
        answer = json.loads(next(iter(client.do_action(action))).body.to_pybytes())
        assert answer["rows"] == [[0, 0, None, 0.0], [1, 1, "Row-1", 0.5]]
    finally:
        client.close()


def test_display_blobs(nb: Nb) -> None:
    png = nb.add("from PIL import Image\nimg = Image.new('RGB', (3, 2), 'red')\nimg")
    md = nb.add("class M:\n    def _repr_markdown_(self):\n        return '# hi'\nM()")
    small = nb.add("import pyarrow as pa\npa.table({'a': [1, 2]})")
    for cid in (png, md, small):
        assert nb.run(cid)["status"] == "ready"
    r = nb.client.get(f"{nb.base}/cells/{png}/outputs/0/blob")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content.startswith(b"\x89PNG") and r.headers["x-strata-output-index"] == "0"
    inline = nb.cells()[png]["display_output"]["inline_data_url"]
    assert base64.b64decode(inline.split(",", 1)[1]) == r.content
    r = nb.client.get(f"{nb.base}/cells/{md}/outputs/-1/blob")
    assert r.text == "# hi" and r.headers["content-type"].startswith("text/markdown")
    r = nb.client.get(f"{nb.base}/cells/{small}/outputs/0/blob")
    assert pa.ipc.open_stream(r.content).read_all().column("a").to_pylist() == [1, 2]
    r = nb.client.get(f"{nb.base}/cells/{small}/outputs/3/blob")
    assert r.status_code == 404 and "no display output 3" in r.json()["detail"]
