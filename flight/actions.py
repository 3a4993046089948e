"""The core actions: materialize, explain, status, names, lineage, delete, gc, cancel.

Registered in :mod:`flight.dispatch`; the other actions are about the store
(:mod:`flight.queries`), the server itself (:mod:`flight.runtime`), the
registry (:mod:`flight.registry`) and table views (:mod:`flight.tables`).
"""

from __future__ import annotations

import base64
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from catalog import artifact_uri
from flight.args import ArtifactArg, NameArg, build_id, info_json, parse_build_id, schema_json
from flight.core import Core
from flight.dispatch import action
from flight.protocol import ArtifactTicket, parse_model
from foundation import InvalidArgument
from materialize import MaterializeRequest, MaterializeResult


class NameSetArg(ArtifactArg):
    name: str


class PrefixArg(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prefix: str | None = None


class DependentsArg(ArtifactArg):
    limit: int | None = Field(default=None, ge=1)


class GcArg(BaseModel):
    """What ``gc`` takes; an omitted limit takes the configured retention.

    Strict: a JSON client sends numbers and booleans (``"dry_run": "no"`` is an
    error, not a real run).
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    max_bytes: int | None = Field(default=None, ge=0)
    max_idle_days: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    min_idle_seconds: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    collect_latest: bool = False
    dry_run: bool = False
    failed_older_than_s: float = Field(default=3600.0, ge=0, allow_inf_nan=False)


def result_json(result: MaterializeResult, request: MaterializeRequest) -> dict[str, Any]:
    """The materialize answer: the library's JSON plus what a Flight client needs."""
    body = result.to_json()
    body["schema"] = schema_json(result.schema)
    body["ticket"] = ArtifactTicket(result.artifact_id, result.version).encode().decode()
    body["stream_id"] = None
    body["build_id"] = None
    if result.state == "building":
        key = "stream_id" if request.mode == "stream" else "build_id"
        body[key] = build_id(result.artifact_id, result.version)
    return body


def materialize(core: Core, request: MaterializeRequest) -> MaterializeResult:
    return core.materializer.materialize(request)


@action(
    "materialize",
    "Materialize a request (the JSON body of POST /v1/materialize); "
    "answers artifact_uri, hit, state, stream_id, ticket, schema and sizes when known.",
)
def _materialize(core: Core, body: Any) -> Any:
    request = parse_model(MaterializeRequest, body, "materialize request")
    return result_json(materialize(core, request), request)


@action("explain", "Would this materialize request hit? Its provenance hash and input versions.")
def _explain(core: Core, body: Any) -> Any:
    return core.materializer.explain(parse_model(MaterializeRequest, body, "materialize request"))


class StatusArg(ArtifactArg):
    """A version to describe; ``wait_seconds`` > 0 first waits that long for its build to end."""

    wait_seconds: float = Field(default=0.0, ge=0, le=60, allow_inf_nan=False)


@action(
    "status",
    "The state, schema, rows and bytes of an artifact version "
    '({"artifact_uri"} or {"artifact_id", "version"}); "wait_seconds"? (0, at most 60) '
    "answers when its build ends or that time passes, in place of polling.",
)
def _status(core: Core, body: Any) -> Any:
    arg = parse_model(StatusArg, body, "status request")
    aid, version = arg.resolve(core)
    info = core.store.get(aid, version)  # NotFound before any wait
    if info.state == "building" and arg.wait_seconds > 0:
        core.materializer.wait_built(aid, version, arg.wait_seconds)
        info = core.store.get(aid, version)
    answer = info_json(info)
    answer["arrow_schema"] = (
        base64.b64encode(info.schema.serialize().to_pybytes()).decode() if info.schema else None
    )
    answer["input_versions"] = {i.uri: i.version for i in core.store.inputs(aid, version)}
    answer["build_id"] = build_id(aid, version)
    return answer


@action("name-set", 'Point a name at an artifact version: {"name", "artifact_uri"}.')
def _name_set(core: Core, body: Any) -> Any:
    arg = parse_model(NameSetArg, body, "name-set request")
    aid, version = arg.resolve(core)
    named = core.store.set_name(arg.name, aid, version)
    return {"name": named.name, "name_uri": named.uri, "artifact_uri": named.artifact_uri}


def _name_json(named: Any) -> dict[str, Any]:
    return {
        "name": named.name,
        "name_uri": named.uri,
        "artifact_uri": named.artifact_uri,
        "artifact_id": named.artifact_id,
        "version": named.version,
        "updated_at": named.updated_at,
    }


@action("name-get", 'What a name points at: {"name"}.')
def _name_get(core: Core, body: Any) -> Any:
    return _name_json(core.store.get_name(parse_model(NameArg, body, "name-get request").name))


@action("name-list", 'All names, optionally under a prefix: {"prefix"?}.')
def _name_list(core: Core, body: Any) -> Any:
    prefix = parse_model(PrefixArg, body, "name-list request").prefix
    return {"names": [_name_json(n) for n in core.store.list_names(prefix)]}


@action("name-delete", 'Delete a name (not the artifact): {"name"}.')
def _name_delete(core: Core, body: Any) -> Any:
    name = parse_model(NameArg, body, "name-delete request").name
    core.store.delete_name(name)
    return {"status": "deleted", "name": name}


@action("lineage", "The inputs an artifact version was built from, with their versions.")
def _lineage(core: Core, body: Any) -> Any:
    aid, version = parse_model(ArtifactArg, body, "lineage request").resolve(core)
    return {
        "artifact_uri": artifact_uri(aid, version),
        "inputs": [
            {
                "input_uri": i.uri,
                "version": i.version,
                "artifact_uri": artifact_uri(i.artifact_id, i.artifact_version)
                if i.artifact_id and i.artifact_version
                else None,
            }
            for i in core.store.inputs(aid, version)
        ],
    }


@action("dependents", "The artifact versions built from an artifact version ({limit?}).")
def _dependents(core: Core, body: Any) -> Any:
    arg = parse_model(DependentsArg, body, "dependents request")
    aid, version = arg.resolve(core)
    found = core.store.dependents(aid, version, limit=arg.limit)
    return {
        "artifact_uri": artifact_uri(aid, version),
        "dependents": [
            {
                "artifact_uri": d.uri,
                "artifact_id": d.artifact_id,
                "version": d.version,
                "state": d.state,
                "executor": d.executor,
                "created_at": d.created_at,
            }
            for d in found
        ],
    }


@action("delete", "Delete an artifact version, its file and the names pointing at it.")
def _delete(core: Core, body: Any) -> Any:
    aid, version = parse_model(ArtifactArg, body, "delete request").resolve(core)
    core.store.delete(aid, version)
    return {"status": "deleted", "artifact_uri": artifact_uri(aid, version)}


@action(
    "gc",
    "Collect the artifact versions nothing needs, least recently used first: "
    '{"max_idle_days"?, "max_bytes"?, "min_idle_seconds"?, "collect_latest"?, "dry_run"?, '
    '"failed_older_than_s"?} (omitted limits take the configured retention); answers '
    "deleted_count, deleted_bytes, store_bytes, collected, removed, evicted, "
    "orphan_part_prefixes, retention and store stats.",
)
def _gc(core: Core, body: Any) -> Any:
    arg = parse_model(GcArg, body, "gc request")
    settings = core.settings
    idle_days = arg.max_idle_days if arg.max_idle_days is not None else settings.gc_max_idle_days
    min_idle_s = (
        arg.min_idle_seconds if arg.min_idle_seconds is not None else settings.gc_min_idle_s
    )
    answer = core.store.gc(
        max_bytes=arg.max_bytes,  # None: the store's cap, where 0 means none
        max_idle_s=idle_days * 86_400 if idle_days is not None else None,
        min_idle_s=min_idle_s,
        collect_latest=arg.collect_latest,
        dry_run=arg.dry_run,
        failed_older_than_s=arg.failed_older_than_s,
    )
    answer["retention"] = {
        "max_idle_days": idle_days,
        "max_bytes": arg.max_bytes if arg.max_bytes is not None else core.store.max_bytes or None,
        "min_idle_seconds": min_idle_s,
        "collect_latest": arg.collect_latest,
        "failed_older_than_s": arg.failed_older_than_s,
    }
    return answer


@action("executors", "The registered executors with the JSON schema of their params.")
def _executors(core: Core, body: Any) -> Any:
    return {"executors": core.registry.describe()}


@action("health", "Liveness and a few counters.")
def _health(core: Core, body: Any) -> Any:
    return {
        "status": "ok",
        "time": time.time(),
        "building": len(core.materializer.building()),
        "counters": dict(core.materializer.counters),
        "store": core.store.stats(),
    }


class CancelArg(ArtifactArg):
    """A build to stop: ``build_id`` (or ``stream_id``), or the version's artifact URI."""

    build_id: str | None = Field(default=None, min_length=1, max_length=200)
    wait_seconds: float = Field(default=5.0, ge=0, le=60)


@action(
    "cancel",
    'Stop a running build: {"build_id"} or {"artifact_uri"} (or {"artifact_id", "version"}), '
    '"wait_seconds"? (5); answers cancelled, state, build_id, artifact_uri.',
)
def _cancel(core: Core, body: Any) -> Any:
    arg = parse_model(CancelArg, body, "cancel request")
    if arg.build_id is not None:
        found = parse_build_id(core, arg.build_id)
        aid, version = found.artifact_id, found.version
    elif arg.artifact_uri is None and arg.artifact_id is None:
        raise InvalidArgument('give "build_id", "artifact_uri", or "artifact_id" and "version"')
    else:
        aid, version = arg.resolve(core)
        core.store.get(aid, version)  # NotFound for an unknown version
    cancelled = core.materializer.cancel(aid, version, wait=arg.wait_seconds)
    info = core.store.get(aid, version)
    return {
        "cancelled": cancelled,
        "state": info.state,
        "build_id": build_id(aid, version),
        "artifact_uri": artifact_uri(aid, version),
        "error": info.error,
    }
