"""Actions that answer questions about the store: listings, stats, builds, staleness, lineage.

They complete the action surface of ``flight.actions`` with what the REST facade
needs (``GET /v1/artifacts``, ``/stats``, ``/builds/{id}``, name status, the
lineage graph, lookups by provenance) so that it never opens the store itself.
Registered through the same :func:`flight.dispatch.action` decorator.
"""

from __future__ import annotations

import base64
from collections import deque
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from catalog import ArtifactInfo, ArtifactRef, NameRef, TableRef, artifact_uri, parse_uri
from flight.args import ArtifactArg, NameArg, build_id, info_json, parse_build_id
from flight.core import Core
from flight.dispatch import action
from flight.protocol import parse_model
from flight.uploads import BLOB_COLUMN, BLOB_MARKER, check_provenance_hash, find_by_provenance
from foundation import NotFound, QuiverError

try:
    import resource
except ImportError:  # not on Windows
    resource = None  # type: ignore[assignment]

ARROW_STREAM_TYPE = "application/vnd.apache.arrow.stream"
MIN_FREE_DISK_BYTES = 64 * 1024**2
"""Below this much free space in the data directory, ``dependencies`` reports the disk failing."""


def arrow_schema_b64(info: ArtifactInfo) -> str | None:
    """The schema as base64 of its Arrow IPC encoding (``pa.ipc.read_schema`` reads it)."""
    if info.schema is None:
        return None
    return base64.b64encode(info.schema.serialize().to_pybytes()).decode()


