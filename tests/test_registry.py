"""The registry (docs/registry.md): aliases, protected aliases, tags and the audit.

In the store against real SQLite and IPC files; over a real Flight server; and
through the real REST app under uvicorn (every REST test runs over both
transports, see tests/fixtures_rest.py).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.flight as fl
import pytest

from catalog import ArtifactInfo, ArtifactStore, InputVersion, Registry
from flight import QuiverClient
from foundation import Conflict, InvalidArgument, NotFound
from tests.fixtures_flight import GATES, ServerFactory, act, gated_request
from tests.fixtures_rest import Rest

Key = tuple[str, int]


# --- helpers ----------------------------------------------------------------------------
def put(store: ArtifactStore, prov: str, n: int = 10, **kw: Any) -> ArtifactInfo:
    data = pa.table({"id": pa.array(range(n), pa.int64())})
    return store.put(data.to_reader(max_chunksize=4), provenance=prov, **kw)


def derived_from(store: ArtifactStore, prov: str, *parents: ArtifactInfo) -> ArtifactInfo:
    inputs = [InputVersion(p.uri, p.uri, p.artifact_id, p.version) for p in parents]
    return put(store, prov, kind="derived", inputs=inputs)


def key(info: ArtifactInfo) -> Key:
    return (info.artifact_id, info.version)


def uris(report: dict[str, Any]) -> list[str]:
    return [c["artifact_uri"] for c in report["collected"]]


def exists(store: ArtifactStore, info: ArtifactInfo) -> bool:
    try:
        store.get(info.artifact_id, info.version)
    except NotFound:
        return False
    return store.path_of(info.artifact_id, info.version).exists()


def actions(entries: list[dict[str, Any]]) -> list[str]:
    return [e["action"] for e in entries]


# --- the store: aliases ------------------------------------------------------------------
def test_aliases_point_move_list_and_delete(store: ArtifactStore) -> None:
    reg = Registry(store)
    a, b = put(store, "a"), put(store, "b")
    first = reg.set_alias("models/fraud", "champion", *key(a), actor="ann")
    assert (first.status, first.target) == ("applied", key(a))
    assert reg.set_alias("models/fraud", "champion", *key(a)).status == "unchanged"
    assert reg.set_alias("models/fraud", "champion", *key(b), actor="bob").status == "applied"
    got = reg.get_alias("models/fraud", "champion")
    assert (got.artifact_id, got.version, got.artifact_uri) == (*key(b), b.uri)
    reg.set_alias("models/fraud", "challenger", *key(a))
    assert [x.alias for x in reg.list_aliases("models/fraud")] == ["challenger", "champion"]
    assert reg.aliases_of(*key(a)) == ["models/fraud@challenger"]
    assert reg.delete_alias("models/fraud", "challenger").status == "deleted"
    assert [x.alias for x in reg.list_aliases("models/fraud")] == ["champion"]

    entries = reg.audit(name="models/fraud")
    assert actions(entries) == ["alias.delete", "alias.set", "alias.set", "alias.set"]
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)
    moved = entries[2]  # champion a -> b, by bob; the "unchanged" set left no entry
    assert (moved["actor"], moved["alias"]) == ("bob", "champion")
    assert (moved["from_artifact_uri"], moved["to_artifact_uri"]) == (a.uri, b.uri)
    assert (moved["from_version"], moved["to_version"]) == (1, 1)
    created = entries[3]
    assert (created["actor"], created["from_artifact_id"], created["to_artifact_id"]) == (
        "ann",
        None,
        a.artifact_id,
    )
    gone = entries[0]
    assert (gone["from_artifact_uri"], gone["to_artifact_uri"]) == (a.uri, None)
    assert gone["actor"] is None
    assert all(e["at"] > 0 for e in entries)


def test_a_registry_name_need_not_be_a_name_first(store: ArtifactStore) -> None:
    reg = Registry(store)
    a = put(store, "a")
    store.set_name("plain", *key(a))
    assert reg.list_aliases("plain") == []  # a plain name holds no alias yet
    reg.set_alias("only/aliases", "champion", *key(a))  # no plain name "only/aliases"
    assert [x.alias for x in reg.list_aliases("only/aliases")] == ["champion"]
    with pytest.raises(NotFound, match="Name 'only/aliases' not found"):
        store.get_name("only/aliases")  # aliases and the name pointer are independent
    store.delete_name("plain")
    with pytest.raises(NotFound, match=r"^Name 'plain' not found$"):
        reg.list_aliases("plain")


def test_alias_errors_are_precise(store: ArtifactStore) -> None:
    reg = Registry(store)
    a = put(store, "a")
    reg.set_alias("m", "champion", *key(a))
    with pytest.raises(NotFound, match=r"^Name 'nope' not found$"):
        reg.get_alias("nope", "champion")
    with pytest.raises(NotFound, match=r"^Name 'nope' not found$"):
        reg.list_aliases("nope")
    with pytest.raises(NotFound, match=r"^Name 'nope' not found$"):
        reg.delete_alias("nope", "champion")
    with pytest.raises(NotFound, match=r"^Alias 'prod' of name 'm' not found$"):
        reg.get_alias("m", "prod")
    with pytest.raises(NotFound, match=r"^Alias 'prod' of name 'm' not found$"):
        reg.delete_alias("m", "prod")
    for bad in ("bad alias", "", "-lead", "a/b", "x" * 65, "é"):
        with pytest.raises(InvalidArgument, match="invalid alias"):
            reg.set_alias("m", bad, *key(a))
    with pytest.raises(InvalidArgument, match="invalid name"):
        reg.set_alias("a/../b", "champion", *key(a))
    with pytest.raises(NotFound, match=r"artifact strata://artifact/nope@v=1 not found"):
        reg.set_alias("m", "champion", "nope", 1)
    with pytest.raises(NotFound, match=rf"artifact {a.uri[:-1]}2 not found"):
        reg.set_alias("m", "champion", a.artifact_id, 2)
    assert reg.audit() and actions(reg.audit()) == ["alias.set"]  # failures record nothing


def test_an_alias_points_only_at_readable_versions(store: ArtifactStore) -> None:
    reg = Registry(store)
    a = put(store, "a")
    building = store.begin_build(provenance="b", executor=None, params=None, inputs=[])
    with pytest.raises(Conflict, match="it is building, not ready"):
        reg.set_alias("m", "champion", building.artifact_id, building.version)
    building.fail(RuntimeError("boom"))
    with pytest.raises(Conflict, match="it is failed, not ready"):
        reg.set_alias("m", "champion", building.artifact_id, building.version)
    refresh = store.begin_build(provenance="a", executor=None, params=None, inputs=[],
                                artifact_id=a.artifact_id)  # fmt: skip
    refresh.write_reader(pa.table({"id": [1]}).to_reader())
    refresh.publish()
    assert store.get(*key(a)).state == "superseded"
    assert reg.set_alias("m", "previous", *key(a)).status == "applied"  # a rollback target


def test_versions_sqlite_cannot_hold_are_not_found(store: ArtifactStore) -> None:
    reg = Registry(store)
    a = put(store, "a")
    reg.set_alias("m", "champion", *key(a))
    huge = 2**64
    missing = rf"^artifact strata://artifact/{a.artifact_id}@v={huge} not found$"
    for call in (
        lambda: reg.set_alias("m", "champion", a.artifact_id, huge),
        lambda: reg.set_alias("m", "prod", a.artifact_id, huge, protected=True),
        lambda: reg.set_tag(a.artifact_id, huge, "k", "v"),
        lambda: reg.tags(a.artifact_id, huge),
        lambda: reg.delete_tag(a.artifact_id, huge, "k"),
    ):
        with pytest.raises(NotFound, match=missing):
            call()
    assert reg.aliases_of(a.artifact_id, huge) == []
    assert reg.pending() == [] and actions(reg.audit()) == ["alias.set"]


# --- the store: protected aliases ------------------------------------------------------
def test_an_approval_refused_leaves_the_change_pending_and_unaudited(
    store: ArtifactStore,
) -> None:
    reg = Registry(store)
    a = put(store, "a")
    reg.set_alias("m", "prod", *key(a), actor="ann", protected=True)
    entries = len(reg.audit())
    with open(store.path_of(a.artifact_id, 1), "r+b") as f:  # damaged after the request
        f.truncate(8)
    assert not store.verify(store.get(a.artifact_id, 1))  # now failed
    with pytest.raises(Conflict, match=r"it is failed, not ready"):
        reg.approve("m", "prod", actor="bob")
    [change] = reg.pending()
    assert (change.op, change.target) == ("set", key(a)) and len(reg.audit()) == entries
    assert reg.reject("m", "prod", actor="bob").status == "rejected" and reg.pending() == []


def test_protected_alias_changes_wait_for_approval(store: ArtifactStore) -> None:
    reg = Registry(store)
    a, b = put(store, "a"), put(store, "b")
    asked = reg.set_alias("m", "prod", *key(a), actor="ann", protected=True)
    assert (asked.status, asked.target) == ("pending", key(a))
    assert "protected" in (asked.detail or "") and a.uri in (asked.detail or "")
    with pytest.raises(NotFound, match="Alias 'prod' of name 'm' not found"):
        reg.get_alias("m", "prod")  # nothing changed
    [change] = reg.pending()
    assert (change.op, change.target, change.requested_by, change.current) == (
        "set",
        key(a),
        "ann",
        None,
    )
    entries = len(reg.audit())
    assert reg.set_alias("m", "prod", *key(a), protected=True).status == "pending"  # same ask
    assert len(reg.audit()) == entries
    with pytest.raises(Conflict, match=rf"already pending \(set to {a.uri} by ann\)"):
        reg.set_alias("m", "prod", *key(b), actor="cy", protected=True)

    done = reg.approve("m", "prod", actor="bob")
    assert (done.status, done.target) == ("applied", key(a))
    assert key_of(reg.get_alias("m", "prod")) == key(a) and reg.pending() == []
    with pytest.raises(NotFound, match=r"^No pending change of alias 'prod' of name 'm'$"):
        reg.approve("m", "prod")
    with pytest.raises(NotFound, match="No pending change"):
        reg.reject("m", "prod")
    assert reg.set_alias("m", "prod", *key(a), protected=True).status == "unchanged"

    reg.set_alias("m", "prod", *key(b), actor="ann", protected=True)
    assert reg.pending()[0].current == key(a)
    rejected = reg.reject("m", "prod", actor="bob")
    assert (rejected.status, rejected.target) == ("rejected", key(a))
    assert key_of(reg.get_alias("m", "prod")) == key(a)

    gone = reg.delete_alias("m", "prod", actor="ann", protected=True)
    assert (gone.status, gone.op) == ("pending", "delete")
    assert reg.pending()[0].json()["current_artifact_uri"] == a.uri
    assert key_of(reg.get_alias("m", "prod")) == key(a)
    assert reg.approve("m", "prod", actor="bob").status == "deleted"
    with pytest.raises(NotFound, match=r"^Name 'm' not found$"):  # its last alias went
        reg.get_alias("m", "prod")

    log = reg.audit(name="m")
    assert [(e["action"], e["op"], e["actor"], e["requested_by"]) for e in log] == [
        ("alias.approve", "delete", "bob", "ann"),
        ("alias.request", "delete", "ann", None),
        ("alias.reject", "set", "bob", "ann"),
        ("alias.request", "set", "ann", None),
        ("alias.approve", "set", "bob", "ann"),
        ("alias.request", "set", "ann", None),
    ]
    assert (log[2]["from_artifact_uri"], log[2]["to_artifact_uri"]) == (a.uri, b.uri)
    assert (log[0]["from_artifact_uri"], log[0]["to_artifact_uri"]) == (a.uri, None)


def key_of(info: Any) -> Key:
    return (info.artifact_id, info.version)


# --- the store: tags -------------------------------------------------------------------
def test_tags_on_a_version(store: ArtifactStore) -> None:
    reg = Registry(store)
    a = put(store, "a")
    assert reg.tags(*key(a)) == {}
    assert reg.set_tag(*key(a), "auc", "0.91", actor="ann") == "applied"
    assert reg.set_tag(*key(a), "auc", "0.91") == "unchanged"
    assert reg.set_tag(*key(a), "auc", "0.93", actor="bob") == "applied"
    reg.set_tag(*key(a), "stage:data", "")
    assert reg.tags(*key(a)) == {"auc": "0.93", "stage:data": ""}
    reg.delete_tag(*key(a), "stage:data")
    assert reg.tags(*key(a)) == {"auc": "0.93"}
    with pytest.raises(NotFound, match=rf"^Tag 'stage:data' not found on {a.uri}$"):
        reg.delete_tag(*key(a), "stage:data")
    with pytest.raises(NotFound, match="artifact strata://artifact/nope@v=1 not found"):
        reg.set_tag("nope", 1, "auc", "1")
    with pytest.raises(NotFound, match="not found"):
        reg.tags("nope", 1)
    for bad in ("bad key", "", "a/b", ".x"):
        with pytest.raises(InvalidArgument, match="invalid tag key"):
            reg.set_tag(*key(a), bad, "1")
    with pytest.raises(InvalidArgument, match="longer than 4096"):
        reg.set_tag(*key(a), "big", "x" * 4097)
    log = reg.audit(artifact_id=a.artifact_id)
    assert [(e["action"], e["key"], e["from_value"], e["to_value"], e["actor"]) for e in log] == [
        ("tag.delete", "stage:data", "", None, None),
        ("tag.set", "stage:data", None, "", None),
        ("tag.set", "auc", "0.91", "0.93", "bob"),
        ("tag.set", "auc", None, "0.91", "ann"),
    ]
    assert {e["artifact_uri"] for e in log} == {a.uri}


# --- the store: gc, eviction and deletes ---------------------------------------------
def test_gc_keeps_aliased_versions_pending_targets_and_their_lineage(store: ArtifactStore) -> None:
    reg = Registry(store)
    base = put(store, "base")
    top = derived_from(store, "top", base)
    proposed = put(store, "proposed")
    loose = put(store, "loose")
    reg.set_alias("m", "champion", *key(top))
    reg.set_alias("m", "prod", *key(proposed), protected=True)  # pending: kept as well
    assert store.needed() >= {key(base), key(top), key(proposed)}
    assert store.usage()["unreferenced_count"] == 1
    assert uris(store.gc(max_idle_s=0, dry_run=True)) == [loose.uri]
    assert uris(store.gc(max_bytes=0)) == [loose.uri]  # collect all the rules allow
    assert all(exists(store, x) for x in (base, top, proposed))

    reg.reject("m", "prod")
    reg.delete_alias("m", "champion")
    assert set(uris(store.gc(max_idle_s=0))) == {base.uri, top.uri, proposed.uri}
    assert store.list() == []


def test_eviction_spares_an_aliased_version_and_what_it_depends_on(tmp_path: Path) -> None:
    with ArtifactStore(tmp_path / "s") as store:
        reg = Registry(store)
        base = put(store, "base", 1000)
        store.max_bytes = int(base.byte_size * 2.5)
        aliased = derived_from(store, "aliased", base)
        reg.set_alias("m", "champion", *key(aliased))
        loose = put(store, "loose", 1000)  # over the cap, but just built: kept
        last = put(store, "last", 1000)  # loose goes; base and aliased are needed
        assert all(exists(store, x) for x in (base, aliased, last))
        assert not exists(store, loose)


def test_deleting_an_aliased_version_is_refused(store: ArtifactStore) -> None:
    reg = Registry(store)
    a, b = put(store, "a"), put(store, "b")
    reg.set_alias("m", "champion", *key(a))
    store.set_name("n", *key(a))
    reg.set_tag(*key(a), "auc", "0.9")
    with pytest.raises(Conflict, match=rf"^artifact {a.uri} is aliased as m@champion: "):
        store.delete(*key(a))
    assert exists(store, a) and store.get_name("n").version == 1
    assert reg.tags(*key(a)) == {"auc": "0.9"}
    reg.set_alias("m", "prod", *key(b), protected=True)
    with pytest.raises(Conflict, match=r"aliased as m@prod \(pending\)"):
        store.delete(*key(b))

    reg.delete_alias("m", "champion")
    store.delete(*key(a))  # now it goes, with its name and its tags
    assert not exists(store, a)
    with pytest.raises(NotFound):
        store.get_name("n")
    log = reg.audit(artifact_id=a.artifact_id)
    assert actions(log)[:2] == ["tag.delete", "name.delete"]
    assert all(e["note"] == f"artifact version {a.uri} deleted" for e in log[:2])
    # a later version with the same number does not inherit the tags
    again = store.begin_build(provenance="a2", executor=None, params=None, inputs=[],
                              artifact_id=a.artifact_id)  # fmt: skip
    again.write_reader(pa.table({"id": [1]}).to_reader())
    assert again.publish().version == 1
    assert reg.tags(*key(a)) == {}


# --- the store: the audit ----------------------------------------------------------------
def test_name_changes_are_audited(store: ArtifactStore) -> None:
    reg = Registry(store)
    a, b = put(store, "a"), put(store, "b")
    store.set_name("n", *key(a))
    store.set_name("n", *key(a))  # a materialize hit re-points the name: not a change
    store.set_name("n", *key(b))
    store.delete_name("n")
    log = reg.audit(name="n")
    assert [(e["action"], e["from_artifact_uri"], e["to_artifact_uri"]) for e in log] == [
        ("name.delete", b.uri, None),
        ("name.set", a.uri, b.uri),
        ("name.set", None, a.uri),
    ]
    assert {e["actor"] for e in log} == {None}


def test_the_audit_is_append_only_filtered_and_survives_a_restart(tmp_path: Path) -> None:
    with ArtifactStore(tmp_path / "s") as store:
        reg = Registry(store)
        a, b = put(store, "a"), put(store, "b")
        reg.set_alias("m", "champion", *key(a))
        reg.set_alias("other", "champion", *key(b))
        reg.set_alias("m", "champion", *key(b))
        reg.set_tag(*key(a), "auc", "1")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            store.db.execute("UPDATE registry_audit SET actor='mallory'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            store.db.execute("DELETE FROM registry_audit")
        assert len(reg.audit()) == 4
        assert len(reg.audit(limit=2)) == 2 and reg.audit(limit=1)[0]["action"] == "tag.set"
        touching_a = reg.audit(artifact_id=a.artifact_id)  # to, from, and the tagged version
        assert actions(touching_a) == ["tag.set", "alias.set", "alias.set"]
        assert actions(reg.audit(name="m", artifact_id=b.artifact_id)) == ["alias.set"]
        assert reg.audit(name="nobody") == []
        with pytest.raises(InvalidArgument, match="limit"):
            reg.audit(limit=0)
    with ArtifactStore(tmp_path / "s") as store:
        reg = Registry(store)
        assert key_of(reg.get_alias("m", "champion")) == key(b)
        assert len(reg.audit()) == 4 and reg.tags(*key(a)) == {"auc": "1"}


# --- over Flight ------------------------------------------------------------------------
def flight_error(client: fl.FlightClient, name: str, body: Any) -> tuple[str, dict[str, Any]]:
    with pytest.raises(fl.FlightServerError) as info:
        act(client, name, body)
    message = str(info.value)
    assert "Traceback" not in message and 'File "' not in message
    return message, json.loads(info.value.extra_info)


def test_flight_registry_actions_and_clean_errors(make_flight_server: ServerFactory) -> None:
    server = make_flight_server(protected_aliases=["prod"])
    client = fl.connect(server.location)
    with QuiverClient(server.location) as q:
        a = q.put(pa.table({"x": [1, 2]}), name="plain")
        b = q.put(pa.table({"x": [3]}))
    listed = {x.type for x in client.list_actions()}
    assert {"alias-set", "alias-get", "alias-list", "alias-delete", "alias-pending",
            "alias-approve", "alias-reject", "tag-set", "tag-list", "tag-delete",
            "registry-audit"} <= listed  # fmt: skip

    champion = {"name": "m", "alias": "champion", "actor": "ann"}
    by_name = act(client, "alias-set", {**champion, "artifact_uri": "strata://name/plain"})
    assert (by_name["status"], by_name["artifact_uri"]) == ("applied", a["artifact_uri"])
    got = act(client, "alias-get", {"name": "m", "alias": "champion"})
    assert got["state"] == "ready" and got["version"] == 1
    assert act(client, "alias-list", {"name": "m"})["aliases"][0]["alias"] == "champion"
    pending = act(client, "alias-set", {"name": "m", "alias": "prod",
                                        "artifact_id": b["artifact_id"], "version": 1})  # fmt: skip
    assert pending["status"] == "pending" and pending["detail"]
    assert act(client, "alias-pending", {})["pending"][0]["artifact_uri"] == b["artifact_uri"]
    assert act(client, "alias-approve", {"name": "m", "alias": "prod"})["status"] == "applied"
    tag = {"artifact_id": b["artifact_id"], "version": 1}
    assert act(client, "tag-set", {**tag, "key": "auc", "value": "0.9"})["status"] == "applied"
    assert act(client, "tag-list", tag)["tags"] == {"auc": "0.9"}
    assert act(client, "tag-delete", {**tag, "key": "auc"})["status"] == "deleted"
    audit = act(client, "registry-audit", {"name": "m", "limit": 10})
    assert [e["action"] for e in audit["entries"]] == ["alias.approve", "alias.request",
                                                       "alias.set"]  # fmt: skip
    assert audit["entries"][-1]["actor"] == "ann"

    bad = {"name": "m", "alias": "bad alias", "artifact_uri": b["artifact_uri"]}
    message, info = flight_error(client, "alias-set", bad)
    assert info["code"] == "invalid_argument" and "invalid alias 'bad alias'" in message
    _, info = flight_error(client, "alias-get", {"name": "m", "alias": "nope"})
    assert info["code"] == "not_found" and info["detail"] == {"name": "m", "alias": "nope"}
    _, info = flight_error(client, "tag-list", {"artifact_id": "nope", "version": 1})
    assert info["code"] == "not_found"
    _, info = flight_error(client, "alias-get", {"name": "m", "alias": "x", "extra": 1})
    assert info["code"] == "invalid_argument"
    _, info = flight_error(client, "registry-audit", {"limit": 0})
    assert info["code"] == "invalid_argument"
    message, info = flight_error(client, "delete", {"artifact_uri": b["artifact_uri"]})
    assert info["code"] == "conflict" and "aliased as m@prod" in message
    assert info["detail"]["aliases"] == ["m@prod"]
    client.close()


def test_text_that_is_not_unicode_is_refused_cleanly(make_flight_server: ServerFactory) -> None:
    """JSON may escape a lone surrogate ("\\ud800"); SQLite cannot store it as text."""
    server = make_flight_server()
    client = fl.connect(server.location)
    with QuiverClient(server.location) as q:
        a = q.put(pa.table({"x": [1]}), name="plain")
    lone = "\ud800"
    tag = {"artifact_id": a["artifact_id"], "version": 1}
    target = {"name": "m", "alias": "champion", "artifact_uri": a["artifact_uri"]}
    for name, body, field in [
        ("tag-set", {**tag, "key": "k", "value": f"x{lone}"}, "tag value"),
        ("tag-set", {**tag, "key": "k", "value": "v", "actor": lone}, "actor"),
        ("alias-set", {**target, "actor": lone}, "actor"),
        ("registry-audit", {"artifact_id": lone}, "artifact_id"),
        ("registry-audit", {"name": lone}, "name"),
    ]:
        message, info = flight_error(client, name, body)
        assert info["code"] == "invalid_argument" and field in message, (name, message)
    assert act(client, "tag-list", tag)["tags"] == {}
    assert act(client, "registry-audit", {})["entries"][0]["action"] == "name.set"
    for name in ("name-get", "name-delete"):  # a name that no name can be
        message, info = flight_error(client, name, {"name": lone})
        assert info["code"] == "invalid_argument" and "invalid name" in message
    assert act(client, "name-list", {"prefix": lone}) == {"names": []}
    client.close()


def test_the_python_client_drives_the_registry(make_flight_server: ServerFactory) -> None:
    server = make_flight_server(protected_aliases=["prod"])
    with QuiverClient(server.location) as q:
        a = q.put(pa.table({"x": [1]}))
        b = q.put(pa.table({"x": [2]}))
        assert q.set_alias("m", "champion", a["artifact_uri"], actor="ann")["status"] == "applied"
        assert q.get_alias("m", "champion")["artifact_uri"] == a["artifact_uri"]
        assert [x["alias"] for x in q.list_aliases("m")] == ["champion"]
        assert q.set_alias("m", "prod", b["artifact_uri"])["status"] == "pending"
        assert [p["alias"] for p in q.pending_changes()] == ["prod"]
        assert q.reject_alias_change("m", "prod", actor="bob")["status"] == "rejected"
        q.set_alias("m", "prod", b["artifact_uri"])
        assert q.approve_alias_change("m", "prod")["status"] == "applied"
        assert q.set_tag(b["artifact_id"], 1, "auc", "0.9")["status"] == "applied"
        assert q.get_tags(b["artifact_id"], 1) == {"auc": "0.9"}
        q.delete_tag(b["artifact_id"], 1, "auc")
        assert q.delete_alias("m", "champion")["status"] == "deleted"
        log = q.registry_audit(name="m", limit=2)
        assert [e["action"] for e in log] == ["alias.delete", "alias.approve"]
        assert len(q.registry_audit(artifact_id=b["artifact_id"])) == 6
        with pytest.raises(NotFound, match=r"^Name 'nope' not found$"):
            q.list_aliases("nope")
        with pytest.raises(Conflict, match="aliased as m@prod"):
            q.delete(b["artifact_uri"])


# --- over REST ----------------------------------------------------------------------------
def upload(http: httpx.Client, tag: str) -> dict[str, Any]:
    """A small artifact through ``PUT /v1/artifacts`` (distinct per ``tag``)."""
    transform = {"executor": "test@v1", "params": {"tag": tag}}
    response = http.put("/v1/artifacts", json={"inputs": [], "transform": transform,
                                               "data": {"x": [1, 2, 3]}})  # fmt: skip
    assert response.status_code == 200, response.text
    return response.json()


def expect(
    response: httpx.Response, status: int, detail: str | None = None, *, has: str | None = None
) -> Any:
    """The JSON body, once the status is right; ``detail`` is the whole error, ``has`` a part."""
    assert response.status_code == status, response.text
    body = response.json()
    if detail is not None:
        assert body["detail"] == detail, body
    if has is not None:
        assert has in body["detail"], body
    return body


def target(artifact: dict[str, Any]) -> dict[str, Any]:
    return {"artifact_id": artifact["artifact_id"], "version": artifact["version"]}


def test_rest_alias_routes(rest: Rest) -> None:
    http = rest.http
    a, b = upload(http, "a"), upload(http, "b")
    path = "/v1/names/models/fraud/aliases/champion"
    applied = expect(http.put(path, json=target(a)), 200)
    assert applied == {"status": "applied", "name": "models/fraud", "alias": "champion",
                       "artifact_uri": a["artifact_uri"]}  # fmt: skip
    assert expect(http.put(path, json=target(a)), 200)["status"] == "unchanged"
    expect(http.put(path, json=target(b)), 200)
    got = expect(http.get(path), 200)
    fields = ("name", "alias", "artifact_uri", "artifact_id", "version", "state")
    assert {k: got[k] for k in fields} == {
        "name": "models/fraud",
        "alias": "champion",
        "artifact_uri": b["artifact_uri"],
        "artifact_id": b["artifact_id"],
        "version": 1,
        "state": "ready",
    }
    expect(http.put("/v1/names/models/fraud/aliases/challenger", json=target(a)), 200)
    listed = expect(http.get("/v1/names/models/fraud/aliases"), 200)
    assert listed["name"] == "models/fraud"
    assert [(x["alias"], x["artifact_id"], x["version"]) for x in listed["aliases"]] == [
        ("challenger", a["artifact_id"], 1),
        ("champion", b["artifact_id"], 1),
    ]
    assert all(x["updated_at"] > 0 for x in listed["aliases"])
    # the greedy name route still answers names, and is not taken for an alias route
    expect(http.get("/v1/names/models/fraud"), 404, "Name 'models/fraud' not found")
    expect(http.post("/v1/names", json={"name": "models/fraud", **target(a)}), 200)
    assert expect(http.get("/v1/names/models/fraud"), 200)["artifact_uri"] == a["artifact_uri"]
    assert expect(http.get(path), 200)["artifact_uri"] == b["artifact_uri"]

    deleted = expect(http.delete("/v1/names/models/fraud/aliases/challenger"), 200)
    assert deleted == {"status": "deleted", "name": "models/fraud", "alias": "challenger"}
    assert [x["alias"] for x in http.get("/v1/names/models/fraud/aliases").json()["aliases"]] == [
        "champion"
    ]
    # an alias named "aliases" is an alias too
    expect(http.put("/v1/names/m/aliases/aliases", json=target(a)), 200)
    assert expect(http.get("/v1/names/m/aliases"), 200)["aliases"][0]["alias"] == "aliases"


def test_rest_delete_of_a_name_whose_path_looks_like_an_alias(rest: Rest) -> None:
    """DELETE /v1/names/{name} of a plain name like ``team/aliases/prod`` reaches the alias
    route first (``team`` @ ``prod``): it must delete that name, never an alias instead."""
    http = rest.http
    a, b = upload(http, "a"), upload(http, "b")
    expect(http.post("/v1/names", json={"name": "team/aliases/prod", **target(a)}), 200)
    gone = expect(http.delete("/v1/names/team/aliases/prod"), 200)
    assert gone == {"status": "deleted", "name": "team/aliases/prod"}
    assert expect(http.get("/v1/names", params={"prefix": "team/"}), 200)["names"] == []
    expect(http.delete("/v1/names/team/aliases/prod"), 404, "Name 'team' not found")

    # the path is both the plain name m/aliases/prod and the alias prod of m: refused
    expect(http.post("/v1/names", json={"name": "m/aliases/prod", **target(a)}), 200)
    expect(http.put("/v1/names/m/aliases/prod", json=target(b)), 200)
    refused = expect(http.delete("/v1/names/m/aliases/prod"), 409)["detail"]
    assert "both the name 'm/aliases/prod' and alias 'prod' of name 'm'" in refused
    assert expect(http.get("/v1/names/m/aliases/prod"), 200)["artifact_uri"] == b["artifact_uri"]
    listed = expect(http.get("/v1/names", params={"prefix": "m/"}), 200)["names"]
    assert [n["name"] for n in listed] == ["m/aliases/prod"]
    # once the plain name is gone (through Flight), the path is the alias's alone
    assert rest.flight is not None
    with QuiverClient(rest.flight.location) as q:
        q.delete_name("m/aliases/prod")
    gone = expect(http.delete("/v1/names/m/aliases/prod"), 200)
    assert gone == {"status": "deleted", "name": "m", "alias": "prod"}


def test_rest_alias_errors(rest: Rest) -> None:
    http = rest.http
    a = upload(http, "a")
    expect(http.put("/v1/names/m/aliases/champion", json=target(a)), 200)
    expect(http.get("/v1/names/nope/aliases/champion"), 404, "Name 'nope' not found")
    expect(http.get("/v1/names/nope/aliases"), 404, "Name 'nope' not found")
    expect(http.delete("/v1/names/nope/aliases/champion"), 404, "Name 'nope' not found")
    expect(http.get("/v1/names/m/aliases/prod"), 404, "Alias 'prod' of name 'm' not found")
    expect(http.delete("/v1/names/m/aliases/prod"), 404, "Alias 'prod' of name 'm' not found")
    expect(
        http.put("/v1/names/m/aliases/prod", json={"artifact_id": "nope", "version": 1}),
        404,
        "artifact strata://artifact/nope@v=1 not found",
    )
    bodies = [{"artifact_id": a["artifact_id"]}, {**target(a), "extra": 1},
              {**target(a), "version": 0}, {**target(a), "version": "one"}, [1]]  # fmt: skip
    for body in bodies:
        assert expect(http.put("/v1/names/m/aliases/prod", json=body), 422)["detail"][0]["loc"]
    not_json = {"content-type": "application/json"}
    expect(http.put("/v1/names/m/aliases/prod", content=b"{", headers=not_json), 422)
    expect(http.put("/v1/names/m/aliases/b$d", json=target(a)), 400, has="invalid alias 'b$d'")
    refused = http.put("/v1/names/bad name/aliases/prod", json=target(a))
    expect(refused, 400, has="invalid name 'bad name'")
    expect(http.put("/v1/names/m/aliases/prod", json={"artifact_id": "a.b", "version": 1}), 400)

    building = http.post("/v1/materialize", json={**gated_request("reg-alias"), "mode": "artifact"})
    uri = building.json()["artifact_uri"]
    aid, version = uri.removeprefix("strata://artifact/").split("@v=")
    building_target = {"artifact_id": aid, "version": int(version)}
    refused = http.put("/v1/names/m/aliases/prod", json=building_target)
    expect(refused, 409, f"cannot alias {uri}: it is building, not ready")
    GATES["reg-alias"].set()

    refused = http.delete(f"/v1/artifacts/{a['artifact_id']}/v/1")
    aliased = f"artifact {a['artifact_uri']} is aliased as m@champion: "
    assert expect(refused, 409)["detail"].startswith(aliased)
    expect(http.delete("/v1/names/m/aliases/champion"), 200)
    expect(http.delete(f"/v1/artifacts/{a['artifact_id']}/v/1"), 200)


def test_rest_versions_too_big_for_the_store_are_404(rest: Rest) -> None:
    http = rest.http
    a = upload(http, "a")
    huge = 2**64
    uri = f"strata://artifact/{a['artifact_id']}@v={huge}"
    tags = f"/v1/artifacts/{a['artifact_id']}/v/{huge}/tags"
    expect(http.get(tags), 404, f"artifact {uri} not found")
    expect(http.put(tags, json={"key": "k", "value": "v"}), 404, f"artifact {uri} not found")
    expect(http.delete(f"{tags}/k"), 404, f"artifact {uri} not found")
    body = {"artifact_id": a["artifact_id"], "version": huge}
    expect(http.put("/v1/names/m/aliases/prod", json=body), 404, f"artifact {uri} not found")


def test_rest_protected_alias_flow(make_rest: Any) -> None:
    rest = make_rest(protected_aliases=["prod"], personal_mode_user_header="X-User")
    http = rest.http
    a, b = upload(http, "a"), upload(http, "b")
    path = "/v1/names/models/fraud/aliases/prod"
    asked = http.put(path, json=target(a), headers={"X-User": "alice"})
    assert asked.status_code == 202, asked.text
    body = asked.json()
    assert set(body) == {"status", "name", "alias", "detail"}
    assert (body["status"], body["name"], body["alias"]) == ("pending", "models/fraud", "prod")
    assert "protected" in body["detail"]
    expect(http.get(path), 404, "Alias 'prod' of name 'models/fraud' not found")
    assert http.put(path, json=target(a)).status_code == 202  # the same ask again
    [change] = expect(http.get("/v1/registry/pending"), 200)["pending"]
    assert (change["name"], change["alias"], change["op"], change["artifact_uri"],
            change["requested_by"], change["current_artifact_uri"]) == (
        "models/fraud", "prod", "set", a["artifact_uri"], "alice", None)  # fmt: skip
    clash = expect(http.put(path, json=target(b)), 409)
    assert "already pending" in clash["detail"] and "by alice" in clash["detail"]

    change_of = {"name": "models/fraud", "alias": "prod"}
    done = http.post("/v1/registry/pending/approve", json=change_of, headers={"X-User": "bob"})
    assert expect(done, 200)["status"] == "applied"
    assert expect(http.get(path), 200)["artifact_uri"] == a["artifact_uri"]
    assert expect(http.get("/v1/registry/pending"), 200) == {"pending": []}
    expect(
        http.post("/v1/registry/pending/approve", json=change_of),
        404,
        "No pending change of alias 'prod' of name 'models/fraud'",
    )
    expect(http.post("/v1/registry/pending/reject", json=change_of), 404)
    expect(http.post("/v1/registry/pending/approve", json={"name": "models/fraud"}), 422)
    expect(http.post("/v1/registry/pending/reject", json={**change_of, "x": 1}), 422)
    refused = http.post("/v1/registry/pending/approve", json={**change_of, "alias": "no way"})
    expect(refused, 400, has="invalid alias")

    deleting = http.delete(path, headers={"X-User": "alice"})
    assert deleting.status_code == 202 and deleting.json()["status"] == "pending"
    rejected = http.post("/v1/registry/pending/reject", json=change_of, headers={"X-User": "bob"})
    assert expect(rejected, 200)["status"] == "rejected"
    assert expect(http.get(path), 200)["artifact_uri"] == a["artifact_uri"]
    # an unprotected alias of the same name is applied at once
    dev = http.put("/v1/names/models/fraud/aliases/dev", json=target(b))
    assert expect(dev, 200)["status"] == "applied"

    log = expect(http.get("/v1/registry/audit", params={"name": "models/fraud"}), 200)["entries"]
    assert [(e["action"], e["op"], e["actor"], e["requested_by"]) for e in log] == [
        ("alias.set", None, None, None),
        ("alias.reject", "delete", "bob", "alice"),
        ("alias.request", "delete", "alice", None),
        ("alias.approve", "set", "bob", "alice"),
        ("alias.request", "set", "alice", None),
    ]


def test_rest_tags(rest: Rest) -> None:
    http = rest.http
    a = upload(http, "a")
    tags = f"/v1/artifacts/{a['artifact_id']}/v/1/tags"
    assert expect(http.get(tags), 200)["tags"] == {}
    set_ = expect(http.put(tags, json={"key": "auc", "value": "0.91"}), 200)
    assert (set_["status"], set_["key"], set_["value"], set_["artifact_uri"]) == (
        "applied", "auc", "0.91", a["artifact_uri"])  # fmt: skip
    again = http.put(tags, json={"key": "auc", "value": "0.91"})
    assert expect(again, 200)["status"] == "unchanged"
    expect(http.put(tags, json={"key": "team", "value": "risk"}), 200)
    assert expect(http.get(tags), 200)["tags"] == {"auc": "0.91", "team": "risk"}
    gone = expect(http.delete(f"{tags}/team"), 200)
    assert (gone["status"], gone["key"]) == ("deleted", "team")
    assert expect(http.get(tags), 200)["tags"] == {"auc": "0.91"}
    expect(http.delete(f"{tags}/team"), 404, f"Tag 'team' not found on {a['artifact_uri']}")
    missing = "/v1/artifacts/nope/v/1/tags"
    expect(http.get(missing), 404, "artifact strata://artifact/nope@v=1 not found")
    expect(http.put(missing, json={"key": "k", "value": "v"}), 404)
    expect(http.delete(f"{missing}/k"), 404)
    bad_key = http.put(tags, json={"key": "bad key", "value": "1"})
    expect(bad_key, 400, has="invalid tag key 'bad key'")
    expect(http.delete(f"{tags}/b$d"), 400)
    expect(http.get(f"/v1/artifacts/{a['artifact_id']}/v/0/tags"), 400)
    expect(http.get(f"/v1/artifacts/{a['artifact_id']}/v/one/tags"), 422)
    bodies = [{"key": "auc", "value": 0.9}, {"key": "auc"}, {"value": "1"},
              {"key": "a", "value": "x" * 4097}, {"key": "a", "value": "1", "x": 1}]  # fmt: skip
    for body in bodies:
        expect(http.put(tags, json=body), 422)


def test_rest_audit(rest: Rest) -> None:
    http = rest.http
    a, b = upload(http, "a"), upload(http, "b")
    http.put("/v1/names/m/aliases/champion", json=target(a), headers={"X-User": "ignored"})
    http.put("/v1/names/m/aliases/champion", json=target(b))
    http.put(f"/v1/artifacts/{b['artifact_id']}/v/1/tags", json={"key": "k", "value": "v"})
    http.post("/v1/names", json={"name": "plain", **target(a)})
    everything = expect(http.get("/v1/registry/audit"), 200)
    assert everything["limit"] == 100
    log = everything["entries"]
    assert actions(log) == ["name.set", "tag.set", "alias.set", "alias.set"]
    assert {e["actor"] for e in log} == {None}  # no user header configured
    assert set(log[2]) >= {"id", "at", "actor", "action", "name", "alias", "from_artifact_id",
                           "from_version", "to_artifact_id", "to_version", "from_artifact_uri",
                           "to_artifact_uri"}  # fmt: skip
    assert (log[2]["from_artifact_uri"], log[2]["to_artifact_uri"]) == (
        a["artifact_uri"], b["artifact_uri"])  # fmt: skip
    by_name = expect(http.get("/v1/registry/audit", params={"name": "m"}), 200)["entries"]
    assert actions(by_name) == ["alias.set", "alias.set"]
    by_b = http.get("/v1/registry/audit", params={"artifact_id": b["artifact_id"]}).json()
    assert actions(by_b["entries"]) == ["tag.set", "alias.set"]
    one = expect(http.get("/v1/registry/audit", params={"limit": 1}), 200)
    assert actions(one["entries"]) == ["name.set"]
    assert http.get("/v1/registry/audit", params={"limit": 10**9}).json()["limit"] == 10_000
    for bad in ({"limit": 0}, {"limit": "many"}):
        assert expect(http.get("/v1/registry/audit", params=bad), 422)["detail"][0]["loc"] == [
            "query",
            "limit",
        ]


def test_rest_audit_records_the_caller_named_by_the_user_header(make_rest: Any) -> None:
    rest = make_rest(personal_mode_user_header="X-Forwarded-User")
    http = rest.http
    a = upload(http, "a")
    user = {"X-Forwarded-User": "carol"}
    expect(http.put("/v1/names/m/aliases/champion", json=target(a), headers=user), 200)
    tags = f"/v1/artifacts/{a['artifact_id']}/v/1/tags"
    expect(http.put(tags, json={"key": "k", "value": "v"}, headers=user), 200)
    expect(http.delete(f"{tags}/k"), 200)  # no header: no actor
    expect(http.delete("/v1/names/m/aliases/champion", headers={"X-Forwarded-User": "dan"}), 200)
    log = expect(http.get("/v1/registry/audit"), 200)["entries"]
    assert [(e["action"], e["actor"]) for e in log] == [
        ("alias.delete", "dan"),
        ("tag.delete", None),
        ("tag.set", "carol"),
        ("alias.set", "carol"),
    ]
