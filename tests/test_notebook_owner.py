"""Owner gating (API.md §1) through the real REST routes and the WebSocket."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from nbformat import v4, writes

from notebooks.model import owner


@pytest.fixture
def gated(make_client):
    client, manager = make_client(personal_mode_user_header="X-User")
    return client, manager


def create(client, user: str | None, name: str = "Mine") -> dict:
    headers = {"X-User": user} if user else {}
    r = client.post(
        "/v1/notebooks/create", json={"parent_path": ".", "name": name}, headers=headers
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_the_creator_owns_the_notebook_and_others_cannot_see_it(gated) -> None:
    client, _ = gated
    nb = create(client, "ada")
    sid, path = nb["session_id"], nb["path"]
    assert 'owner = "ada"' in (__import__("pathlib").Path(path) / "notebook.toml").read_text()
    mine = {"X-User": "ada"}
    assert client.get(f"/v1/notebooks/{sid}/cells", headers=mine).status_code == 200
    for headers in ({"X-User": "bob"}, {}):
        for method, url in [
            ("GET", f"/v1/notebooks/{sid}/cells"),
            ("GET", f"/v1/notebooks/{sid}/dag"),
            ("GET", f"/v1/notebooks/sessions/{sid}"),
            ("PUT", f"/v1/notebooks/{sid}/name"),
            ("DELETE", f"/v1/notebooks/{sid}"),
        ]:
            body = {"name": "x"} if method == "PUT" else None
            r = client.request(method, url, headers=headers, json=body)
            assert r.status_code == 404, (method, url, r.text)
            assert r.json()["detail"] in ("Notebook not found", "Session not found")
        r = client.post("/v1/notebooks/open", json={"path": path}, headers=headers)
        assert (r.status_code, r.json()["detail"]) == (404, "Notebook not found")
        r = client.post("/v1/notebooks/delete-by-path", json={"path": path}, headers=headers)
        assert r.status_code == 404
        listed = client.get("/v1/notebooks/sessions", headers=headers).json()["sessions"]
        assert sid not in {s["session_id"] for s in listed}
        found = client.get("/v1/notebooks/discover", headers=headers).json()["notebooks"]
        assert path not in {n["path"] for n in found}
    assert sid in {
        s["session_id"]
        for s in client.get("/v1/notebooks/sessions", headers=mine).json()["sessions"]
    }
    assert (
        client.post("/v1/notebooks/open", json={"path": path}, headers=mine).json()["session_id"]
        == sid
    )


def test_unowned_notebooks_are_not_gated(gated) -> None:
    client, _ = gated
    nb = create(client, None, "Shared")
    for headers in ({"X-User": "bob"}, {}):
        assert (
            client.get(f"/v1/notebooks/{nb['session_id']}/cells", headers=headers).status_code
            == 200
        )


def test_without_the_header_configured_owner_is_ignored(make_client) -> None:
    client, manager = make_client()
    nb = create(client, "ada", "Plain")
    session = manager.get(nb["session_id"])
    session.nb.doc["owner"] = "ada"
    assert (
        client.get(f"/v1/notebooks/{nb['session_id']}/cells", headers={"X-User": "bob"}).status_code
        == 200
    )


def test_websocket_owner_mismatch_is_refused(gated) -> None:
    from websockets.exceptions import InvalidStatus

    from tests.fixtures_execution import open_socket

    client, _ = gated
    nb = create(client, "ada", "Sock")
    path = f"/v1/notebooks/ws/{nb['session_id']}"
    base = str(client.base_url).rstrip("/")
    # closed (1008) before the handshake is accepted: over the wire, an HTTP 403
    with pytest.raises(InvalidStatus) as info:
        open_socket(base, path, {"X-User": "bob"})
    assert info.value.response.status_code == 403
    with open_socket(base, path, {"X-User": "ada"}) as ws:
        ws.send("notebook_sync")
        joined = ws.recv_until(lambda f: f["type"] == "notebook_state")[0]
        assert joined["payload"]["you"] == "ada"  # presence: the header's user
    assert owner.caller.get() is None


def test_an_import_is_owned_by_the_importer_not_the_exporter(gated) -> None:
    client, _ = gated
    nb = create(client, "ada")
    ada, bob = {"X-User": "ada"}, {"X-User": "bob"}
    exported = client.get(
        f"/v1/notebooks/{nb['session_id']}/export", params={"fmt": "zip"}, headers=ada
    )
    assert exported.status_code == 200
    assert (
        'owner = "ada"'
        in zipfile.ZipFile(io.BytesIO(exported.content)).read("notebook.toml").decode()
    )
    jupyter = writes(v4.new_notebook(cells=[v4.new_code_cell("x = 1")])).encode()
    for route, data, name in [
        ("import-snapshot", exported.content, "bobs copy"),
        ("import", jupyter, "bobs jupyter"),
    ]:
        r = client.post(
            f"/v1/notebooks/{route}", files={"file": ("f", data)}, data={"name": name},
            headers=bob,
        )  # fmt: skip
        assert r.status_code == 200, r.text
        sid, path = r.json()["session_id"], r.json()["path"]
        assert 'owner = "bob"' in (Path(path) / "notebook.toml").read_text()
        assert client.get(f"/v1/notebooks/{sid}/cells", headers=bob).status_code == 200
        for other in (ada, {}):
            assert client.get(f"/v1/notebooks/{sid}/cells", headers=other).status_code == 404