class ListArg(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: Literal["building", "ready", "failed", "superseded"] | None = None
    since: float | None = None
    sort: Literal["created_at", "byte_size", "row_count", "last_read_at"] = "created_at"
    order: Literal["asc", "desc"] = "desc"
    limit: int = Field(default=100, ge=1, le=10_000)
    offset: int = Field(default=0, ge=0)
    name_prefix: str | None = None


def _summary(core: Core, info: ArtifactInfo) -> dict[str, Any]:
    body = info_json(info)
    body["names"] = core.store.names_of(info.artifact_id, info.version)
    body["build_id"] = build_id(info.artifact_id, info.version)
    return body


@action(
    "list",
    "Artifact versions: {state?, since?, sort?, order?, limit?, offset?, name_prefix?}; "
    "name_prefix keeps only versions a name under that prefix points at.",
)
def _list(core: Core, body: Any) -> Any:
    arg = parse_model(ListArg, body, "list request")
    if arg.name_prefix is None:
        infos = core.store.list(
            state=arg.state,
            since=arg.since,
            sort=arg.sort,
            order=arg.order,
            limit=arg.limit,
            offset=arg.offset,
        )
    else:
        keys = {(n.artifact_id, n.version) for n in core.store.list_names(arg.name_prefix)}
        found = []
        for aid, version in keys:
            try:
                found.append(core.store.get(aid, version))
            except NotFound:  # deleted between the two reads
                continue
        found = [
            i
            for i in found
            if (arg.state is None or i.state == arg.state)
            and (arg.since is None or i.created_at >= arg.since)
        ]
        missing = arg.order == "asc"  # None sorts last either way
        found.sort(
            key=lambda i: (
                (getattr(i, arg.sort) is None) != missing,
                getattr(i, arg.sort) or 0,
                i.artifact_id,
                i.version,
            ),
            reverse=arg.order == "desc",
        )
        infos = found[arg.offset : arg.offset + arg.limit]
    return {
        "artifacts": [_summary(core, i) for i in infos],
        "limit": arg.limit,
        "offset": arg.offset,
        "count": len(infos),
    }


@action(
    "usage",
    "Stored bytes and versions, and how many of them gc could collect "
    "(unreferenced: not named, not depended on, not a current cell output, not being read).",
)
def _usage(core: Core, body: Any) -> Any:
    return core.store.usage()


@action("stats", "Store totals by state, bytes, names, and this server's materialize counters.")
def _stats(core: Core, body: Any) -> Any:
    return {
        **core.store.stats(),
        "building": len(core.materializer.building()),
        "counters": dict(core.materializer.counters),
    }


class BuildArg(BaseModel):
    model_config = ConfigDict(extra="forbid")

    build_id: str = Field(min_length=1, max_length=200)


def build_json(info: ArtifactInfo) -> dict[str, Any]:
    return {
        "build_id": build_id(info.artifact_id, info.version),
        "artifact_uri": info.uri,
        "artifact_id": info.artifact_id,
        "version": info.version,
        "state": info.state,
        "executor": info.executor,
        "row_count": info.row_count,
        "byte_size": info.byte_size,
        "created_at": info.created_at,
        "finished_at": info.finished_at,
        "error_message": info.error,
    }


@action(
    "build-status",
    'A build (or stream) by id: {"build_id"} → state, artifact_uri, rows, error_message.',
)
def _build_status(core: Core, body: Any) -> Any:
    arg = parse_model(BuildArg, body, "build-status request")
    return build_json(parse_build_id(core, arg.build_id))


def _current_version(core: Core, uri: str, params: Any) -> str | None:
    """What ``uri`` resolves to now, in the terms recorded as its input version."""
    ref = parse_uri(uri)
    if isinstance(ref, TableRef):
        pinned = params.get("snapshot_id") if isinstance(params, dict) else None
        return core.warehouses.resolve(ref, pinned).version
    if isinstance(ref, NameRef):
        target = core.store.get_name(ref.name)
        return artifact_uri(target.artifact_id, target.version)
    assert isinstance(ref, ArtifactRef)
    return ref.uri


@action(
    "name-status",
    'Is a named artifact stale? {"name"} → input_versions, is_stale, stale_reason, '
    "changed_inputs (an input that now resolves to a newer version).",
)
def _name_status(core: Core, body: Any) -> Any:
    name = parse_model(NameArg, body, "name-status request").name
    named = core.store.get_name(name)
    info = core.store.get(named.artifact_id, named.version)
    recorded = core.store.inputs(named.artifact_id, named.version)
    changed = []
    for inp in recorded:
        try:
            now = _current_version(core, inp.uri, info.params)
        except QuiverError as exc:  # the input is gone: that is a change too
            changed.append({"input_uri": inp.uri, "old_version": inp.version,
                            "new_version": None, "error": exc.message})  # fmt: skip
            continue
        if now != inp.version:
            changed.append({"input_uri": inp.uri, "old_version": inp.version, "new_version": now})
    reason = None
    if changed:
        reason = "Rebuild needed: " + ", ".join(
            f"{c['input_uri']}: {c['old_version']} → {c['new_version']}" for c in changed
        )
    return {
        "name": name,
        "artifact_uri": info.uri,
        "artifact_id": info.artifact_id,
        "version": info.version,
        "state": info.state,
        "updated_at": named.updated_at,
        "input_versions": {i.uri: i.version for i in recorded},
        "is_stale": bool(changed),
        "stale_reason": reason,
        "changed_inputs": changed,
    }


class GraphArg(ArtifactArg):
    max_depth: int = Field(default=10, ge=1, le=100)


@action(
    "lineage-graph",
    "The inputs of an artifact version and theirs, to max_depth: {nodes, edges}; "
    "an edge goes from an input to the artifact built from it.",
)
def _lineage_graph(core: Core, body: Any) -> Any:
    arg = parse_model(GraphArg, body, "lineage-graph request")
    root = ArtifactRef(*arg.resolve(core))
    nodes: dict[str, dict[str, Any]] = {}
    edges: list[dict[str, Any]] = []
    queue = deque([(root.artifact_id, root.version, 0)])
    while queue:
        aid, version, depth = queue.popleft()
        uri = artifact_uri(aid, version)
        if uri in nodes:
            continue
        info = core.store.get(aid, version)
        nodes[uri] = {
            "id": uri,
            "type": "artifact",
            "artifact_id": aid,
            "version": version,
            "state": info.state,
            "executor": info.executor,
            "depth": depth,
        }
        if depth >= arg.max_depth:
            continue
        for inp in core.store.inputs(aid, version):
            if inp.artifact_id is not None and inp.artifact_version is not None:
                source = artifact_uri(inp.artifact_id, inp.artifact_version)
                try:
                    core.store.get(inp.artifact_id, inp.artifact_version)
                    queue.append((inp.artifact_id, inp.artifact_version, depth + 1))
                except NotFound:  # deleted since: keep the edge, mark the node
                    nodes.setdefault(source, {"id": source, "type": "artifact",
                                              "state": "deleted", "depth": depth + 1})  # fmt: skip
            else:
                source = inp.uri
                nodes.setdefault(source, {"id": source, "type": "table",
                                          "version": inp.version, "depth": depth + 1})  # fmt: skip
            edges.append(
                {"source": source, "target": uri, "input_uri": inp.uri, "version": inp.version}
            )
    return {"artifact_uri": root.uri, "nodes": list(nodes.values()), "edges": edges}


# --- by provenance ---------------------------------------------------------------------
class ProvenanceArg(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provenance_hash: Any


def is_blob(info: ArtifactInfo) -> bool:
    """Whether the artifact is an opaque value put by provenance (one ``blob`` column)."""
    schema = info.schema
    return (
        schema is not None
        and schema.names == [BLOB_COLUMN]
        and (pa.types.is_binary(schema[0].type) or pa.types.is_large_binary(schema[0].type))
        and (schema.metadata or {}).get(BLOB_MARKER) == b"1"
    )


def provenance_json(key: str, info: ArtifactInfo) -> dict[str, Any]:
    """What ``by-provenance`` answers for the artifact found under ``key``."""
    meta = info.metadata if isinstance(info.metadata, dict) else {}
    keyed = meta.get("provenance_hash") == key
    return {
        **info_json(info),
        "provenance_hash": key,
        "stored_provenance": info.provenance,
        "content_type": meta.get("content_type") if keyed else ARROW_STREAM_TYPE,
        "variable_name": meta.get("variable_name") if keyed else None,
        "blob": is_blob(info),
        "blob_bytes": meta.get("blob_bytes") if keyed else None,
    }


@action(
    "by-provenance",
    'The ready artifact a provenance key names: {"provenance_hash"} (64 lowercase hex) → its '
    "status plus content_type; not_found (detail.miss = true) when nothing has it.",
)
def _by_provenance(core: Core, body: Any) -> Any:
    arg = parse_model(ProvenanceArg, body, "by-provenance request")
    key = check_provenance_hash(arg.provenance_hash)
    found = find_by_provenance(core, key)
    if found is None:
        raise NotFound(
            f"no ready artifact has provenance {key}",
            detail={"provenance_hash": key, "miss": True},
        )
    return provenance_json(key, found)
