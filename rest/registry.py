"""The registry routes (API.md §12.5 aliases; strata-client's registry methods).

Aliases of names (``/v1/names/{name}/aliases/...``), protected-alias approvals
and the audit (``/v1/registry/...``), tags on artifact versions
(``/v1/artifacts/{id}/v/{n}/tags``). Each route is one Flight action of
``flight.registry``; the caller named by ``QUIVER_PERSONAL_MODE_USER_HEADER``
(when configured) goes along as the audit's ``actor``. docs/registry.md
documents the routes.

The router must be included before the core router: ``GET /v1/names/{name:path}``
would otherwise take ``/v1/names/x/aliases/champion`` as the name
``x/aliases/champion``. So a plain name shaped like that path reaches these
routes instead of the core ones; ``DELETE`` tells the two apart (see
:func:`registry_router`'s ``delete_alias``), since deleting the wrong one cannot
be undone.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from foundation import (
    ALIAS_PATTERN,
    ARTIFACT_ID_PATTERN,
    MAX_AUDIT_PAGE,
    MAX_TAG_VALUE_CHARS,
    TAG_KEY_PATTERN,
    Conflict,
    InvalidArgument,
    NotFound,
    Settings,
    Unavailable,
)
from rest.link import FlightLink, json_response
from rest.openapi import Alias, ArtifactId, Name, TagKey, Version, name_field, raises


class AliasBody(BaseModel):
    """``PUT /v1/names/{name}/aliases/{alias}``: the version to point at."""

    model_config = ConfigDict(extra="forbid")

    artifact_id: str = Field(min_length=1, json_schema_extra={"pattern": ARTIFACT_ID_PATTERN})
    version: int = Field(ge=1)


class TagBody(BaseModel):
    """``PUT /v1/artifacts/{id}/v/{n}/tags``: one tag."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(json_schema_extra={"pattern": TAG_KEY_PATTERN})
    value: str = Field(max_length=MAX_TAG_VALUE_CHARS)


class PendingBody(BaseModel):
    """``POST /v1/registry/pending/approve`` and ``/reject``: which alias."""

    model_config = ConfigDict(extra="forbid")

    name: str = name_field()
    alias: str = Field(json_schema_extra={"pattern": ALIAS_PATTERN})


PENDING: dict[int | str, dict[str, Any]] = {
    202: {"description": "A protected alias: the change waits for approval (nothing changed yet)."}
}


def _pending_response(answer: dict[str, Any]) -> Response:
    body = {k: answer[k] for k in ("status", "name", "alias", "detail")}
    return json_response(body, status_code=202)


