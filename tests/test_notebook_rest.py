"""Every notebook route and its errors, through a real uvicorn and httpx."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures_notebooks import write_strata_notebook

GEN_404 = {"detail": "Notebook not found"}
PERSONAL_ONLY = {"detail": "This route is only available in personal deployment mode"}

STATE_KEYS = {
    "id",
    "name",
    "owner",
    "worker",
    "timeout",
    "env",
    "env_sources",
    "workers",
    "mounts",
    "connections",
    "cells",
    "variant_groups",
    "created_at",
    "updated_at",
    "environment",
    "environment_job",
    "environment_job_history",
    "r_environment",
}
CONFIG_KEYS = {
    "deployment_mode",
    "default_parent_path",
    "available_python_versions",
    "default_python_version",
    "python_selection_fixed",
    "registry_enabled",
}
CELL_KEYS = {
    "id",
    "source",
    "language",
    "order",
    "status",
    "defines",
    "references",
    "mutation_defines",
    "upstream_ids",
    "downstream_ids",
    "annotation_diagnostics",
    "is_leaf",
    "staleness",
    "staleness_reasons",
    "annotations",
    "display_outputs",
    "artifact_uris",
}
DAG_KEYS = {"edges", "topological_order", "leaves", "roots", "variable_producer"}


def create(client, name="nb", **extra):
    body = {"parent_path": ".", "name": name, "python_version": "3.11", **extra}
    r = client.post("/v1/notebooks/create", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def add(client, sid, **body):
    r = client.post(f"/v1/notebooks/{sid}/cells", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def put_source(client, sid, cid, source):
    r = client.put(f"/v1/notebooks/{sid}/cells/{cid}", json={"source": source})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def service_client(make_client):
    return make_client(deployment_mode="service")[0]


# -- config and discover -----------------------------------------------------------------------


def test_config(client, nb_root):
    r = client.get("/v1/notebooks/config")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == CONFIG_KEYS
    assert body["deployment_mode"] == "personal"
    assert body["available_python_versions"] == ["3.11", "3.12"]
    assert body["default_python_version"] == "3.11"
    assert body["python_selection_fixed"] is False
    assert body["registry_enabled"] is True
    assert body["default_parent_path"] == str(nb_root)


def test_config_in_service_mode(service_client):
    body = service_client.get("/v1/notebooks/config").json()
    assert (body["deployment_mode"], body["registry_enabled"]) == ("service", False)


def test_discover(client, nb_root):
    write_strata_notebook(nb_root)
    create(client, "Mine")
    body = client.get("/v1/notebooks/discover").json()
    assert body["root"] == str(nb_root)
    assert sorted(n["name"] for n in body["notebooks"]) == ["Mine", "Strata Demo"]
    assert set(body["notebooks"][0]) == {"path", "name", "notebook_id", "updated_at", "owner"}


# -- create ------------------------------------------------------------------------------------


def test_create(client, nb_root):
    r = client.post(
        "/v1/notebooks/create",
        json={"parent_path": ".", "name": "My Notebook", "starter_cell": True},
    )
    assert r.status_code == 200
    assert "total;dur=" in r.headers["server-timing"]
    body = r.json()
    assert set(body) >= STATE_KEYS | CONFIG_KEYS | {"session_id", "path"}
    assert "dag" not in body
    assert len(body["session_id"]) == 36
    assert body["path"] == str(nb_root / "my_notebook")
    assert body["name"] == "My Notebook"
    (cell,) = body["cells"]
    assert set(cell) >= CELL_KEYS
    assert len(cell["id"]) == 8 and cell["source"] == "" and cell["status"] == "idle"
    assert body["environment"]["requested_python_version"] == "3.11"
    assert (nb_root / "my_notebook" / "notebook.toml").is_file()


def test_create_in_subfolder(client, nb_root):
    body = create(client, "Deep", parent_path="team/a")
    assert body["path"] == str(nb_root / "team" / "a" / "deep")


@pytest.mark.parametrize("name", ["a/b", "a\\b", "a..b", "nul\u0000name"])
def test_create_refuses_bad_names(client, name):
    r = client.post("/v1/notebooks/create", json={"parent_path": ".", "name": name})
    assert r.status_code == 400
    assert r.json()["detail"].startswith("Invalid notebook name: must not contain")


@pytest.mark.parametrize(
    ("parent", "message"),
    [
        ("../up", "Invalid parent_path: path traversal not allowed"),
        ("/tmp", "Invalid parent_path: must be inside configured notebook storage"),
    ],
)
def test_create_confines_parent(client, nb_root, parent, message):
    r = client.post("/v1/notebooks/create", json={"parent_path": parent, "name": "x"})
    assert r.status_code == 400
    assert r.json() == {"detail": f"{message} (notebook storage: {nb_root})"}


def test_create_duplicate_conflicts(client, nb_root):
    create(client, "dup")
    r = client.post("/v1/notebooks/create", json={"parent_path": ".", "name": "dup"})
    assert r.status_code == 409
    assert r.json() == {"detail": f"A notebook already exists at {nb_root / 'dup'}"}


def test_create_python_version(client):
    r = client.post(
        "/v1/notebooks/create", json={"parent_path": ".", "name": "x", "python_version": "3.9"}
    )
    assert r.status_code == 400
    assert r.json() == {"detail": "Python 3.9 is not available; available versions: 3.11, 3.12"}
    for bad in ("3", "3.12.1", "x" * 17):
        r = client.post(
            "/v1/notebooks/create", json={"parent_path": ".", "name": "x", "python_version": bad}
        )
        assert r.status_code == 422, bad


def test_create_validation(client):
    r = client.post("/v1/notebooks/create", json={"parent_path": "."})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "name"]


# -- open --------------------------------------------------------------------------------------


def test_open_strata_notebook(client, nb_root):
    path = write_strata_notebook(nb_root)
    r = client.post("/v1/notebooks/open", json={"path": str(path)})
    assert r.status_code == 200
    assert "server-timing" in r.headers
    body = r.json()
    assert set(body) >= STATE_KEYS | CONFIG_KEYS | {"session_id", "path", "dag"}
    assert set(body["dag"]) == DAG_KEYS
    assert body["dag"]["topological_order"] == ["intro", "load", "q", "train"]
    assert body["env"] == {"REGION": "eu"}
    assert body["mounts"][0]["name"] == "raw"
    again = client.post("/v1/notebooks/open", json={"path": "strata_demo"}).json()
    assert again["session_id"] == body["session_id"]


def test_open_in_service_mode_makes_new_sessions(service_client, nb_root):
    write_strata_notebook(nb_root)
    first = service_client.post("/v1/notebooks/open", json={"path": "strata_demo"}).json()
    second = service_client.post("/v1/notebooks/open", json={"path": "strata_demo"}).json()
    assert first["session_id"] != second["session_id"]


def test_open_errors(client, nb_root):
    r = client.post("/v1/notebooks/open", json={"path": "missing"})
    assert (r.status_code, r.json()) == (404, {"detail": "Notebook directory not found"})
    (nb_root / "empty").mkdir()
    r = client.post("/v1/notebooks/open", json={"path": "empty"})
    assert r.status_code == 404
    assert r.json() == {"detail": f"notebook.toml not found at {nb_root / 'empty'}"}
    r = client.post("/v1/notebooks/open", json={"path": "../etc"})
    assert r.status_code == 400
    assert r.json()["detail"].startswith("Invalid path: path traversal not allowed")
    r = client.post("/v1/notebooks/open", json={"path": "/etc"})
    assert r.status_code == 400
    assert r.json()["detail"].startswith("Invalid path: must be inside configured notebook storage")
    r = client.post("/v1/notebooks/open", json={})  # path defaults to "..."
    assert (r.status_code, r.json()) == (404, {"detail": "Notebook directory not found"})


def test_open_symlink_escape(client, nb_root, tmp_path):
    outside = tmp_path / "outside"
    write_strata_notebook(outside.parent, outside.name)
    (nb_root / "sneaky").symlink_to(outside)
    r = client.post("/v1/notebooks/open", json={"path": "sneaky"})
    assert r.status_code == 400
    assert "must be inside configured notebook storage" in r.json()["detail"]
    assert str(nb_root) in r.json()["detail"]


# -- delete, delete-by-path, rename ------------------------------------------------------------


def test_delete_session(client, nb_root):
    sid = create(client, "gone")["session_id"]
    r = client.delete(f"/v1/notebooks/{sid}")
    assert r.status_code == 200
    assert r.json() == {
        "deleted": True,
        "session_id": sid,
        "name": "gone",
        "path": str(nb_root / "gone"),
    }
    assert not (nb_root / "gone").exists()
    assert client.delete(f"/v1/notebooks/{sid}").json() == GEN_404


def test_delete_unknown_session(client):
    r = client.delete("/v1/notebooks/00000000-0000-4000-8000-000000000000")
    assert (r.status_code, r.json()) == (404, GEN_404)


def test_delete_is_personal_only(service_client, nb_root):
    sid = create(service_client, "kept")["session_id"]
    r = service_client.delete(f"/v1/notebooks/{sid}")
    assert (r.status_code, r.json()) == (403, PERSONAL_ONLY)
    r = service_client.post("/v1/notebooks/delete-by-path", json={"path": "kept"})
    assert (r.status_code, r.json()) == (403, PERSONAL_ONLY)
    assert (nb_root / "kept").exists()


def test_delete_by_path(client, nb_root):
    sid = create(client, "bypath")["session_id"]
    r = client.post("/v1/notebooks/delete-by-path", json={"path": "bypath"})
    assert r.status_code == 200
    assert r.json() == {"deleted": True, "path": str(nb_root / "bypath")}
    assert not (nb_root / "bypath").exists()
    assert client.get(f"/v1/notebooks/{sid}/cells").json() == GEN_404  # its session closed


def test_delete_by_path_errors(client, nb_root):
    r = client.post("/v1/notebooks/delete-by-path", json={"path": "nothing"})
    assert (r.status_code, r.json()) == (404, {"detail": "No notebook found at nothing"})
    r = client.post("/v1/notebooks/delete-by-path", json={"path": "a/../../b"})
    assert r.status_code == 400
    assert r.json()["detail"].startswith("Invalid path: path traversal not allowed")
    r = client.post("/v1/notebooks/delete-by-path", json={})
    assert r.status_code == 422


def test_delete_symlinked_notebook_is_refused(client, nb_root, tmp_path):
    real = write_strata_notebook(nb_root, "real")
    sid = client.post("/v1/notebooks/open", json={"path": "real"}).json()["session_id"]
    # swap the directory for a symlink to it behind the session's back
    moved = real.rename(nb_root / "moved")
    real.symlink_to(moved)
    r = client.delete(f"/v1/notebooks/{sid}")
    assert r.status_code == 400
    assert r.json()["detail"].startswith("Refusing to delete a symlinked notebook directory")
    assert moved.exists()


def test_rename(client, nb_root):
    body = create(client, "old name")
    r = client.put(f"/v1/notebooks/{body['session_id']}/name", json={"name": "  New Name  "})
    assert r.status_code == 200
    assert r.json() == {"notebook_id": body["id"], "name": "New Name"}
    assert (nb_root / "old_name").is_dir()  # the directory is not renamed
    assert 'name = "New Name"' in (nb_root / "old_name" / "notebook.toml").read_text()


def test_rename_errors(client):
    sid = create(client)["session_id"]
    for name in ("", "   ", "x" * 256):
        r = client.put(f"/v1/notebooks/{sid}/name", json={"name": name})
        assert r.status_code == 422, name
    r = client.put(f"/v1/notebooks/{sid}/name", json={"name": "a/b"})
    assert r.status_code == 400
    assert r.json()["detail"].startswith("Invalid notebook name: must not contain")
    r = client.put("/v1/notebooks/nope/name", json={"name": "x"})
    assert (r.status_code, r.json()) == (404, GEN_404)


# -- sessions ----------------------------------------------------------------------------------


def test_sessions(client, nb_root):
    body = create(client, "listed")
    r = client.get("/v1/notebooks/sessions")
    assert r.status_code == 200
    (s,) = r.json()["sessions"]
    assert s["session_id"] == body["session_id"]
    assert s["notebook_id"] == body["id"]
    assert set(s) == {"session_id", "name", "path", "notebook_id", "created_at", "updated_at"}
    r = client.get(f"/v1/notebooks/sessions/{body['session_id']}")
    assert r.status_code == 200
    assert "server-timing" in r.headers
    state = r.json()
    assert set(state) >= STATE_KEYS | CONFIG_KEYS | {"session_id", "path", "dag"}


def test_unknown_session(client):
    r = client.get("/v1/notebooks/sessions/nope")
    assert (r.status_code, r.json()) == (404, {"detail": "Session not found"})


def test_sessions_are_personal_only(service_client):
    r = service_client.get("/v1/notebooks/sessions")
    assert (r.status_code, r.json()) == (403, PERSONAL_ONLY)
    r = service_client.get("/v1/notebooks/sessions/nope")
    assert (r.status_code, r.json()) == (403, PERSONAL_ONLY)


def test_idle_session_closes_but_notebook_remains(make_client, clock, settings):
    client, _ = make_client()
    body = create(client, "idle")
    clock.now += settings.notebook_session_idle_s + 1
    assert client.get(f"/v1/notebooks/{body['session_id']}/cells").json() == GEN_404
    reopened = client.post("/v1/notebooks/open", json={"path": "idle"}).json()
    assert reopened["id"] == body["id"]


# -- cells -------------------------------------------------------------------------------------


def test_cells_add_list_and_placement(client):
    body = create(client)
    sid = body["session_id"]
    a = add(client, sid)
    assert set(a) >= CELL_KEYS and a["language"] == "python" and a["order"] == 0
    b = add(client, sid, language="sql")
    c = add(client, sid, after_cell_id=a["id"], language="markdown")
    assert c["order"] == 0.5
    d = add(client, sid, after_cell_id=b["id"], language="prompt")
    assert d["order"] == b["order"] + 1
    r = client.get(f"/v1/notebooks/{sid}/cells")
    assert r.status_code == 200
    listed = r.json()
    assert listed["notebook_id"] == body["id"]
    assert [x["id"] for x in listed["cells"]] == [a["id"], c["id"], b["id"], d["id"]]


@pytest.mark.parametrize("language", ["r", "widget", "cobol"])
def test_add_cell_bad_language(client, language):
    sid = create(client)["session_id"]
    r = client.post(f"/v1/notebooks/{sid}/cells", json={"language": language})
    assert r.status_code == 422
    (err,) = r.json()["detail"]
    assert err["loc"] == ["body", "language"]
    assert f"unsupported cell language '{language}'" in err["msg"]
    assert "supported: python, sql, markdown, prompt" in err["msg"]


def test_add_cell_errors(client):
    sid = create(client)["session_id"]
    r = client.post(f"/v1/notebooks/{sid}/cells", json={"after_cell_id": "nope"})
    assert (r.status_code, r.json()) == (400, {"detail": "after_cell_id 'nope' not found"})
    r = client.post("/v1/notebooks/nope/cells", json={})
    assert (r.status_code, r.json()) == (404, GEN_404)
    assert client.get("/v1/notebooks/nope/cells").json() == GEN_404


def test_update_source_returns_cell_dag_and_all_cells(client):
    sid = create(client)["session_id"]
    a, b = add(client, sid)["id"], add(client, sid)["id"]
    put_source(client, sid, a, "df = load()")
    body = put_source(client, sid, b, "df['c'] = 1\ntotal = df.c.sum()")
    assert set(body) == {"cell", "dag", "cells"}
    cell = body["cell"]
    assert cell["defines"] == ["total"]
    assert cell["references"] == ["df"]
    assert cell["mutation_defines"] == ["df"]
    assert cell["upstream_ids"] == [a]
    assert [d["code"] for d in cell["annotation_diagnostics"]] == ["mutation"]
    assert body["dag"]["edges"] == [{"from_cell_id": a, "to_cell_id": b, "variable": "df"}]
    assert body["dag"]["variable_producer"] == {"df": b, "total": b}
    assert [c["id"] for c in body["cells"]] == [a, b]
    assert body["cells"][0]["downstream_ids"] == [b]
    assert all(c["staleness"] == {"status": "idle", "reasons": []} for c in body["cells"])


def test_update_source_shadow_and_syntax_error(client):
    sid = create(client)["session_id"]
    a, b, c = (add(client, sid)["id"] for _ in range(3))
    put_source(client, sid, a, "x = 1")
    assert put_source(client, sid, b, "x = 2")["cell"]["shadow_warnings"] == [
        f"'x' redefines the variable produced by cell {a}"
    ]
    cell = put_source(client, sid, c, "y = (x")["cell"]
    assert cell["defines"] == [] and cell["references"] == []
    (diag,) = cell["annotation_diagnostics"]
    assert diag["severity"] == "error" and diag["code"] == "syntax_error" and diag["line"] == 1


def test_update_source_errors(client):
    sid = create(client)["session_id"]
    cid = add(client, sid)["id"]
    r = client.put(f"/v1/notebooks/{sid}/cells/nope", json={"source": "x"})
    assert (r.status_code, r.json()) == (404, {"detail": "Cell nope not found in notebook.toml"})
    r = client.put(f"/v1/notebooks/nope/cells/{cid}", json={"source": "x"})
    assert (r.status_code, r.json()) == (404, GEN_404)
    r = client.put(f"/v1/notebooks/{sid}/cells/{cid}", json={})
    assert r.status_code == 422
    r = client.put(f"/v1/notebooks/{sid}/cells/{cid}", json={"source": "#" * 1_000_001})
    assert r.status_code == 422
    (err,) = r.json()["detail"]
    assert err["loc"] == ["body", "source"] and err["type"] == "string_too_long"
    assert "1000000" in err["msg"]
    assert put_source(client, sid, cid, "#" * 1_000_000)["cell"]["source"] == "#" * 1_000_000


def test_delete_cell(client, nb_root):
    body = create(client, "del")
    sid = body["session_id"]
    a, b = add(client, sid)["id"], add(client, sid)["id"]
    put_source(client, sid, a, "x = 1")
    put_source(client, sid, b, "y = x")
    r = client.delete(f"/v1/notebooks/{sid}/cells/{a}")
    assert r.status_code == 200
    out = r.json()
    assert out["message"] == "Cell deleted" and out["cell_id"] == a
    assert out["variant_groups"] == []
    assert set(out["dag"]) == {"edges", "roots", "leaves", "topological_order", "variant_groups"}
    assert [c["id"] for c in out["cells"]] == [b]
    assert out["cells"][0]["upstream_ids"] == []
    assert not (nb_root / "del" / "cells" / f"{a}.py").exists()
    r = client.delete(f"/v1/notebooks/{sid}/cells/{a}")
    assert (r.status_code, r.json()) == (404, {"detail": "Cell not found"})
    assert client.delete(f"/v1/notebooks/nope/cells/{b}").json() == GEN_404


def test_reorder(client):
    body = create(client)
    sid = body["session_id"]
    ids = [add(client, sid)["id"] for _ in range(4)]
    r = client.put(
        f"/v1/notebooks/{sid}/cells/reorder", json={"cell_ids": [ids[2], "ghost", ids[0]]}
    )
    assert r.status_code == 200
    out = r.json()
    assert out["notebook_id"] == body["id"]
    # listed known ids first, unknown ids ignored, unlisted keep their relative place after
    assert [c["id"] for c in out["cells"]] == [ids[2], ids[0], ids[1], ids[3]]
    assert [c["order"] for c in out["cells"]] == [0, 1, 2, 3]


def test_reorder_changes_dag(client):
    sid = create(client)["session_id"]
    a, b = add(client, sid)["id"], add(client, sid)["id"]
    put_source(client, sid, a, "x = 1")
    put_source(client, sid, b, "y = x")
    client.put(f"/v1/notebooks/{sid}/cells/reorder", json={"cell_ids": [b, a]})
    dag = client.get(f"/v1/notebooks/{sid}/dag").json()
    assert dag["edges"] == []  # x is now defined only by a later cell


def test_reorder_errors(client):
    sid = create(client)["session_id"]
    r = client.put("/v1/notebooks/nope/cells/reorder", json={"cell_ids": []})
    assert (r.status_code, r.json()) == (404, GEN_404)
    r = client.put(f"/v1/notebooks/{sid}/cells/reorder", json={})
    assert r.status_code == 422
    r = client.put(f"/v1/notebooks/{sid}/cells/reorder", json={"cell_ids": "a"})
    assert r.status_code == 422


# -- dag ---------------------------------------------------------------------------------------


def test_dag(client):
    sid = create(client)["session_id"]
    a, b, q = add(client, sid)["id"], add(client, sid)["id"], add(client, sid, language="sql")["id"]
    put_source(client, sid, a, "events = load()")
    put_source(client, sid, b, "n = len(events)")
    put_source(client, sid, q, "-- @name recent\nselect * from events")
    r = client.get(f"/v1/notebooks/{sid}/dag")
    assert r.status_code == 200
    dag = r.json()
    assert set(dag) == DAG_KEYS
    assert sorted(
        (e["from_cell_id"], e["to_cell_id"], e["variable"]) for e in dag["edges"]
    ) == sorted([(a, b, "events"), (a, q, "events")])
    assert dag["topological_order"] == [a, b, q]
    assert set(dag["roots"]) == {a} and set(dag["leaves"]) == {b, q}
    assert dag["variable_producer"] == {"events": a, "n": b, "recent": q}
    assert client.get("/v1/notebooks/nope/dag").json() == GEN_404


def test_cycle_is_reported_not_a_500(client):
    sid = create(client)["session_id"]
    a, b = add(client, sid)["id"], add(client, sid)["id"]
    put_source(client, sid, a, f"# @after {b}\nx = 1")
    body = put_source(client, sid, b, "y = x")
    assert body["dag"]["topological_order"] == [] and body["dag"]["edges"] == []
    assert "cycle" in body["dag"]["error"]
    for cell in body["cells"]:
        assert "cycle" in [d["code"] for d in cell["annotation_diagnostics"]]
    dag = client.get(f"/v1/notebooks/{sid}/dag").json()
    assert dag["roots"] == dag["leaves"] == [] and dag["variable_producer"] == {}


def test_execute_checks_mode_and_cell_then_needs_an_executor(client):
    sid = create(client)["session_id"]
    r = client.post(f"/v1/notebooks/{sid}/cells/x/execute", params={"mode": "odd"})
    assert r.status_code == 400 and r.json()["detail"] == "unknown run mode 'odd'"
    r = client.post(f"/v1/notebooks/{sid}/cells/x/execute")
    assert r.status_code == 404 and r.json()["detail"] == "Cell not found"
    cid = add(client, sid)["id"]
    r = client.post(f"/v1/notebooks/{sid}/cells/{cid}/execute")  # no Flight service given
    assert r.status_code == 503 and "not configured" in r.json()["detail"]


def test_paths_in_responses_are_inside_root(client, nb_root):
    body = create(client, "inside")
    assert Path(body["path"]).is_relative_to(nb_root)


def test_vanished_directory_is_404_not_500(client, nb_root):
    import shutil

    body = create(client, "vanish")
    sid = body["session_id"]
    cid = add(client, sid)["id"]
    shutil.rmtree(nb_root / "vanish")
    r = client.put(f"/v1/notebooks/{sid}/cells/{cid}", json={"source": "x = 1"})
    assert r.status_code == 404
    assert r.json() == {"detail": f"Notebook directory vanished: {nb_root / 'vanish'}"}
    r = client.post("/v1/notebooks/open", json={"path": "vanish"})
    assert (r.status_code, r.json()) == (404, {"detail": "Notebook directory not found"})
    assert client.get(f"/v1/notebooks/{sid}/cells").json() == GEN_404  # its session closed
