"""Mounts (API.md §8, §2.6): specs checked, cells see them, ``ro`` holds, fingerprints stale.

Real engines: a real local directory for ``file://`` and a real S3-compatible
server (moto's server mode on an ephemeral loopback port) for ``s3://``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_execution import Nb


def put_mounts(nb: Nb, *mounts: dict[str, Any], status: int = 200) -> dict[str, Any]:
    r = nb.client.put(f"{nb.base}/mounts", json={"mounts": list(mounts)})
    assert r.status_code == status, r.text
    return r.json()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"name": "d", "uri": "ftp://host/x"}, "unknown scheme 'ftp'"),
        ({"name": "d", "uri": "/no/scheme"}, "unknown scheme '(none)'"),
        ({"name": "d", "uri": "file:///data/../etc"}, "path traversal"),
        ({"name": "d", "uri": "file://host/x"}, "no host"),
        ({"name": "d", "uri": "file:///a\x00b"}, "NUL"),
        ({"name": "d", "uri": " file:///x"}, "unknown scheme"),
        ({"name": "d", "uri": "s3:///key"}, "needs a bucket"),
        ({"name": "d", "uri": "s3://b", "options": {"Api_Token": "x"}}, "looks like a credential"),
        ({"name": "1bad", "uri": "file:///x"}, "name"),
        ({"name": "d", "uri": "file:///x", "mode": "rx"}, "mode"),
        ({"name": "d", "uri": "s3://b", "options": {"secret": "x"}}, "looks like a credential"),
        ({"name": "d", "uri": "s3://b", "options": {"key_env": "1 no"}}, "environment variable"),
    ],
)
def test_bad_mount_specs_are_refused_with_a_precise_422(
    nb: Nb, spec: dict[str, Any], expected: str
) -> None:
    r = nb.client.put(f"{nb.base}/mounts", json={"mounts": [spec]})
    assert r.status_code == 422, r.text
    assert expected in str(r.json()["detail"])
    assert not nb.client.get(f"{nb.base}/cells").json()["cells"]  # nothing else moved
    toml = (Path(nb.manager.get(nb.sid).path) / "notebook.toml").read_text()
    assert "mounts" not in toml


def test_a_name_given_twice_keeps_its_last_spec(nb: Nb) -> None:
    first, last = {"name": "d", "uri": "file:///tmp"}, {"name": "d", "uri": "file:///srv"}
    assert put_mounts(nb, first, last)["mounts"] == [
        {"name": "d", "uri": "file:///srv", "mode": "ro"}
    ]


def test_a_cell_narrows_the_notebook_mounts_and_its_json_shows_what_it_sees(
    nb: Nb, tmp_path: Path
) -> None:
    wide, narrow, extra = (tmp_path / n for n in ("ext_wide", "ext_narrow", "ext_extra"))
    for folder in (wide, narrow, extra):
        folder.mkdir()
        (folder / "which.txt").write_text(folder.name)
    put_mounts(nb, {"name": "src", "uri": wide.as_uri()}, {"name": "aux", "uri": extra.as_uri()})
    other = nb.add("seen_by_other = (src / 'which.txt').read_text()\nseen_by_other")
    cid = nb.add("seen = (src / 'which.txt').read_text()\nseen")
    own = [{"name": "src", "uri": narrow.as_uri(), "pin": "p1"}]
    r = nb.client.put(f"{nb.base}/cells/{cid}/mounts", json={"mounts": own})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mounts"] == [{"name": "src", "uri": narrow.as_uri(), "mode": "ro", "pin": "p1"}]
    cell = body["cell"]
    assert cell["id"] == cid and cell["mount_overrides"] == body["mounts"]
    assert cell["mounts"] == [  # the notebook's, the cell's own in place of the same name
        {"name": "src", "uri": narrow.as_uri(), "mode": "ro", "pin": "p1"},
        {"name": "aux", "uri": extra.as_uri(), "mode": "ro"},
    ]
    cells = {c["id"]: c for c in body["cells"]}
    assert cells[other]["mount_overrides"] == [] and [m["uri"] for m in cells[other]["mounts"]] == [
        wide.as_uri(),
        extra.as_uri(),
    ]
    assert nb.cells()[cid]["mounts"] == cell["mounts"]  # GET /cells agrees
    toml = (Path(nb.manager.get(nb.sid).path) / "notebook.toml").read_text()
    assert narrow.as_uri() in toml
    assert "ext_narrow" in str(nb.run(cid)["displays"])
    assert "ext_wide" in str(nb.run(other)["displays"])

    # the notebook's mounts change under the cell: its JSON follows, its own stay
    put_mounts(nb, {"name": "src", "uri": wide.as_uri()})
    cell = nb.cells()[cid]
    assert [m["uri"] for m in cell["mounts"]] == [narrow.as_uri()]
    assert nb.cells()[other]["mounts"] == [{"name": "src", "uri": wide.as_uri(), "mode": "ro"}]
    # the cell's pin moved: a new fingerprint, the cell is stale
    own[0]["pin"] = "p2"
    assert nb.client.put(f"{nb.base}/cells/{cid}/mounts", json={"mounts": own}).status_code == 200
    assert nb.cells()[cid]["status"] == "stale"
    cleared = nb.client.put(f"{nb.base}/cells/{cid}/mounts", json={"mounts": []}).json()
    assert cleared["cell"]["mount_overrides"] == [] and cleared["cell"]["mounts"] == [
        {"name": "src", "uri": wide.as_uri(), "mode": "ro"}
    ]
    assert "ext_wide" in str(nb.run(cid)["displays"])

    bad = nb.client.put(
        f"{nb.base}/cells/{cid}/mounts", json={"mounts": [{"name": "x", "uri": "ftp://h/x"}]}
    )
    assert bad.status_code == 422 and "unknown scheme 'ftp'" in str(bad.json()["detail"])
    gone = nb.client.put(f"{nb.base}/cells/nope/mounts", json={"mounts": []})
    assert (gone.status_code, gone.json()["detail"]) == (404, "Cell not found")


def test_file_mount_is_a_read_only_path_and_its_changes_make_cells_stale(
    nb: Nb, tmp_path: Path
) -> None:
    data = tmp_path / "ext_data"
    data.mkdir()
    (data / "a.txt").write_text("hello")
    body = put_mounts(nb, {"name": "src", "uri": data.as_uri(), "options": {}})
    assert body["mounts"] == [{"name": "src", "uri": data.as_uri(), "mode": "ro"}]
    toml = (Path(nb.manager.get(nb.sid).path) / "notebook.toml").read_text()
    assert "[[mounts]]" in toml and "options" not in toml

    cid = nb.add(
        "import pathlib\ntext = (src / 'a.txt').read_text()\n"
        "kind = isinstance(src, pathlib.Path)\n(text, kind)"
    )
    out = nb.run(cid)
    assert out["status"] == "ready", out
    assert "hello" in str(out["displays"]) and "True" in str(out["displays"])
    assert nb.cells()[cid]["status"] == "ready"

    writer = nb.add("(src / 'b.txt').write_text('no')")
    failed = nb.run(writer)
    assert failed["status"] == "error"
    assert "PermissionError" in failed["error"] and "read-only" in failed["error"]
    assert not (data / "b.txt").exists()

    (data / "a.txt").write_text("changed")
    r = nb.client.post("/v1/notebooks/open", json={"path": nb.manager.get(nb.sid).path})
    assert r.status_code == 200, r.text
    cell = nb.cells()[cid]
    assert cell["status"] == "stale"
    assert {"type": "mount_changed", "mount": "src"} in cell["causality"]["details"]
    again = nb.run(cid)
    assert "changed" in str(again["displays"]) and again["cache_hit"] is False


def test_pin_replaces_the_listing_and_rw_cells_are_never_cached(nb: Nb, tmp_path: Path) -> None:
    data = tmp_path / "ext_out"
    data.mkdir()
    put_mounts(
        nb,
        {"name": "pinned", "uri": data.as_uri(), "pin": "v1"},
        {"name": "sink", "uri": (tmp_path / "ext_sink").as_uri(), "mode": "rw"},
    )
    (tmp_path / "ext_sink").mkdir()
    reader = nb.add("n = len(list(pinned.iterdir()))\nn")
    assert nb.run(reader)["status"] == "ready"
    (data / "new.txt").write_text("x")  # pinned: the listing is not looked at
    nb.client.post("/v1/notebooks/open", json={"path": nb.manager.get(nb.sid).path})
    assert nb.cells()[reader]["status"] == "ready"

    writer = nb.add("(sink / 'w.txt').write_text('ok')\nw = 1")
    first = nb.run(writer)
    assert first["status"] == "ready", first
    assert (tmp_path / "ext_sink" / "w.txt").read_text() == "ok"
    assert nb.cells()[writer]["status"] == "idle"
    assert nb.run(writer)["cache_hit"] is False


def test_s3_mount_reads_through_fsspec_and_refuses_writes(nb: Nb, s3: str) -> None:
    import boto3

    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
             "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    client = boto3.client("s3", endpoint_url=s3, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    client.create_bucket(Bucket="lake")
    client.put_object(Bucket="lake", Key="raw/a.csv", Body=b"x,y\n1,2\n")
    client.put_object(Bucket="lake", Key="raw/b.csv", Body=b"x,y\n3,4\n")
    r = nb.client.put(f"{nb.base}/env", json={"env": creds})
    assert r.status_code == 200, r.text
    put_mounts(nb, {"name": "lake", "uri": "s3://lake/raw", "options": {"endpoint_url": s3}})

    cid = nb.add(
        "names = sorted(p.name for p in lake.glob('*.csv'))\n"
        "first = (lake / 'a.csv').read_text()\n"
        "listed = [p.name for p in lake.iterdir()]\n"
        "(names, first, listed, lake.fs.protocol)"
    )
    out = nb.run(cid)
    assert out["status"] == "ready", out
    shown = str(out["displays"])
    assert "a.csv" in shown and "b.csv" in shown and "1,2" in shown
    assert nb.cells()[cid]["status"] == "ready"

    writer = nb.add("(lake / 'c.csv').write_text('no')")
    failed = nb.run(writer)
    assert "PermissionError" in failed["error"] and "read-only" in failed["error"]

    client.put_object(Bucket="lake", Key="raw/c.csv", Body=b"x,y\n5,6\n")
    nb.client.post("/v1/notebooks/open", json={"path": nb.manager.get(nb.sid).path})
    cell = nb.cells()[cid]
    assert cell["status"] == "stale"
    assert {"type": "mount_changed", "mount": "lake"} in cell["causality"]["details"]
    assert "AWS_SECRET_ACCESS_KEY" not in os.environ or os.environ["AWS_SECRET_ACCESS_KEY"]
