"""On-disk model: TOML round trip, Strata compatibility, atomic writes, path confinement."""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from pathlib import Path

import pytest
import tomlkit

from foundation import Conflict, InvalidArgument, NotFound
from notebooks.model import paths
from notebooks.model.paths import atomic_write, confine
from tests.fixtures_notebooks import STRATA_CELLS, STRATA_TOML, write_strata_notebook

UNTOUCHED = [
    "# A notebook written by Strata 0.5 (plus hand edits).",
    'custom_top = "keep me"   # an unknown key with a comment',
    "    # the loading step",
    'language = "sql", order = 0, future = { x = 1 } }',
    '[env]\nREGION = "eu"',
    '[[mounts]]\nname = "raw"\nuri = "file:///data"\nmode = "ro"',
    '[ai]\nmodel = "some-model"  # chosen by hand',
    '[connections.warehouse]\ndriver = "duckdb"',
    "[future_block]\nkeep = [1, 2, 3]",
]


def test_strata_notebook_opens_as_is(manager, nb_root):
    path = write_strata_notebook(nb_root)
    session = manager.open(str(path))
    cells = session.derived.cells
    assert [c.id for c in cells] == ["intro", "load", "q", "train"]
    assert [c.entry.language for c in cells] == ["markdown", "python", "sql", "python"]
    assert [c.source for c in cells] == list(STRATA_CELLS.values())
    assert cells[1].entry.worker == "local"
    edges = {(e.from_cell_id, e.to_cell_id, e.variable) for e in session.derived.dag.edges}
    assert edges == {("load", "q", "events"), ("q", "train", "big")}
    assert session.nb.notebook_id == "0b7c5f0e-2f7e-4d8e-9a51-0d7b1c3f1a2e"
    assert (path / "notebook.toml").read_text() == STRATA_TOML  # opening writes nothing
    assert (path / ".quiver" / ".gitignore").read_text().strip().endswith("*")
    assert (path / ".strata" / "runtime.json").exists()  # Strata's state is left alone


def test_round_trip_keeps_unknown_keys_and_comments(manager, nb_root):
    path = write_strata_notebook(nb_root)
    session = manager.open(str(path))
    new = session.add_cell("python", after_cell_id="load").id
    session.update_source(new, "extra = events")
    session.delete_cell("train")
    session.reorder(["q", "intro"])
    session.rename("Renamed Demo")
    text = (path / "notebook.toml").read_text()
    for fragment in UNTOUCHED:
        assert fragment in text, fragment
    data = tomllib.loads(text)
    assert data["name"] == "Renamed Demo"
    assert data["custom_top"] == "keep me"
    by_id = {c["id"]: c for c in data["cells"]}
    assert set(by_id) == {"intro", "load", "q", new}
    assert by_id["load"]["worker"] == "local"
    assert by_id["q"]["future"] == {"x": 1}
    assert [c for c in sorted(by_id, key=lambda k: by_id[k]["order"])] == [
        "q",
        "intro",
        "load",
        new,
    ]
    assert by_id[new]["file"] == f"{new}.py"
    assert isinstance(data["updated_at"], dt.datetime)
    assert data["updated_at"] > dt.datetime(2025, 6, 2, 11, 30, tzinfo=dt.UTC)
    assert not (path / "cells" / "train.py").exists()
    assert (path / "cells" / f"{new}.py").read_text() == "extra = events"


def test_array_of_tables_cells_also_round_trip(manager, nb_root):
    path = nb_root / "aot"
    (path / "cells").mkdir(parents=True)
    (path / "notebook.toml").write_text(
        'name = "aot"\n\n[[cells]]\nid = "a"\nfile = "a.py"\nlanguage = "python"\norder = 0\n'
        'note = "mine"\n'
    )
    (path / "cells" / "a.py").write_text("x = 1")
    session = manager.open(str(path))
    session.add_cell("python")
    data = tomllib.loads((path / "notebook.toml").read_text())
    assert next(c["id"] for c in data["cells"]) == "a"
    assert data["cells"][0]["note"] == "mine"
    assert len(data["cells"]) == 2
    assert session.nb.notebook_id  # minted once for a hand-written toml without one
    assert (
        tomllib.loads((path / "notebook.toml").read_text())["notebook_id"] == session.nb.notebook_id
    )


