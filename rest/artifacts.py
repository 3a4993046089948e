"""The artifact routes (API.md §12.3, §12.4): list, inspect, read, lineage, builds, gc.

Each route runs one Flight action through the :class:`~rest.link.FlightLink`
and shapes its answer as strata-client 0.11 expects; an artifact's rows are
streamed from the Flight server, never collected.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from flight import BLOB_COLUMN, Transform
from foundation import BuildFailed, Conflict, InvalidArgument, NotFound, Unavailable
from rest.link import ARTIFACT_URI_HEADER, ROW_COUNT_HEADER, FlightLink, json_response
from rest.openapi import DATA, ArtifactId, DataFormat, Name, Version, name_field, raises
from rest.renditions import PARTIAL, RANGE_ERRORS
from rest.streaming import MEDIA_TYPES, check_format

MAX_PAGE = 10_000
"""Most artifacts one ``GET /v1/artifacts`` lists; a bigger ``limit`` is capped to it."""
MAX_LINEAGE_DEPTH = 100
"""Deepest lineage walk; a bigger ``max_depth`` is capped to it."""


class ExplainBody(BaseModel):
    inputs: list[str]
    transform: Transform
    name: str | None = name_field(default=None)


def _is_blob(status: dict[str, Any]) -> bool:
    """Whether a ``status`` answer describes a value put by provenance (one ``blob`` column)."""
    schema = status.get("schema") or []
    meta = status.get("metadata") or {}
    return [f["name"] for f in schema] == [BLOB_COLUMN] and "provenance_hash" in meta


def info_json(status: dict[str, Any]) -> dict[str, Any]:
    """``GET /v1/artifacts/{id}/v/{n}`` (§12.3, with the 0.11 additions)."""
    return {
        "artifact_id": status["artifact_id"],
        "version": status["version"],
        "artifact_uri": status["artifact_uri"],
        "state": status["state"],
        "arrow_schema": status.get("arrow_schema"),
        "schema": status["schema"],
        "row_count": status["row_count"],
        "byte_size": status["byte_size"],
        "created_at": status["created_at"],
        "finished_at": status["finished_at"],
        "provenance_hash": status["provenance_hash"],
        "transform_spec": json.dumps({"executor": status["executor"], "params": status["params"]}),
        "input_versions": json.dumps(status.get("input_versions", {})),
        "kind": status["kind"],
        "build_id": status["build_id"],
        "error_message": status["error"],
    }


def artifacts_router(link: FlightLink) -> APIRouter:
    """The ``/v1/artifacts``, ``/v1/builds`` and ``/v1/cache`` routes."""
    router = APIRouter(tags=["core"], responses=raises(Unavailable))
    found = raises(InvalidArgument, NotFound)
    act = link.act

    # --- artifacts -----------------------------------------------------------------
    @router.get("/v1/artifacts", response_model=None)
    def list_artifacts(
        since: float | None = None,
        sort: Literal["created_at", "byte_size", "row_count", "last_read_at"] = "created_at",
        order: Literal["asc", "desc"] = "desc",
        limit: int = Query(100, ge=1),
        offset: int = Query(0, ge=0),
        state: Literal["building", "ready", "failed", "superseded"] | None = None,
        name_prefix: str | None = None,
    ) -> Response:
        # strata-client sends any limit: a page is at most MAX_PAGE; the answer's limit says so
        body = {"sort": sort, "order": order, "limit": min(limit, MAX_PAGE), "offset": offset}
        extra = {"since": since, "state": state, "name_prefix": name_prefix}
        body.update({k: v for k, v in extra.items() if v is not None})
        answer = act("list", body)
        answer["artifacts"] = [info_json(a) | {"names": a["names"]} for a in answer["artifacts"]]
        return json_response(answer)

    @router.get("/v1/artifacts/stats", response_model=None)
    def stats() -> Response:
        return json_response(act("stats"))

    @router.get("/v1/artifacts/usage", response_model=None)
    def usage() -> Response:
        """Stored bytes and versions, and how much gc could collect (strata-client's
        ``get_artifact_usage``)."""
        return json_response(act("usage"))

    @router.post(
        "/v1/artifacts/builds/{build_id}/cancel", response_model=None, responses=raises(NotFound)
    )
    @router.post("/v1/builds/{build_id}/cancel", response_model=None, include_in_schema=False)
    def cancel_build(
        build_id: str, wait_seconds: float = Query(5.0, ge=0, le=60, allow_inf_nan=False)
    ) -> Response:
        """Stop a running build; its version ends ``failed`` and nothing is published."""
        return json_response(act("cancel", {"build_id": build_id, "wait_seconds": wait_seconds}))

    @router.get("/v1/artifacts/builds/{build_id}", response_model=None, responses=raises(NotFound))
    @router.get("/v1/builds/{build_id}", response_model=None, include_in_schema=False)
    def build_status(build_id: str) -> Response:
        return json_response(act("build-status", {"build_id": build_id}))

    # --- caches ------------------------------------------------------------------------
    @router.post("/v1/cache/clear", response_model=None)
    def clear_cache() -> Response:
        """Drop the server's in-memory caches (strata-client's ``clear_cache``). Artifacts
        are versioned results, not a disk cache: none is deleted (gc does that)."""
        return json_response(act("cache-clear"))

    @router.post(
        "/v1/artifacts/explain-materialize",
        response_model=None,
        responses=raises(InvalidArgument, NotFound, Conflict),
    )
    def explain(body: ExplainBody) -> Response:
        """Would this materialize hit? And is the named result stale?"""
        answer = act("explain", {"inputs": body.inputs, "transform": body.transform.model_dump()})
        out = {
            "cache_hit": answer["would_hit"],
            "artifact_uri": answer["artifact_uri"],
            "provenance_hash": answer["provenance_hash"],
            "building": answer["building"],
            "input_versions": answer["input_versions"],
            "execution": "cache" if answer["would_hit"] else "server",
            "is_stale": False,
            "stale_reason": None,
            "changed_inputs": [],
        }
        if body.name is not None:
            try:
                status = act("name-status", {"name": body.name})
            except NotFound:
                status = None
            if status is not None:
                out["is_stale"] = status["is_stale"]
                out["stale_reason"] = status["stale_reason"]
                out["changed_inputs"] = status["changed_inputs"]
        return json_response(out)

    @router.post("/v1/artifacts/gc", response_model=None)
    def gc(
        max_idle_days: float | None = Query(None, ge=0, allow_inf_nan=False),
        max_bytes: int | None = Query(None, ge=0),
        min_idle_seconds: float | None = Query(None, ge=0, allow_inf_nan=False),
        collect_latest: bool = False,
        dry_run: bool = False,
    ) -> Response:
        """Collect the versions nothing needs, least recently used first (strata-client's
        ``garbage_collect``); omitted limits take the configured retention."""
        limits = {
            "max_idle_days": max_idle_days,
            "max_bytes": max_bytes,
            "min_idle_seconds": min_idle_seconds,
        }
        body: dict[str, Any] = {k: v for k, v in limits.items() if v is not None}
        body |= {"collect_latest": collect_latest, "dry_run": dry_run}
        return json_response(act("gc", body))

    @router.get("/v1/artifacts/names/{name:path}/status", response_model=None, responses=found)
    def name_status(name: Name) -> Response:
        """Is the artifact a name points at stale (an input has a newer version)?"""
        return json_response(act("name-status", {"name": name}))

    @router.get("/v1/artifacts/{artifact_id}/v/{version}", response_model=None, responses=found)
    def artifact(artifact_id: ArtifactId, version: Version) -> Response:
        status = act("status", {"artifact_id": artifact_id, "version": version})
        return json_response(info_json(status))

    data_errors = {**DATA, **PARTIAL, **RANGE_ERRORS}
    data_errors |= raises(InvalidArgument, NotFound, BuildFailed)

    @router.head(
        "/v1/artifacts/{artifact_id}/v/{version}/data",
        response_class=Response,
        responses=data_errors,
    )
    @router.get(
        "/v1/artifacts/{artifact_id}/v/{version}/data",
        response_class=Response,
        responses=data_errors,
    )
    def artifact_data(
        request: Request, artifact_id: ArtifactId, version: Version, format: DataFormat = None
    ) -> Response:
        """The artifact's rows, streamed: Arrow IPC (default), ``?format=csv``;
        ``?format=parquet`` is the Parquet file (``data.parquet``), read by range."""
        fmt = check_format(format)
        if fmt == "parquet":
            return link.renditions.respond(
                request.method,
                request.headers,
                artifact_id,
                version,
                "parquet",
                filename=f"{artifact_id}-v{version}.parquet",
            )
        status = act("status", {"artifact_id": artifact_id, "version": version})
        if status["state"] not in ("ready", "superseded"):
            raise InvalidArgument(f"Artifact is not ready (state={status['state']})")
        if format is not None and format.lower() == "csv" and _is_blob(status):
            raise InvalidArgument(
                f"{status['artifact_uri']} is an opaque value put by provenance "
                f"(content_type {status['metadata'].get('content_type')!r}): CSV cannot carry "
                "its bytes; read it as Arrow IPC (the default) or ?format=parquet"
            )
        headers = {
            ARTIFACT_URI_HEADER: status["artifact_uri"],
            ROW_COUNT_HEADER: str(status["row_count"]),
        }
        filename = f"{artifact_id}-v{version}"
        if request.method == "HEAD":  # a stream: its length is known once it is sent
            if fmt != "arrow":
                headers["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
            return Response(headers=headers, media_type=MEDIA_TYPES[fmt])
        if fmt == "arrow" and not link.renditions.actions.renditions.local:
            # Over gRPC: the stored stream's bytes, not batches decoded and re-encoded.
            return link.renditions.ipc_stream(artifact_id, version, headers)
        return link.stream(status["artifact_uri"], format, filename=filename, headers=headers)

    @router.get(
        "/v1/artifacts/{artifact_id}/v/{version}/lineage", response_model=None, responses=found
    )
    def lineage(
        artifact_id: ArtifactId, version: Version, max_depth: int = Query(10, ge=1)
    ) -> Response:
        """The lineage graph; a deeper walk than MAX_LINEAGE_DEPTH is capped (nodes say depth)."""
        depth = min(max_depth, MAX_LINEAGE_DEPTH)
        body = {"artifact_id": artifact_id, "version": version, "max_depth": depth}
        return json_response(act("lineage-graph", body))

    @router.get(
        "/v1/artifacts/{artifact_id}/v/{version}/dependents", response_model=None, responses=found
    )
    def dependents(
        artifact_id: ArtifactId, version: Version, limit: int = Query(100, ge=1)
    ) -> Response:
        body = {"artifact_id": artifact_id, "version": version, "limit": limit}
        return json_response(act("dependents", body))

    @router.delete(
        "/v1/artifacts/{artifact_id}/v/{version}",
        response_model=None,
        responses=raises(InvalidArgument, NotFound, Conflict),
    )
    def delete(artifact_id: ArtifactId, version: Version) -> Response:
        answer = act("delete", {"artifact_id": artifact_id, "version": version})
        return json_response(answer | {"artifact_id": artifact_id, "version": version})

    return router
