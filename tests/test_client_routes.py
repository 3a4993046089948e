"""The other HTTP routes Strata 0.11's browser client calls (API.md §16): notebook settings,
close, recents, workers, published artifacts, the registry's summary and the Logs page."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import httpx

from flight import QuiverClient
from rest.logs import LogRing
from tests.fixtures_execution import Nb
from tests.fixtures_rest import Rest


def test_env_and_timeout(nb: Nb) -> None:
    a = nb.add("import os\nregion = os.environ['REGION']")
    r = nb.client.put(f"{nb.base}/env", json={"env": {"REGION": "eu"}})
    assert r.status_code == 200, r.text
    assert r.json()["env"] == {"REGION": "eu"} and len(r.json()["cells"]) == 1
    toml = tomllib.loads((Path(nb.manager.get(nb.sid).path) / "notebook.toml").read_text())
    assert toml["env"] == {"REGION": "eu"}
    assert nb.run(a)["outputs"]["region"]["preview"] == "eu"
    nb.client.put(f"{nb.base}/env", json={"env": {"REGION": "us"}})
    assert nb.cells()[a]["status"] == "stale"  # its environment changed
    bad = nb.client.put(f"{nb.base}/env", json={"env": {"1BAD": "x"}})
    assert bad.status_code == 422

    r = nb.client.put(f"{nb.base}/timeout", json={"timeout": 30})
    assert r.status_code == 200 and r.json()["timeout"] == 30
    cell = nb.cells()[a]  # resolved against the notebook's default (API.md §2.1)
    assert cell["timeout"] == 30 and cell["timeout_override"] is None
    assert nb.client.put(f"{nb.base}/timeout", json={"timeout": 0}).status_code == 422
    assert nb.client.put(f"{nb.base}/timeout", json={"timeout": None}).json()["timeout"] is None


def test_python_version(nb: Nb) -> None:
    url = f"{nb.base}/python-version"
    r = nb.client.put(url, json={"python_version": "3.11"})
    assert r.status_code == 200 and r.json()["accepted"] is False
    assert r.json()["reason"] == "already_at_requested_version"
    r = nb.client.put(url, json={"python_version": "3.12"})
    assert r.status_code == 200 and r.json()["accepted"] is True
    assert r.json()["environment"]["requested_python_version"] == "3.12"
    pyproject = Path(nb.manager.get(nb.sid).path) / "pyproject.toml"
    assert tomllib.loads(pyproject.read_text())["project"]["requires-python"] == "==3.12.*"
    r = nb.client.put(url, json={"python_version": "2.7"})
    assert r.status_code == 400 and "not available" in r.json()["detail"]
    assert nb.client.put(url, json={"python_version": "three"}).status_code == 422


def test_close_recents_and_workers(nb: Nb, tmp_path: Path) -> None:
    path = nb.manager.get(nb.sid).path
    workers = nb.client.get(f"{nb.base}/workers").json()
    assert [w["name"] for w in workers["workers"]] == ["local"]
    r = nb.client.post(
        "/v1/notebooks/recents/validate",
        json={"paths": [path, str(tmp_path), "/etc", "../x", "", "nope/nope"]},
    )
    assert r.status_code == 200 and r.json() == {"valid": [path]}
    r = nb.client.post(f"{nb.base}/close")
    assert r.json() == {"closed": True, "session_id": nb.sid, "path": path}
    assert nb.client.get(f"{nb.base}/cells").status_code == 404
    assert (Path(path) / "notebook.toml").is_file()  # the notebook stays


def test_artifacts_of_the_notebook(nb: Nb) -> None:
    a = nb.add("import pyarrow as pa\nt = pa.table({'x': [1]})")
    uri = nb.run(a)["outputs"]["t"]["artifact_uri"]
    assert nb.client.get(f"{nb.base}/artifacts").json() == {"cells": {}, "readers": {}}
    with QuiverClient(nb.location) as q:
        q.set_name("team/sales", uri)
    got = nb.client.get(f"{nb.base}/artifacts").json()
    assert [(p["name"], p["artifact_uri"]) for p in got["cells"][a]] == [("team/sales", uri)]


def test_registry_summary_and_artifacts(rest: Rest) -> None:
    assert rest.flight is not None
    with QuiverClient(rest.flight.location) as q:
        put = q.put(__import__("pyarrow").table({"x": [1, 2]}), name="sales")
        q.set_alias("sales", "prod", put["artifact_uri"])
        q.set_tag(put["artifact_id"], put["version"], "team", "growth")
    summary = rest.http.get("/v1/registry/summary").json()
    assert summary["names"] == [
        {
            "name": "sales",
            "artifact_uri": put["artifact_uri"],
            "artifact_id": put["artifact_id"],
            "current_version": put["version"],
            "aliases": {"prod": put["version"]},
            "tags": {"team": "growth"},
            "updated_at": summary["names"][0]["updated_at"],
        }
    ]
    tagged = rest.http.get("/v1/registry/artifacts", params={"tag_key": "team"}).json()
    assert [(a["name"], a["tag_value"]) for a in tagged["artifacts"]] == [("sales", "growth")]
    other = {"tag_key": "team", "tag_value": "ops"}
    assert rest.http.get("/v1/registry/artifacts", params=other).json() == {"artifacts": []}
    assert len(rest.http.get("/v1/registry/artifacts").json()["artifacts"]) == 1


def test_logs_page(rest: Rest) -> None:
    logging.getLogger("quiver.test").warning("hello %s", "logs")
    got = rest.http.get("/v1/logs", params={"level": "warning", "regex": "hello"}).json()
    entry = got["entries"][-1]
    assert entry["message"] == "hello logs" and entry["level"] == "warning"
    assert entry["logger"] == "quiver.test" and entry["cursor"] <= got["cursor"]
    after = rest.http.get("/v1/logs", params={"since": got["cursor"], "regex": "hello"}).json()
    assert after["entries"] == []
    bad = rest.http.get("/v1/logs", params={"regex": "("})
    assert bad.status_code == 400 and "invalid regex" in bad.json()["detail"]
    bad = rest.http.get("/v1/logs/stream", params={"regex": "("})
    assert bad.status_code == 400 and "invalid regex" in bad.json()["detail"]
    with httpx.stream(
        "GET", f"{rest.url}/v1/logs/stream", params={"since": 0, "regex": "hello"}, timeout=30
    ) as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        first = next(line for line in events.iter_lines() if line.startswith("data: "))
    assert '"hello logs"' in first


def test_the_ring_keeps_the_newest() -> None:
    ring = LogRing(capacity=3)
    log = logging.getLogger("quiver.ring")
    log.addHandler(ring)
    log.setLevel(logging.INFO)
    try:
        for i in range(5):
            log.info("m%d", i)
        log.debug("hidden")
    finally:
        log.removeHandler(ring)
    got = ring.read()
    assert [e["message"] for e in got["entries"]] == ["m2", "m3", "m4"] and got["cursor"] == 5
    assert ring.read(limit=1)["entries"][0]["message"] == "m4"
    assert ring.read(level="error")["entries"] == []
