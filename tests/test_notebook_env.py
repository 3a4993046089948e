"""A notebook's Python environment with the real uv and no network (API.md §7, §13).

uv resolves from tiny wheels made in ``tmp_path`` (``UV_FIND_LINKS``, ``UV_OFFLINE``,
``UV_NO_INDEX``, a cache of its own). Notebooks start with no declared packages
(the defaults need an index), except where a test says otherwise. Real uvicorn,
real kernels running in the notebook's ``.venv``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from foundation import Conflict, InvalidArgument
from notebooks.env import Environment, parse_environment_yaml, parse_requirements
from tests.fixtures_execution import Nb
from tests.wheels import make_wheel


@pytest.fixture(autouse=True)
def offline_uv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "tinypkg", "1.0", "NAME = 'tiny'\n")
    make_wheel(wheels, "tinypkg", "1.1", "NAME = 'tiny'\n")
    make_wheel(wheels, "otherpkg", "2.0", requires=("tinypkg>=1.0",))
    for key, value in {
        "UV_FIND_LINKS": str(wheels),
        "UV_NO_INDEX": "1",
        "UV_OFFLINE": "1",
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
    }.items():
        monkeypatch.setenv(key, value)
    return wheels


def path_of(nb: Nb) -> Path:
    return Path(nb.manager.get(nb.sid).path)


def bare(nb: Nb) -> Path:
    """The notebook with no declared packages (so uv resolves from the local wheels)."""
    path = path_of(nb)
    pyproject = path / "pyproject.toml"
    text = pyproject.read_text()
    start = text.index("dependencies = [")
    end = text.index("]", start)
    pyproject.write_text(text[:start] + "dependencies = []" + text[end + 1 :])
    nb.manager.get(nb.sid).refresh_env()
    return path


def test_add_installs_into_the_notebooks_venv_and_a_cell_imports_it(nb: Nb) -> None:
    path = bare(nb)
    first = nb.add("x = 1")
    assert nb.run(first)["status"] == "ready"
    r = nb.client.post(f"{nb.base}/dependencies", json={"package": " tinypkg==1.0 "})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] and body["lockfile_changed"] and body["package"] == "tinypkg==1.0"
    assert body["dependencies"] == [
        {"name": "tinypkg", "version": None, "specifier": "tinypkg==1.0"}
    ]
    assert body["resolved_dependencies"] == [
        {"name": "tinypkg", "version": "1.0", "specifier": None}
    ]
    env = body["environment"]
    assert env["has_lockfile"] and env["sync_state"] == "ready"
    assert env["venv_python"] == str(path / ".venv" / "bin" / "python")
    assert body["operation_log"]["command"].startswith("uv ")
    assert first in body["stale_cell_ids"]  # it ran in the old environment
    stale = nb.cells()[first]
    assert stale["status"] == "stale", stale
    assert stale["causality"] == {
        "reason": "env",
        "details": [{"type": "env_changed", "package": "tinypkg", "to_package_version": "1.0"}],
    }
    assert body["environment_job_history"][0]["status"] == "completed"
    project = tomllib.loads((path / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == ["tinypkg==1.0"]
    assert (path / "uv.lock").is_file()
    cell = nb.add("import sys, tinypkg, pyarrow\nv = tinypkg.VERSION\nexe = sys.executable")
    out = nb.run(cell)
    assert out["status"] == "ready", out
    assert out["outputs"]["v"]["preview"] == "1.0"
    assert out["outputs"]["exe"]["preview"].startswith(str(path / ".venv"))  # its own venv
    # a dependency pulling another one; then removing it
    r = nb.client.post(f"{nb.base}/dependencies", json={"package": "otherpkg"})
    assert r.status_code == 200, r.text
    names = {d["name"] for d in r.json()["resolved_dependencies"]}
    assert names == {"tinypkg", "otherpkg"}
    r = nb.client.delete(f"{nb.base}/dependencies/tinypkg")
    assert r.status_code == 200, r.text
    assert [d["name"] for d in r.json()["dependencies"]] == ["otherpkg"]
    r = nb.client.delete(f"{nb.base}/dependencies/otherpkg")
    assert r.status_code == 200, r.text
    assert r.json()["dependencies"] == [] and r.json()["resolved_dependencies"] == []
    out = nb.run(cell, status=200)
    assert out["status"] == "error" and "tinypkg" in str(out)


def test_a_failing_add_leaves_everything_as_it_was(nb: Nb) -> None:
    path = bare(nb)
    assert nb.client.post(f"{nb.base}/dependencies", json={"package": "tinypkg"}).status_code == 200
    before = {n: (path / n).read_bytes() for n in ("pyproject.toml", "uv.lock")}
    venv = sorted(p.name for p in (path / ".venv").rglob("*"))
    r = nb.client.post(f"{nb.base}/dependencies", json={"package": "no-such-package"})
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert "no-such-package" in detail["message"]
    assert detail["operation_log"]["command"] == "uv add --no-sync no-such-package"
    assert {n: (path / n).read_bytes() for n in before} == before
    assert sorted(p.name for p in (path / ".venv").rglob("*")) == venv
    assert not list((path / ".quiver" / "env-work").iterdir())
    history = nb.client.get(f"{nb.base}/environment").json()["environment_job_history"]
    assert history[0]["status"] == "failed" and "no-such-package" in history[0]["error"]
    cell = nb.add("import tinypkg\nv = tinypkg.VERSION")
    assert nb.run(cell)["outputs"]["v"]["preview"] == "1.1"


def test_package_strings_are_refused_before_uv_sees_them(nb: Nb) -> None:
    for bad in ["tinypkg; rm -rf /", "a" * 201, "pkg$(x)", "pkg\n", "x'y"]:
        r = nb.client.post(f"{nb.base}/dependencies", json={"package": bad})
        assert r.status_code == 422, (bad, r.text)
    r = nb.client.post(f"{nb.base}/dependencies", json={"package": "not a requirement!!"})
    assert r.status_code == 422
    r = nb.client.post(f"{nb.base}/dependencies", json={"package": "==1.0"})
    assert r.status_code == 400 and "Invalid package specification" in r.json()["detail"]
    assert nb.client.delete(f"{nb.base}/dependencies/a$b").status_code == 400
    r = nb.client.delete(f"{nb.base}/dependencies/notdeclared")
    assert r.status_code == 400 and "not a dependency" in r.json()["detail"]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"action": "explode"}, 422, "action must be one of"),
        ({"action": "add"}, 400, "add jobs require package"),
        ({"action": "add", "package": "x", "requirements": "y"}, 400, "take no requirements"),
        ({"action": "sync", "package": "x"}, 400, "sync jobs take no"),
        ({"action": "import"}, 400, "exactly one"),
        ({"action": "import", "requirements": "a", "environment_yaml": "b"}, 400, "exactly one"),
        ({"action": " CHANGE_PYTHON "}, 400, "change_python jobs require python_version"),
        ({"action": "r_init"}, 400, "R (Rscript)"),
        ({"action": "import", "requirements": "-r other.txt"}, 400, "line 1: option -r"),
    ],
)
def test_job_bodies_are_validated(nb: Nb, body: dict, status: int, words: str) -> None:
    r = nb.client.post(f"{nb.base}/environment/jobs", json=body)
    assert r.status_code == status, r.text
    assert words in str(r.json()["detail"])


def test_a_job_streams_its_frames(nb: Nb) -> None:
    bare(nb)
    with nb.socket() as ws:
        r = nb.client.post(
            f"{nb.base}/environment/jobs", json={"action": "add", "package": "tinypkg"}
        )
        assert r.status_code == 202, r.text
        assert r.json()["accepted"] is True
        frames = ws.recv_until(lambda f: f["type"] == "environment_job_finished")
        kinds = [f["type"] for f in frames if f["type"].startswith("environment_job")]
        assert kinds[0] == "environment_job_started"
        job = frames[-1]["payload"]["environment_job"]
        assert job["status"] == "completed" and job["command"] == "uv add tinypkg"
        assert "tinypkg" in job["stderr"]  # uv's own account of what it did
        assert frames[-1]["payload"]["lockfile_changed"] is True
        changed = ws.recv_until(lambda f: f["type"] == "dependency_changed")[-1]["payload"]
        assert changed["action"] == "add" and changed["success"] is True
        ws.send("dependency_remove", package="tinypkg")
        done = ws.recv_until(lambda f: f["type"] == "environment_job_finished")[-1]
        assert done["payload"]["dependencies"] == []
        ws.send("dependency_add", package="bad;pkg")
        assert (
            "forbidden characters"
            in ws.recv_until(lambda f: f["type"] == "error")[-1]["payload"]["error"]
        )
    current = nb.client.get(f"{nb.base}/environment/jobs/current").json()
    history = current["environment_job_history"]
    assert [j["action"] for j in history] == ["remove", "add"]
    assert current["environment_job"] == history[0]  # none runs: the newest finished one


def test_no_environment_change_while_a_cell_runs(nb: Nb, tmp_path: Path) -> None:
    bare(nb)
    gate = tmp_path / "go"
    cell = nb.add(
        "import os, time\n"
        f"deadline = time.monotonic() + 60\n"
        f"while not os.path.exists({str(gate)!r}) and time.monotonic() < deadline:\n"
        "    time.sleep(0.01)\n"
    )
    with nb.socket() as ws:
        ws.send("cell_execute", cell_id=cell)
        ws.recv_until(lambda f: f["type"] == "cell_status" and f["payload"]["status"] == "running")
        r = nb.client.post(f"{nb.base}/dependencies", json={"package": "tinypkg"})
        assert r.status_code == 409, r.text
        assert r.json()["detail"]["code"] == "ENVIRONMENT_BUSY"
        assert cell in r.json()["detail"]["message"]
        gate.write_text("")
        ws.recv_until(lambda f: f["type"] == "cell_output")
    r = nb.client.post(f"{nb.base}/environment/sync")
    assert r.status_code == 200, r.text
    assert r.json()["operation_log"]["command"].startswith("uv ")


def test_one_job_at_a_time(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname='n'\nversion='0'\ndependencies=[]\n")
    env = Environment(tmp_path)
    job = env.begin("sync", "uv sync")
    with pytest.raises(Conflict) as err:
        env.begin("add", "uv add x", "x")
    assert err.value.detail["code"] == "ENVIRONMENT_BUSY"
    assert err.value.detail["environment_job"]["id"] == job.id
    env.end(job, None)
    env.end(env.begin("add", "uv add x", "x"), "boom")
    assert [j["status"] for j in Environment(tmp_path).history.jobs] == ["failed", "completed"]


def test_requirements_and_environment_yaml_are_read_not_run(nb: Nb) -> None:
    bare(nb)
    text = "# pinned\ntinypkg==1.0  # the tiny one\n\notherpkg\n"
    r = nb.client.post(
        f"{nb.base}/environment/requirements.txt/preview", json={"requirements": text}
    )
    assert r.status_code == 200, r.text
    preview = r.json()
    assert preview["normalized_requirements"] == ["tinypkg==1.0", "otherpkg"]
    assert [d["name"] for d in preview["additions"]] == ["tinypkg", "otherpkg"]
    assert not (path_of(nb) / "uv.lock").exists()  # a preview touches nothing
    r = nb.client.post(f"{nb.base}/environment/requirements.txt", json={"requirements": text})
    assert r.status_code == 200, r.text
    assert r.json()["imported_count"] == 2
    r = nb.client.get(f"{nb.base}/environment/requirements.txt")
    assert r.text == "tinypkg==1.0\notherpkg\n"
    assert "attachment" in r.headers["content-disposition"]
    with pytest.raises(InvalidArgument, match="line 2: option -e"):
        parse_requirements("ok\n-e .\n")
    with pytest.raises(InvalidArgument, match="line 1: option --index-url"):
        parse_requirements("--index-url http://x\n")
    yaml = (
        "name: x\ndependencies:\n  - python=3.11\n  - numpy=1.26\n  - libgcc\n"
        "  - pip:\n    - tinypkg\n"
    )
    parsed = parse_environment_yaml(yaml)
    assert parsed.python == "3.11"
    assert parsed.requirements == ["numpy==1.26.*", "tinypkg"]
    assert any("libgcc" in w for w in parsed.warnings)
    r = nb.client.post(
        f"{nb.base}/environment/environment.yaml/preview",
        json={"environment_yaml": "dependencies:\n  - pip:\n    - tinypkg\n"},
    )
    assert r.status_code == 200 and [d["name"] for d in r.json()["unchanged"]] == []
    assert [d["name"] for d in r.json()["removals"]] == ["otherpkg"]


def test_a_strata_notebook_opens_and_syncs(make_nb, settings, offline_uv: Path) -> None:
    nb = make_nb()
    path = bare(nb)
    assert (
        nb.client.post(f"{nb.base}/dependencies", json={"package": "tinypkg==1.0"}).status_code
        == 200
    )
    lock = (path / "uv.lock").read_bytes()
    # The same project files, as Strata leaves them, with no venv yet
    import shutil

    shutil.rmtree(path / ".venv")
    other = make_nb(str(path))
    r = other.client.post(f"{other.base}/environment/sync")
    assert r.status_code == 200, r.text
    assert r.json()["lockfile_changed"] is False
    assert (path / "uv.lock").read_bytes() == lock
    cell = other.add("import tinypkg\nv = tinypkg.VERSION")
    assert other.run(cell)["outputs"]["v"]["preview"] == "1.0"
    assert os.path.exists(path / ".venv" / "bin" / "python")
