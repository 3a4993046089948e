"""The shared base environment (notebooks.env.base): notebooks that need nothing of
their own share one venv; the first thing they ask for gives them their own."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from notebooks.env import kernel_python
from notebooks.env.base import base_venv_dir, server_satisfies, shares_base, unmet
from tests.fixtures_execution import Nb
from tests.test_notebook_env import bare, offline_uv, path_of

__all__ = ["offline_uv"]  # the autouse fixture: uv offline, resolving from local wheels


def test_what_the_server_satisfies() -> None:
    assert server_satisfies("pyarrow") and server_satisfies("packaging>=1")
    assert not server_satisfies("pyarrow<1") and not server_satisfies("no-such-package-x")
    assert server_satisfies('no-such-package-x; python_version < "3"')  # not for here
    assert not server_satisfies("pyarrow[extra]")
    assert shares_base(False, False, None)
    for own, lock, version in [(True, False, None), (False, True, None), (False, False, "2.7")]:
        assert not shares_base(own, lock, version)
    assert unmet(["pyarrow", "no-such-package-x>=1"]) == ["no-such-package-x>=1"]


def exe(nb: Nb, sid: str | None = None) -> str:
    """The interpreter a cell of the notebook (``sid``, else ``nb``'s own) runs on."""
    base = nb.base if sid is None else nb.base.replace(nb.sid, sid)
    cid = nb.client.post(f"{base}/cells", json={"language": "python"}).json()["id"]
    nb.client.put(f"{base}/cells/{cid}", json={"source": "import sys\nexe = sys.executable"})
    out = nb.client.post(f"{base}/cells/{cid}/execute").json()
    assert out["status"] == "ready", out
    return str(out["outputs"]["exe"]["preview"]).strip("'\"")


@pytest.mark.usefixtures("offline_uv")
def test_default_notebooks_share_the_base_until_they_add(nb: Nb) -> None:
    one = nb
    r = nb.client.post("/v1/notebooks/create", json={"parent_path": ".", "name": "two"})
    assert r.status_code == 200, r.text
    two, two_path = r.json()["session_id"], Path(r.json()["path"])
    base = str(base_venv_dir())
    assert exe(one).startswith(base) and exe(one, two).startswith(base)
    for path in (path_of(one), two_path):
        assert not (path / ".venv").exists()
    env = one.client.get(f"{one.base}/environment").json()["environment"]
    assert env["venv_python"].startswith(base) and env["interpreter_source"] == "venv"
    assert "shared base" in env["sync_notice"]
    declared = [
        d["specifier"] for d in one.client.get(f"{one.base}/dependencies").json()["dependencies"]
    ]
    assert not unmet(declared)  # the defaults are the server's own packages
    assert env["sync_state"] == "ready"
    path = bare(one)
    env = one.client.get(f"{one.base}/environment").json()["environment"]
    assert env["sync_state"] == "ready" and "every declared package" in env["sync_notice"]
    r = one.client.post(f"{one.base}/dependencies", json={"package": "tinypkg"})
    assert r.status_code == 200, r.text
    assert r.json()["environment"]["sync_notice"] is None
    runner = one.executions.get(one.sid)
    assert runner is not None and runner.python == str(Path(path) / ".venv" / "bin" / "python")
    assert runner.kernel_alive  # the warm kernel's successor started with the change
    assert exe(one).startswith(str(Path(path) / ".venv"))
    assert exe(one, two).startswith(base)  # the other one is untouched


def test_session_responses_tell_the_environments_truth(nb: Nb) -> None:
    path = bare(nb)
    state = f"/v1/notebooks/sessions/{nb.sid}"
    body = nb.client.get(state).json()
    assert body["environment"]["sync_state"] == "ready" and body["environment_job"] is None
    env = nb.manager.get(nb.sid).environment
    job = env.begin("sync", "uv sync")
    body = nb.client.get(state).json()
    assert (
        body["environment_job"]["id"] == job.id and body["environment_job"]["status"] == "running"
    )
    assert body["environment"]["sync_state"] == "pending"
    env.end(job, None)
    r = nb.client.post(f"{nb.base}/dependencies", json={"package": "tinypkg"})
    assert r.status_code == 200, r.text
    body = nb.client.post("/v1/notebooks/open", json={"path": str(path)}).json()
    environment = body["environment"]
    assert environment["sync_state"] == "ready" and environment["has_lockfile"]
    assert environment["venv_python"] == str(path / ".venv" / "bin" / "python")
    assert environment["last_synced_at"] is not None
    assert body["environment_job"]["action"] == "add"
    assert [j["action"] for j in body["environment_job_history"]] == ["add", "sync"]


def test_a_cell_run_may_wait_for_the_environment_job(nb: Nb) -> None:
    cell = nb.add("x = 1")
    session = nb.manager.get(nb.sid)
    session.env_busy = True  # as a running environment job leaves it
    r = nb.client.post(f"{nb.base}/cells/{cell}/execute")
    assert r.status_code == 409 and r.json()["detail"]["code"] == "ENVIRONMENT_BUSY"
    assert session.wait_env_idle(0) is False
    answers: list[httpx.Response] = []
    waiting = threading.Thread(
        target=lambda: answers.append(
            nb.client.post(
                f"{nb.base}/cells/{cell}/execute", params={"wait_for_environment": "true"}
            )
        )
    )
    waiting.start()
    session.env_busy = False  # the job ends: the waiting run goes
    waiting.join(timeout=60)
    assert answers and answers[0].status_code == 200, answers
    assert answers[0].json()["status"] == "ready"


def test_without_a_cache_folder_a_notebook_gets_its_own_venv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    monkeypatch.setenv("QUIVER_CACHE_DIR", str(blocked / "quiver"))
    notebook = tmp_path / "nb"
    notebook.mkdir()
    (notebook / "pyproject.toml").write_text("[project]\nname='n'\nversion='0'\ndependencies=[]\n")
    assert kernel_python(notebook) == str(notebook / ".venv" / "bin" / "python")


def test_a_base_venv_left_half_made_by_a_dead_server_is_swept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    from notebooks.env.base import base_python

    monkeypatch.setenv("QUIVER_CACHE_DIR", str(tmp_path / "cache"))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    venv = base_venv_dir()
    left = venv.with_name(f"{venv.name}.new-{int(gone.stdout)}")
    (left / "bin").mkdir(parents=True)
    python = base_python()
    assert python.exists() and python.is_relative_to(venv)
    assert not left.exists(), sorted(p.name for p in venv.parent.iterdir())