def test_created_notebook_has_strata_layout(manager, nb_root):
    session = manager.create(".", "My Analysis", "3.12", True)
    path = nb_root / "my_analysis"
    assert Path(session.path) == path
    data = tomllib.loads((path / "notebook.toml").read_text())
    assert set(data) >= {"notebook_id", "name", "created_at", "updated_at", "cells"}
    assert data["name"] == "My Analysis"
    assert isinstance(data["created_at"], dt.datetime)
    (cell,) = data["cells"]
    assert set(cell) == {"id", "file", "language", "order"}
    assert len(cell["id"]) == 8 and cell["file"] == f"{cell['id']}.py"
    assert (path / "cells" / cell["file"]).read_text() == ""
    project = tomllib.loads((path / "pyproject.toml").read_text())
    assert project["project"]["requires-python"] == "==3.12.*"
    assert project["project"]["name"] == "my-analysis"
    assert any(d.startswith("pyarrow") for d in project["project"]["dependencies"])
    assert project["tool"]["uv"] == {}
    assert (path / ".quiver" / ".gitignore").exists()


def test_cell_files_by_language(manager):
    session = manager.create(".", "langs", "3.11", False)
    files = {lang: session.add_cell(lang).entry.file for lang in ("python", "sql", "markdown")}
    files["prompt"] = session.add_cell("prompt").entry.file
    assert {k: v.rsplit(".", 1)[1] for k, v in files.items()} == {
        "python": "py",
        "sql": "sql",
        "markdown": "md",
        "prompt": "py",
    }


def test_duplicate_create_conflicts(manager):
    manager.create(".", "dup", "3.11", False)
    with pytest.raises(Conflict):
        manager.create(".", "dup", "3.11", False)


def test_atomic_write_never_leaves_a_truncated_file(tmp_path, monkeypatch):
    target = tmp_path / "notebook.toml"
    target.write_text("name = 'old'\n")

    def crash(src, dst):
        raise OSError("power cut")

    monkeypatch.setattr(paths.os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        atomic_write(target, "name = 'new'\n" * 1000)
    assert target.read_text() == "name = 'old'\n"
    assert os.listdir(tmp_path) == ["notebook.toml"]


def test_save_goes_through_a_temp_file(manager, monkeypatch):
    session = manager.create(".", "atomic", "3.11", False)
    seen: list[tuple[str, str]] = []
    real = os.replace

    def spy(src, dst):
        seen.append((Path(src).name, Path(dst).name))
        real(src, dst)

    monkeypatch.setattr(paths.os, "replace", spy)
    cid = session.add_cell("python").id
    session.update_source(cid, "x = 1")
    assert {dst for _, dst in seen} >= {"notebook.toml", f"{cid}.py"}
    assert all(src.startswith(".") and src.endswith(".tmp") for src, _ in seen)


def test_open_removes_temp_files_a_crashed_save_left(manager, nb_root):
    session = manager.create(".", "crashed", "3.11", False)
    cid = session.add_cell("python").id
    path = session.nb.path
    manager.close(session.id)
    # what a kill -9 during a save leaves: temp files next to the files they replace
    stale = [path / ".notebook.toml.ab12cd34.ef5678.tmp", path / "cells" / f".{cid}.py.x.y.tmp",
             path / ".quiver" / "results" / ".h.json.x.y.tmp"]  # fmt: skip
    (path / ".quiver" / "results").mkdir(exist_ok=True)
    old = dt.datetime.now().timestamp() - paths.STALE_TEMP_S - 5
    for temp in stale:
        temp.write_text("half a sa")
        os.utime(temp, (old, old))
    fresh = path / "cells" / f".{cid}.py.being.written.tmp"  # a save in progress right now
    fresh.write_text("half")
    manager.open(str(path))
    assert not any(temp.exists() for temp in stale)
    assert fresh.exists()


def test_cell_file_escaping_cells_dir_is_refused(manager, nb_root, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    path = nb_root / "evil"
    (path / "cells").mkdir(parents=True)
    (path / "notebook.toml").write_text(
        'name = "evil"\ncells = [{ id = "a", file = "../../../secret.txt", language = "python", '
        "order = 0 }]\n"
    )
    session = manager.open(str(path))
    (cell,) = session.derived.cells
    assert cell.source == ""
    assert [d.code for d in cell.file_diagnostics] == ["bad_file"]
    with pytest.raises(InvalidArgument):
        session.update_source("a", "x = 1")
    assert secret.read_text() == "top secret"


def test_open_errors(manager, nb_root):
    with pytest.raises(NotFound, match="Notebook directory not found"):
        manager.open("missing")
    (nb_root / "empty").mkdir()
    with pytest.raises(NotFound, match=r"notebook\.toml not found at"):
        manager.open("empty")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("../elsewhere", "Invalid path: path traversal not allowed"),
        ("a/../../b", "Invalid path: path traversal not allowed"),
        ("a\\..\\b", "Invalid path: path traversal not allowed"),
        ("/etc", "Invalid path: must be inside configured notebook storage"),
        ("bad\0name", "Invalid path: NUL byte not allowed"),
    ],
)
def test_confine_refuses(nb_root, raw, message):
    with pytest.raises(InvalidArgument) as info:
        confine(nb_root, raw, "path")
    assert info.value.message.startswith(message)
    assert str(nb_root) in info.value.message


