"""Export (API.md §9): zip, snapshot, Markdown and HTML of a notebook that ran, over real REST."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from typing import Any

import pyarrow.ipc as ipc
import pytest

from tests.fixtures_execution import Nb


@pytest.fixture
def ran(nb: Nb) -> Nb:
    """A notebook with a table, a print, an image, an error and some hostile text."""
    nb.add("# Title <script>alert(1)</script>\n\nSome *words*.", language="markdown")
    nb.add("import pyarrow as pa\nt = pa.table({'x': list(range(120)), 's': ['<b>'] * 120})\nt")
    nb.add("print('hello <i>out</i>')\nn = 3")
    nb.add("from PIL import Image\nImage.new('RGB', (2, 2), 'red')")
    nb.add("raise ValueError('bad <thing>')")
    for cid in nb.ids:
        nb.run(cid)
    return nb


def get(nb: Nb, status: int = 200, **params: Any) -> Any:
    r = nb.client.get(f"{nb.base}/export", params=params)
    assert r.status_code == status, r.text
    return r


def test_zip_holds_the_sources_and_provenance(ran: Nb) -> None:
    r = get(ran, fmt="zip")
    assert r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"] == 'attachment; filename="run.zip"'
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    names = set(zf.namelist())
    assert {"notebook.toml", "pyproject.toml", "provenance.json"} <= names
    cells = {n for n in names if n.startswith("cells/")}
    assert len(cells) == 5 and any(n.endswith(".md") for n in cells)
    prov = json.loads(zf.read("provenance.json"))
    nbid = ran.client.get(f"{ran.base}/cells").json()["notebook_id"]
    assert prov["notebook_id"] == nbid
    assert set(prov["dag"]) >= {"edges", "topological_order", "roots", "leaves"}
    table_cell = prov["cells"][ran.ids[1]]
    assert table_cell["status"] == "ready" and "t" in table_cell["defines"]
    assert table_cell["artifact_uri"].startswith("strata://artifact/")
    assert prov["cells"][ran.ids[4]]["status"] == "error"
    assert all(not n.startswith(".quiver") for n in names)


def test_snapshot_carries_outputs_and_artifact_bytes_by_digest(ran: Nb) -> None:
    r = get(ran, fmt="snapshot")
    assert r.headers["content-disposition"] == 'attachment; filename="run.snapshot.zip"'
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    index = json.loads(zf.read("artifacts/index.json"))
    assert index["format"] == "quiver-snapshot/1"
    [entry] = [a for a in index["artifacts"] if a["variable"] == "t"]
    data = zf.read(entry["path"])
    assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["bytes"]
    assert ipc.open_stream(data).read_all().num_rows == 120
    out = json.loads(zf.read(f"outputs/{ran.ids[2]}.json"))
    assert "hello <i>out</i>" in out["result"]["stdout"]
    assert out["run"]["last_provenance_hash"] == out["result"]["provenance_hash"]

    none = zipfile.ZipFile(io.BytesIO(get(ran, fmt="snapshot", include="none").content))
    assert not [n for n in none.namelist() if n.endswith(".arrow")]
    assert json.loads(none.read("artifacts/index.json"))["artifacts"][0]["included"] is False
    picked = get(ran, fmt="snapshot", include="selected", cells=ran.ids[1]).content
    assert [n for n in zipfile.ZipFile(io.BytesIO(picked)).namelist() if n.endswith(".arrow")]


def test_snapshot_without_flight_is_refused_before_the_stream(nb: Nb, flight_server: Any) -> None:
    """A 503 with a detail, not an archive cut short after a 200's headers went out."""
    cid = nb.add("import pyarrow as pa\nt = pa.table({'x': [1, 2, 3]})\nt")
    assert nb.run(cid)["status"] == "ready"
    flight_server.close()
    r = get(nb, 503, fmt="snapshot")
    assert r.headers["content-type"] == "application/json"
    assert "unavailable" in r.json()["detail"].lower()
    get(nb, 503, fmt="snapshot", include="selected", cells=cid)
    # nothing of Flight needed: still exported
    none = zipfile.ZipFile(io.BytesIO(get(nb, fmt="snapshot", include="none").content))
    assert json.loads(none.read("artifacts/index.json"))["artifacts"][0]["included"] is False
    assert "provenance.json" in zipfile.ZipFile(io.BytesIO(get(nb, fmt="zip").content)).namelist()


def test_snapshot_of_a_vanished_artifact_is_404_before_the_stream(nb: Nb) -> None:
    cid = nb.add("import pyarrow as pa\nt = pa.table({'x': [1, 2, 3]})\nt")
    uri = nb.run(cid)["artifact_uri"]
    nb.executions.client.delete(uri)
    r = get(nb, 404, fmt="snapshot")
    assert r.headers["content-type"] == "application/json" and r.json()["detail"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"fmt": "pdf"}, "fmt must be one of 'zip', 'snapshot', 'markdown', 'html'"),
        (
            {"fmt": "snapshot", "include": "some"},
            "include must be one of 'all', 'selected', 'none'",
        ),
        ({"fmt": "snapshot", "include": "selected"}, "include=selected needs cells="),
        (
            {"fmt": "snapshot", "include": "selected", "cells": "nope"},
            "cells not in this notebook: nope",
        ),
    ],
)
def test_bad_export_requests_are_400_naming_the_allowed_values(
    nb: Nb, params: dict[str, str], expected: str
) -> None:
    assert get(nb, 400, **params).json()["detail"].startswith(expected)


def test_markdown_has_cells_outputs_tables_images_and_errors(ran: Nb) -> None:
    r = get(ran, fmt="markdown")
    assert r.headers["content-type"].startswith("text/markdown")
    assert r.headers["content-disposition"] == 'attachment; filename="run.md"'
    text = r.text
    assert "Some *words*." in text and "```python\nprint('hello <i>out</i>')" in text
    assert "| 0 | &lt;b&gt; |" in text  # table values never become HTML
    assert "| x | s |" in text and "*100 more rows*" in text
    assert "![output](data:image/png;base64," in text
    assert "ValueError: bad <thing>" in text
    app = get(ran, fmt="markdown", app_view="true")
    assert "print(" not in app.text and "hello <i>out</i>" in app.text
    assert app.headers["content-disposition"] == 'attachment; filename="run-app.md"'


def test_html_is_self_contained_and_escapes_what_it_did_not_generate(ran: Nb) -> None:
    r = get(ran, fmt="html")
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    page = r.text
    assert "<script" not in page.replace("&lt;script", "")
    assert "&lt;b&gt;" in page and "<b>" not in page
    assert "hello &lt;i&gt;out&lt;/i&gt;" in page
    assert "bad &lt;thing&gt;" in page
    assert '<img alt="output" src="data:image/png;base64,' in page
    assert "http://" not in page and "https://" not in page  # nothing fetched
    assert "<em>words</em>" in page and "100 more rows" in page
    assert "<span" in page  # highlighted source
    app = get(ran, fmt="html", app_view="true").text
    assert "print" not in app.replace("hello", "")