def registry_router(link: FlightLink, settings: Settings) -> APIRouter:
    """The alias, tag, pending-change and audit routes over ``link``."""
    router = APIRouter(tags=["registry"], responses=raises(Unavailable))
    found = raises(InvalidArgument, NotFound)
    changes = {**raises(InvalidArgument, NotFound, Conflict), **PENDING}
    act = link.act
    header = settings.personal_mode_user_header

    def actor(request: Request) -> str | None:
        return request.headers.get(header) if header else None

    # --- aliases (declared before the core router's GET /v1/names/{name:path}) -------
    @router.put("/v1/names/{name:path}/aliases/{alias}", response_model=None, responses=changes)
    def set_alias(name: Name, alias: Alias, body: AliasBody, request: Request) -> Response:
        """Point ``name @ alias`` at a version; a protected alias answers 202 pending."""
        answer = act(
            "alias-set",
            {"name": name, "alias": alias, "artifact_id": body.artifact_id,
             "version": body.version, "actor": actor(request)},
        )  # fmt: skip
        if answer["status"] == "pending":
            return _pending_response(answer)
        return json_response({k: answer[k] for k in ("status", "name", "alias", "artifact_uri")})

    @router.get("/v1/names/{name:path}/aliases/{alias}", response_model=None, responses=found)
    def get_alias(name: Name, alias: Alias) -> Response:
        return json_response(act("alias-get", {"name": name, "alias": alias}))

    def exists(action: str, body: dict[str, Any]) -> bool:
        try:
            act(action, body)
        except (NotFound, InvalidArgument):
            return False
        return True

    @router.delete("/v1/names/{name:path}/aliases/{alias}", response_model=None, responses=changes)
    def delete_alias(name: Name, alias: Alias, request: Request) -> Response:
        """Delete ``name @ alias``; a protected alias answers 202 pending.

        The path is also ``DELETE /v1/names/{name}`` of the plain name
        ``{name}/aliases/{alias}``, which this route shadows: when that name
        exists and the alias does not, the name is deleted (as the core route
        would); when both exist, neither is (409): which one was meant cannot be
        told, and deleting the other would be silent and final.
        """
        whole = f"{name}/aliases/{alias}"
        if exists("name-get", {"name": whole}):
            if not exists("alias-get", {"name": name, "alias": alias}):
                return json_response(act("name-delete", {"name": whole}))
            raise Conflict(
                f"this path names both the name '{whole}' and alias '{alias}' of name "
                f"'{name}': DELETE cannot tell which is meant; delete one with the Flight "
                "name-delete or alias-delete action",
                detail={"name": whole, "alias_of": {"name": name, "alias": alias}},
            )
        answer = act("alias-delete", {"name": name, "alias": alias, "actor": actor(request)})
        if answer["status"] == "pending":
            return _pending_response(answer)
        return json_response({"status": "deleted", "name": name, "alias": alias})

    @router.get("/v1/names/{name:path}/aliases", response_model=None, responses=found)
    def list_aliases(name: Name) -> Response:
        return json_response(act("alias-list", {"name": name}))

    # --- protected aliases and the audit ----------------------------------------------
    @router.get("/v1/registry/pending", response_model=None)
    def pending() -> Response:
        """Changes of protected aliases waiting for approval, oldest first."""
        return json_response(act("alias-pending"))

    @router.post("/v1/registry/pending/approve", response_model=None, responses=changes)
    def approve(body: PendingBody, request: Request) -> Response:
        change = {"name": body.name, "alias": body.alias, "actor": actor(request)}
        return json_response(act("alias-approve", change))

    @router.post("/v1/registry/pending/reject", response_model=None, responses=changes)
    def reject(body: PendingBody, request: Request) -> Response:
        change = {"name": body.name, "alias": body.alias, "actor": actor(request)}
        return json_response(act("alias-reject", change))

    @router.get("/v1/registry/audit", response_model=None, responses=raises(InvalidArgument))
    def audit(
        name: str | None = None,
        artifact_id: str | None = None,
        limit: int = Query(100, ge=1),
    ) -> Response:
        """Every name, alias and tag change, newest first (a page is capped at 10000)."""
        query: dict[str, Any] = {"limit": min(limit, MAX_AUDIT_PAGE)}
        query.update({k: v for k, v in (("name", name), ("artifact_id", artifact_id)) if v})
        return json_response(act("registry-audit", query))

    # --- the browser client's Artifacts page (API.md §16) --------------------------------
    def named_versions() -> list[dict[str, Any]]:
        """Each registry name with its current version, aliases and that version's tags."""
        out = []
        for named in act("name-list")["names"]:
            name, aid, version = named["name"], named["artifact_id"], named["version"]
            aliases = act("alias-list", {"name": name})["aliases"]
            tags = act("tag-list", {"artifact_id": aid, "version": version})["tags"]
            out.append({**named, "aliases": aliases, "tags": tags})
        return out

    @router.get("/v1/registry/summary", response_model=None)
    def summary() -> Response:
        """``{names: [{name, aliases: {alias: version}, current_version, tags, ...}]}``."""
        names = [
            {
                "name": n["name"],
                "artifact_uri": n["artifact_uri"],
                "artifact_id": n["artifact_id"],
                "current_version": n["version"],
                "aliases": {a["alias"]: a["version"] for a in n["aliases"]},
                "tags": n["tags"],
                "updated_at": n["updated_at"],
            }
            for n in named_versions()
        ]
        return json_response({"names": names})

    @router.get("/v1/registry/artifacts", response_model=None)
    def registry_artifacts(
        tag_key: str | None = Query(None, max_length=256),
        tag_value: str | None = Query(None, max_length=MAX_TAG_VALUE_CHARS),
    ) -> Response:
        """The named artifact versions (with ``tag_key``: only those carrying that tag,
        with ``tag_value`` too: that value); each with ``tag_value`` when a key is given."""
        found = []
        for n in named_versions():
            tags = n["tags"]
            if tag_key is not None and (
                tag_key not in tags or (tag_value is not None and tags[tag_key] != tag_value)
            ):
                continue
            item = {
                "name": n["name"],
                "artifact_uri": n["artifact_uri"],
                "artifact_id": n["artifact_id"],
                "version": n["version"],
                "tags": tags,
                "updated_at": n["updated_at"],
            }
            if tag_key is not None:
                item["tag_value"] = tags[tag_key]
            found.append(item)
        return json_response({"artifacts": found})

    # --- tags --------------------------------------------------------------------------
    @router.put(
        "/v1/artifacts/{artifact_id}/v/{version}/tags",
        response_model=None,
        responses=raises(InvalidArgument, NotFound, Conflict),
    )
    def set_tag(
        artifact_id: ArtifactId, version: Version, body: TagBody, request: Request
    ) -> Response:
        tag = {"artifact_id": artifact_id, "version": version, "key": body.key}
        return json_response(act("tag-set", tag | {"value": body.value, "actor": actor(request)}))

    @router.get(
        "/v1/artifacts/{artifact_id}/v/{version}/tags", response_model=None, responses=found
    )
    def get_tags(artifact_id: ArtifactId, version: Version) -> Response:
        return json_response(act("tag-list", {"artifact_id": artifact_id, "version": version}))

    @router.delete(
        "/v1/artifacts/{artifact_id}/v/{version}/tags/{key}", response_model=None, responses=found
    )
    def delete_tag(
        artifact_id: ArtifactId, version: Version, key: TagKey, request: Request
    ) -> Response:
        tag = {"artifact_id": artifact_id, "version": version, "key": key}
        return json_response(act("tag-delete", tag | {"actor": actor(request)}))

    return router