def test_confine_follows_symlinks(nb_root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (nb_root / "link").symlink_to(outside)
    with pytest.raises(InvalidArgument, match="must be inside configured notebook storage"):
        confine(nb_root, "link", "path")
    with pytest.raises(InvalidArgument, match="must be inside configured notebook storage"):
        confine(nb_root, str(nb_root / "link" / "nb"), "path")


def test_confine_accepts_relative_and_absolute_inside(nb_root):
    assert confine(nb_root, "a/b", "path") == nb_root / "a" / "b"
    assert confine(nb_root, str(nb_root / "c"), "path") == nb_root / "c"
    assert confine(nb_root, ".", "path") == nb_root


def test_toml_dump_of_created_notebook_parses_with_tomlkit(manager, nb_root):
    session = manager.create(".", "parse", "3.11", False)
    session.add_cell("python")
    doc = tomlkit.parse((Path(session.path) / "notebook.toml").read_text())
    assert len(doc["cells"]) == 1


def test_discover_lists_notebooks(manager, nb_root):
    write_strata_notebook(nb_root / "team")
    manager.create(".", "mine", "3.11", False)
    (nb_root / "not_a_notebook").mkdir()
    found = manager.discover()
    assert found["root"] == str(nb_root)
    assert [(Path(n["path"]).name, n["name"]) for n in found["notebooks"]] == [
        ("mine", "mine"),
        ("strata_demo", "Strata Demo"),
    ]
    strata = found["notebooks"][1]
    assert strata["notebook_id"] == "0b7c5f0e-2f7e-4d8e-9a51-0d7b1c3f1a2e"
    assert strata["updated_at"].startswith("2025-06-02T11:30:00")


def test_idle_sessions_are_closed(manager, clock, settings):
    session = manager.create(".", "idle", "3.11", False)
    clock.now += settings.notebook_session_idle_s - 1
    assert manager.get(session.id) is session
    clock.now += settings.notebook_session_idle_s + 1
    with pytest.raises(NotFound, match="Notebook not found"):
        manager.get(session.id)
    # the notebook itself is intact: reopening gives the same cells
    assert manager.open(session.path).nb.name == "idle"


def test_session_cap_closes_oldest_idle(settings, clock):
    from notebooks import NotebookManager

    capped = NotebookManager(
        settings.model_copy(update={"notebook_max_sessions": 2}),
        clock=clock,
        python_versions={"3.11": Path("/x")},
    )
    first = capped.create(".", "one", "3.11", False)
    clock.now += 1
    capped.create(".", "two", "3.11", False)
    clock.now += 1
    capped.create(".", "three", "3.11", False)
    with pytest.raises(NotFound):
        capped.get(first.id)
    assert len(capped.list_sessions()) == 2


def test_reopen_returns_same_session_in_personal_mode(manager, nb_root):
    path = write_strata_notebook(nb_root)
    first = manager.open(str(path))
    (path / "cells" / "train.py").write_text("model = 1\n")
    again = manager.open("strata_demo")
    assert again is first
    assert again.derived.cell("train").source == "model = 1\n"  # reloaded from disk


def test_service_mode_opens_new_sessions(settings, clock, nb_root):
    from notebooks import NotebookManager

    service = NotebookManager(
        settings.model_copy(update={"deployment_mode": "service"}),
        clock=clock,
        python_versions={"3.11": Path("/x")},
    )
    path = write_strata_notebook(nb_root)
    assert service.open(str(path)).id != service.open(str(path)).id


def test_busy_session_blocks_delete(manager):
    session = manager.create(".", "busy", "3.11", False)
    session.executing = True
    with pytest.raises(Conflict, match="blocked while notebook execution is running"):
        manager.delete(session.id)
    session.executing = False
    session.env_busy = True
    with pytest.raises(Conflict) as info:
        manager.delete_by_path(session.path)
    assert info.value.detail["code"] == "ENVIRONMENT_BUSY"
    assert Path(session.path).exists()
