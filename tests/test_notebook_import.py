"""Import (Strata 0.11's ``/import`` and ``/import-snapshot``): real .ipynb files made with
nbformat, real zips, over real REST; a refused import leaves nothing behind."""

from __future__ import annotations

import io
import json
import stat
import zipfile
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat import v4

from tests.fixtures_execution import Nb


def ipynb() -> bytes:
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Py"}
    nb.cells = [
        v4.new_markdown_cell("# Analysis\n\nSome *text*."),
        v4.new_code_cell(
            "%pip install polars 'pandas>=2' -q\n!ls -l\nfiles = !ls\n%matplotlib inline\n"
            "x = 21\nfor i in range(1):\n    !echo hi\nx * 2",
            outputs=[v4.new_output("execute_result", {"text/plain": "42"}, execution_count=1)],
        ),
        v4.new_code_cell("%%bash\necho not python"),
        v4.new_code_cell("   "),
        v4.new_raw_cell("raw text"),
    ]
    return nbformat.writes(nb).encode()


def post(nb: Nb, route: str, data: bytes, status: int, filename: str = "a.ipynb",
         **form: str) -> Any:  # fmt: skip
    r = nb.client.post(f"/v1/notebooks/{route}", files={"file": (filename, data)}, data=form)
    assert r.status_code == status, r.text
    return r.json()


def leftovers(root: Path) -> list[str]:
    return [p.name for p in root.rglob("*.import-*")]


def test_jupyter_import_converts_cells_and_reports(nb: Nb) -> None:
    body = post(nb, "import", ipynb(), 200, filename="My Study.ipynb")
    report = body["import_report"]
    assert report == {
        "markdown_cells": 1, "code_cells": 2, "suppressed_outputs": 1, "skipped_cells": 2,
        "translated_magics": 1, "dropped_magics": 2, "dropped_shells": 3,
        "captured_deps": ["polars", "pandas>=2"], "warnings": report["warnings"],
    }  # fmt: skip
    assert any("%%bash" in w for w in report["warnings"])
    assert body["name"] == "My_Study" and body["session_id"] and "dag" in body
    cells = body["cells"]
    assert [c["language"] for c in cells] == ["markdown", "python", "python"]
    code = cells[1]["source"]
    assert "# !ls -l  # quiver: shell command, not run" in code
    assert "    pass  # !echo hi" in code and "x = 21" in code
    assert cells[2]["source"].startswith("# quiver: %%bash cell magic")
    assert "x" in cells[1]["defines"]
    out = nb.client.post(f"/v1/notebooks/{body['session_id']}/cells/{cells[1]['id']}/execute")
    assert out.json()["status"] == "ready", out.text  # the converted code runs
    assert (Path(body["path"]) / "notebook.toml").is_file()


@pytest.mark.parametrize(
    ("data", "status", "expected"),
    [
        (b"{not json", 400, "malformed JSON at line 1 column 2"),
        (b'{"a": 1}', 400, "not a Jupyter notebook: the JSON has no 'cells' list"),
        (b'{"cells": [], "nbformat": "4"}', 400, "no integer 'nbformat'"),
        (b'{"cells": 3, "nbformat": 4, "nbformat_minor": 5, "metadata": {}}', 400,
         "not a valid Jupyter notebook"),
        (b"\xff\xfe", 400, "not UTF-8"),
    ],
)  # fmt: skip
def test_bad_ipynb_is_refused_and_leaves_nothing(
    nb: Nb, data: bytes, status: int, expected: str
) -> None:
    before = sorted(p.name for p in nb.manager.root.iterdir())
    assert expected in post(nb, "import", data, status, name="bad")["detail"]
    assert sorted(p.name for p in nb.manager.root.iterdir()) == before


def test_ipynb_over_50_mb_is_413(nb: Nb) -> None:
    big = b'{"cells": [], "x": "' + b"a" * (50 * 1024**2) + b'"}'
    assert "larger than 50 MB" in post(nb, "import", big, 413)["detail"]


