"""strata-client 0.11 (PyPI), unchanged, against Quiver's REST facade.

strata-client needs Python >= 3.12 and this project runs on 3.11, so the client
runs in its own venv, made once under ``.venv/strata-client`` from an
interpreter found on PATH or under pyenv, and installed **offline** from the
wheel cache ``.venv/wheels`` that ``make test`` fills beforehand (``make
wheels``: the only step that needs the network, and it tolerates having none).
When either is missing the test is skipped with the reason, never passed.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from notebooks.execution.interpreters import discover
from tests.fixtures_flight import DEMO_ROWS

ROOT = Path(__file__).resolve().parents[1]
WHEELS = Path(os.environ.get("QUIVER_WHEELS", ROOT / ".venv" / "wheels"))
CLIENT_VENV = ROOT / ".venv" / "strata-client"


def _python_312() -> Path | None:
    found = discover()
    for version, path in sorted(found.items(), key=lambda kv: tuple(map(int, kv[0].split(".")))):
        if tuple(map(int, version.split("."))) >= (3, 12):
            return path
    return None


@pytest.fixture(scope="session")
def strata_python() -> Path:
    python = CLIENT_VENV / "bin" / "python"
    probe = [str(python), "-c", "import strata_client"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    base = _python_312()
    if base is None:
        pytest.skip("strata-client 0.11 needs Python >= 3.12: none on PATH or under pyenv")
    if not any(WHEELS.glob("strata_client-0.11.*.whl")):
        pytest.skip(
            f"no strata-client 0.11 wheel in {WHEELS}: run `make wheels` (needs the network once)"
        )
    subprocess.run([str(base), "-m", "venv", "--clear", str(CLIENT_VENV)], check=True)
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-index", "--find-links", str(WHEELS),
         "strata-client==0.11.*"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    if install.returncode != 0:
        pytest.skip(f"strata-client could not be installed offline from {WHEELS}: "
                    f"{install.stderr.strip().splitlines()[-1:]}")  # fmt: skip
    return python


FLOWS = textwrap.dedent(
    """
    import json, sys
    import httpx
    import pyarrow as pa
    from strata_client import StrataClient

    url, table_uri = sys.argv[1], sys.argv[2]
    out = {}
    scan = lambda *cols: {"executor": "scan@v1", "params": {"columns": list(cols)}}
    with StrataClient(base_url=url) as c:
        out["health"] = c.health()
        miss = c.materialize(inputs=[table_uri], transform=scan("id", "value"), name="events/v")
        out["miss"] = [miss.cache_hit, miss.execution, miss.to_table().num_rows]
        hit = c.materialize(inputs=[table_uri], transform=scan("id", "value"))
        out["hit"] = [hit.cache_hit, hit.uri == miss.uri, hit.to_table().num_rows]
        built = c.materialize(inputs=[table_uri], transform=scan("category"), mode="artifact",
                              poll_interval=0.05)
        out["artifact_mode"] = [built.cache_hit, c.fetch(built.uri).column_names]
        out["info"] = built.info()["state"]
        out["get_artifact"] = c.get_artifact(built.artifact_id, built.version).uri == built.uri
        sql = c.materialize(inputs=[miss.uri], mode="artifact", poll_interval=0.05,
                            transform={"ref": "duckdb_sql@v1",
                                       "params": {"sql": "select count(*) n from input0"}})
        out["sql"] = c.fetch(sql.uri).to_pylist()
        out["lineage"] = sorted(n["id"] for n in sql.lineage()["nodes"])
        out["dependents"] = [d["artifact_uri"] for d in miss.dependents()["dependents"]]
        up = c.put(inputs=[miss.uri], transform={"executor": "local@v1", "params": {}},
                   data=pa.table({"x": [1, 2]}), name="mine")
        again = c.put(inputs=[miss.uri], transform={"executor": "local@v1", "params": {}},
                      data={"x": [1, 2]})
        out["put"] = [up.cache_hit, again.cache_hit, again.uri == up.uri, c.fetch(up.uri).num_rows]
        doc = c.put_json(inputs=[], transform={"executor": "j@v1"}, data={"a": 1, "b": [1, 2, 3]})
        out["json"] = c.get_json(doc.uri)
        c.set_name("alias", up.artifact_id, up.version)
        out["resolve"] = c.resolve_name("alias")["artifact_uri"] == up.uri
        out["by_name"] = c.get_artifact_by_name("events/v").uri == miss.uri
        out["status"] = c.get_name_status("events/v")["is_stale"]
        out["explain"] = c.explain_materialize(inputs=[table_uri], transform=scan("id", "value"),
                                               name="events/v")["cache_hit"]
        out["list"] = len(c.list_artifacts(limit=100)["artifacts"])
        out["list_named"] = len(c.list_artifacts(name_prefix="events/")["artifacts"])
        out["delete"] = c.delete_artifact(sql.artifact_id, sql.version)["status"]
        out["gc"] = sorted(c.garbage_collect())
        # unnamed and nothing named depends on them: the category scan and the JSON upload
        dry = c.garbage_collect(max_idle_days=0, dry_run=True)
        out["gc_dry"] = sorted(x["artifact_uri"] for x in dry["collected"]) == sorted(
            [built.uri, doc.uri])
        out["gc_dry_kept"] = c.fetch(built.uri).num_rows
        real = c.garbage_collect(max_idle_days=0, min_idle_seconds=0)
        out["gc_same"] = sorted(x["artifact_uri"] for x in real["collected"]) == sorted(
            x["artifact_uri"] for x in dry["collected"])  # the fetch above reordered them
        out["gc_counts"] = [dry["deleted_count"], real["deleted_count"], real["store_bytes"] > 0]
        try:
            c.fetch(built.uri)
        except httpx.HTTPStatusError as exc:
            out["gc_gone"] = exc.response.status_code
        out["gc_named_left"] = [c.get_artifact_by_name("events/v").to_table().num_rows,
                                c.fetch(up.uri).num_rows]
        try:
            c.garbage_collect(max_idle_days=-1)
        except httpx.HTTPStatusError as exc:
            out["gc_bad"] = [exc.response.status_code, exc.response.json()["detail"][0]["loc"]]
    print(json.dumps(out))
    """
)


def run_flow(python: Path, script: Path, source: str, *args: str) -> dict:
    """Run a strata-client script with ``args``; the JSON object its last line prints."""
    script.write_text(source)
    done = subprocess.run(
        [str(python), str(script), *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_strata_client_flows(strata_python, rest, demo_table, tmp_path) -> None:
    out = run_flow(strata_python, tmp_path / "flows.py", FLOWS, rest.url, demo_table.uri)
    assert out["health"] == {"status": "ok"}
    assert out["miss"][0] is False and out["miss"][2] == 20_000
    assert out["hit"] == [True, True, 20_000]
    assert out["artifact_mode"] == [False, ["category"]] and out["info"] == "ready"
    assert out["get_artifact"] is True
    assert out["sql"] == [{"n": 20_000}]
    assert demo_table.uri in out["lineage"] and len(out["lineage"]) == 3
    assert len(out["dependents"]) == 1
    assert out["put"] == [False, True, True, 2]
    assert out["json"] == {"a": 1, "b": [1, 2, 3]}
    assert out["resolve"] and out["by_name"] and out["status"] is False and out["explain"] is True
    assert out["list"] >= 5 and out["list_named"] == 1
    assert out["delete"] == "deleted"
    assert {"deleted_count", "deleted_bytes", "store_bytes", "collected"} <= set(out["gc"])
    assert out["gc_dry"] is True and out["gc_dry_kept"] == DEMO_ROWS
    assert out["gc_same"] is True and out["gc_counts"] == [2, 2, True]
    assert out["gc_gone"] == 404 and out["gc_named_left"] == [DEMO_ROWS, 2]
    assert out["gc_bad"] == [422, ["query", "max_idle_days"]]


REGISTRY_FLOW = textwrap.dedent(
    """
    import json, sys
    import httpx
    from strata_client import StrataClient

    url = sys.argv[1]
    out = {}
    train = lambda run: {"executor": "train@v1", "params": {"run": run}}
    with StrataClient(base_url=url) as c:
        v1 = c.put(inputs=[], transform=train(1), data={"auc": [0.88]})
        v2 = c.put(inputs=[], transform=train(2), data={"auc": [0.91]})
        m = "models/fraud"
        out["set"] = [c.set_alias(m, "champion", v1.artifact_id, v1.version)["status"],
                      c.set_alias(m, "champion", v1.artifact_id, v1.version)["status"]]
        out["resolve"] = c.resolve_alias(m, "champion")["artifact_uri"] == v1.uri
        c.set_alias(m, "challenger", v2.artifact_id, v2.version)
        out["list"] = [[a["alias"], a["artifact_id"] == v2.artifact_id] for a in c.list_aliases(m)]
        out["pending"] = c.set_alias(m, "prod", v2.artifact_id, v2.version)["status"]
        try:
            c.resolve_alias(m, "prod")
        except httpx.HTTPStatusError as exc:
            out["not_yet"] = exc.response.status_code
        out["queue"] = [[p["name"], p["alias"], p["artifact_uri"] == v2.uri]
                        for p in c.list_pending_changes()]
        out["approve"] = c.approve_alias_change(m, "prod")["status"]
        out["prod"] = c.resolve_alias(m, "prod")["artifact_uri"] == v2.uri
        c.set_alias(m, "prod", v1.artifact_id, v1.version)
        out["reject"] = c.reject_alias_change(m, "prod")["status"]
        out["still"] = c.resolve_alias(m, "prod")["artifact_uri"] == v2.uri
        c.set_tag(v2.artifact_id, v2.version, "auc", 0.91)
        c.set_tag(v2.artifact_id, v2.version, "owner", "risk")
        out["tags"] = c.get_tags(v2.artifact_id, v2.version)
        c.delete_tag(v2.artifact_id, v2.version, "owner")
        out["tags_after"] = c.get_tags(v2.artifact_id, v2.version)
        out["delete_alias"] = c.delete_alias(m, "challenger")["status"]
        out["audit"] = [e["action"] for e in c.get_registry_audit(name=m)]
        out["audit_v2"] = [e["action"]
                           for e in c.get_registry_audit(artifact_id=v2.artifact_id, limit=3)]
        dry = c.garbage_collect(max_idle_days=0, dry_run=True)
        out["gc_keeps_aliased"] = dry["collected"] == []
    print(json.dumps(out))
    """
)


def test_strata_client_registry_flow(strata_python, make_rest, tmp_path) -> None:
    rest = make_rest(protected_aliases=["prod"])
    out = run_flow(strata_python, tmp_path / "registry.py", REGISTRY_FLOW, rest.url)
    assert out["set"] == ["applied", "unchanged"] and out["resolve"] is True
    assert out["list"] == [["challenger", True], ["champion", False]]
    assert out["pending"] == "pending" and out["not_yet"] == 404
    assert out["queue"] == [["models/fraud", "prod", True]]
    assert out["approve"] == "applied" and out["prod"] is True
    assert out["reject"] == "rejected" and out["still"] is True
    assert out["tags"] == {"auc": "0.91", "owner": "risk"} and out["tags_after"] == {"auc": "0.91"}
    assert out["delete_alias"] == "deleted"
    assert out["audit"] == ["alias.delete", "alias.reject", "alias.request", "alias.approve",
                            "alias.request", "alias.set", "alias.set"]  # fmt: skip
    assert out["audit_v2"] == ["alias.delete", "tag.delete", "tag.set"]
    assert out["gc_keeps_aliased"] is True


PROVENANCE_FLOW = textwrap.dedent(
    """
    import asyncio, hashlib, json, sys
    import httpx
    import pyarrow as pa
    from strata_client import AsyncStrataClient, StrataClient

    url, table_uri = sys.argv[1], sys.argv[2]
    out = {}
    key = hashlib.sha256(b"notebook n1, cell c1, df").hexdigest()
    blob = bytes(range(256)) * 100
    with StrataClient(base_url=url) as c:
        out["miss"] = c.find_by_provenance(key)
        put = c.put_by_provenance(key, blob, content_type="application/x-pickle",
                                  variable_name="df")
        out["put"] = [put["hit"], put["byte_size"] > len(blob)]
        found = c.find_by_provenance(key)
        out["found"] = [found["artifact_uri"] == put["artifact_uri"], found["content_type"],
                        found["variable_name"], found["state"]]
        # the value comes back byte-exact through the client's own fetch
        out["exact"] = c.fetch(found["artifact_uri"]).column("blob")[0].as_py() == blob
        again = c.put_by_provenance(key, b"late", content_type="text/plain")
        out["again"] = [again["hit"], again["artifact_uri"] == put["artifact_uri"]]
        try:
            c.find_by_provenance("NOT-A-HASH")
        except httpx.HTTPStatusError as exc:
            out["bad"] = exc.response.status_code
        art = c.materialize(inputs=[table_uri],
                            transform={"executor": "scan@v1", "params": {"columns": ["id"]}})
        art.to_table()
        cleared = c.clear_cache()
        out["clear"] = [cleared["status"], cleared["artifacts_deleted"]]
        out["after_clear"] = [c.find_by_provenance(key)["artifact_uri"] == put["artifact_uri"],
                              c.fetch(art.uri).num_rows]
        metrics = c.metrics()
        out["metrics"] = sorted(k for k in ("arrow_memory", "gc", "resource_limits",
                                            "thread_pools", "connections", "disk_cache")
                                if k in metrics)
        out["health"] = c.health()

    async def run_async():
        async with AsyncStrataClient(base_url=url) as a:
            hit = await a.find_by_provenance(key)
            miss = await a.find_by_provenance(hashlib.sha256(b"nobody").hexdigest())
            cleared = await a.clear_cache()
            metrics = await a.metrics()
            return [hit["artifact_uri"], miss, cleared["status"], "disk_cache" in metrics]

    found_async = asyncio.run(run_async())
    out["async"] = [found_async[0] == put["artifact_uri"], *found_async[1:]]
    print(json.dumps(out))
    """
)


def test_strata_client_provenance_cache_and_metrics(
    strata_python, rest, demo_table, tmp_path
) -> None:
    out = run_flow(
        strata_python, tmp_path / "provenance.py", PROVENANCE_FLOW, rest.url, demo_table.uri
    )
    assert out["miss"] is None
    assert out["put"] == [False, True]
    assert out["found"] == [True, "application/x-pickle", "df", "ready"]
    assert out["exact"] is True
    assert out["again"] == [True, True]
    assert out["bad"] == 400
    assert out["clear"] == ["cleared", 0]
    assert out["after_clear"] == [True, DEMO_ROWS]
    assert out["metrics"] == sorted(["arrow_memory", "gc", "resource_limits", "thread_pools",
                                     "connections", "disk_cache"])  # fmt: skip
    assert out["health"] == {"status": "ok"}
    assert out["async"] == [True, None, "cleared", True]
