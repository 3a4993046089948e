"""The names routes (API.md §12.5): point a name at an artifact version, read, list, drop.

A name is the catalog's mutable pointer; the registry's aliases and tags
(``registry.py``) are registered before these, so ``/v1/names/{name}/aliases``
is not taken for a name with slashes.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field

from foundation import ARTIFACT_ID_PATTERN, Conflict, InvalidArgument, NotFound, Unavailable
from rest.link import FlightLink, json_response
from rest.openapi import Name, name_field, raises


class NameBody(BaseModel):
    name: str = name_field()
    artifact_id: str = Field(json_schema_extra={"pattern": ARTIFACT_ID_PATTERN})
    version: int = Field(json_schema_extra={"minimum": 1})


def names_router(link: FlightLink) -> APIRouter:
    """The ``/v1/names`` routes."""
    router = APIRouter(tags=["core"], responses=raises(Unavailable))
    found = raises(InvalidArgument, NotFound)
    act = link.act

    @router.post(
        "/v1/names", response_model=None, responses=raises(InvalidArgument, NotFound, Conflict)
    )
    def set_name(body: NameBody) -> Response:
        answer = act(
            "name-set",
            {"name": body.name, "artifact_id": body.artifact_id, "version": body.version},
        )
        keys = ("name", "name_uri", "artifact_uri")
        return json_response({k: answer[k] for k in keys})

    @router.get("/v1/names", response_model=None)
    def list_names(prefix: str | None = None) -> Response:
        answer = act("name-list", {"prefix": prefix} if prefix else {})
        return json_response(answer)

    @router.get("/v1/names/{name:path}", response_model=None, responses=found)
    def get_name(name: Name) -> Response:
        return json_response(act("name-get", {"name": name}))

    @router.delete("/v1/names/{name:path}", response_model=None, responses=found)
    def delete_name(name: Name) -> Response:
        return json_response(act("name-delete", {"name": name}))

    return router