def test_import_refuses_an_existing_notebook_and_paths_outside(nb: Nb) -> None:
    post(nb, "import", ipynb(), 200, name="twice")
    assert "already exists" in post(nb, "import", ipynb(), 409, name="twice")["detail"]
    assert "path traversal" in post(nb, "import", ipynb(), 400, parent_path="../x")["detail"]
    assert not leftovers(nb.manager.root)


def snapshot_of(nb: Nb) -> bytes:
    table = nb.add("import pyarrow as pa\nt = pa.table({'x': [1, 2, 3]})\nt")
    shown = nb.add("print('hi')\ntotal = t.num_rows")
    for cid in (table, shown):
        assert nb.run(cid)["status"] == "ready"
    r = nb.client.get(f"{nb.base}/export", params={"fmt": "snapshot"})
    assert r.status_code == 200
    return r.content


def test_snapshot_round_trip_restores_ready_cells_with_their_artifacts(nb: Nb) -> None:
    data = snapshot_of(nb)
    body = post(nb, "import-snapshot", data, 200, filename="s.zip", name="restored")
    assert body["name"] == "restored" and len(body["import_report"]["cells_restored"]) == 2
    assert [c["status"] for c in body["cells"]] == ["ready", "ready"]
    assert "hi" in body["cells"][1]["console_stdout"]
    sid, table = body["session_id"], body["cells"][0]["id"]
    out = nb.client.post(f"/v1/notebooks/{sid}/cells/{table}/execute").json()
    assert out["cache_hit"] is True  # the restored result, its artifact on this server
    page = nb.client.get(
        f"/v1/notebooks/{sid}/cells/{table}/data", params={"artifact_uri": out["artifact_uri"]}
    )
    assert page.json()["rows"] == [[1], [2], [3]]
    plain = nb.client.get(f"{nb.base}/export", params={"fmt": "zip"}).content
    again = post(nb, "import-snapshot", plain, 200, filename="p.zip", name="from zip")
    assert [c["status"] for c in again["cells"]] == ["idle", "idle"]


def _zip(entries: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            if name in links:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, data)
    return buf.getvalue()


TOML = b'notebook_id = "x"\nname = "evil"\ncells = []\n'


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (_zip({"notebook.toml": TOML, "../escape.py": b"x"}), "'..' would leave the notebook"),
        (_zip({"notebook.toml": TOML, "/etc/x": b"x"}), "absolute paths are refused"),
        (_zip({"notebook.toml": TOML, "cells/l.py": b"/etc/passwd"}, ("cells/l.py",)),
         "symlinks are refused"),
        (_zip({"cells/a.py": b"x"}), "no notebook.toml"),
        (b"PK\x03\x04 broken", "not a zip archive"),
        (_zip({"notebook.toml": b"= = ="}), "not valid TOML"),
    ],
)  # fmt: skip
def test_unsafe_or_broken_archives_are_refused(nb: Nb, data: bytes, expected: str) -> None:
    assert expected in post(nb, "import-snapshot", data, 400, filename="s.zip")["detail"]
    assert not (nb.manager.root / "evil").exists() and not leftovers(nb.manager.root)


def test_a_tampered_artifact_fails_the_whole_import(nb: Nb) -> None:
    data = snapshot_of(nb)
    src = zipfile.ZipFile(io.BytesIO(data))
    index = json.loads(src.read("artifacts/index.json"))
    victim = next(a["path"] for a in index["artifacts"] if a["included"])
    entries = {n: src.read(n) for n in src.namelist()}
    entries[victim] = entries[victim][:-8] + b"\0" * 8
    detail = post(nb, "import-snapshot", _zip(entries), 400, name="tampered")["detail"]
    assert "does not match its sha256" in detail
    assert not (nb.manager.root / "tampered").exists() and not leftovers(nb.manager.root)
    post(nb, "import-snapshot", data, 200, name="once")
    assert "already exists" in post(nb, "import-snapshot", data, 409, name="once")["detail"]
