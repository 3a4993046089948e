"""A notebook's mounts, export and import routes (API.md §8, §9), under ``/v1/notebooks``.

Thin: the bodies are checked here (a bad mount is a 422 naming the field and
why), the work is ``notebooks.exchange``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from foundation import InvalidArgument, NotFound, Settings
from notebooks import NotebookManager, Session, cells_list, parse_mounts
from rest.openapi import raises

MOUNT_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"


class MountSpec(BaseModel):
    """API.md §2.6: a mount a notebook's cells see as a variable of its name."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=MOUNT_NAME, max_length=100)
    uri: str = Field(min_length=1, max_length=4096, description="file://, s3://, gs:// or az://")
    mode: Literal["ro", "rw"] = "ro"
    pin: str | None = Field(default=None, max_length=200)
    options: dict[str, str | int | float | bool] = Field(default_factory=dict, max_length=50)


class MountsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mounts: list[MountSpec] = Field(default_factory=list, max_length=100)

    @field_validator("mounts")
    @classmethod
    def _checked(cls, value: list[MountSpec]) -> list[MountSpec]:
        try:  # the domain's checks (scheme, traversal, credentials), as a 422
            parse_mounts([m.model_dump() for m in value])
        except InvalidArgument as exc:
            raise ValueError(exc.message) from exc
        return value


def notebook_exchange_router(
    manager: NotebookManager, settings: Settings, changed: Callable[[Session], None]
) -> APIRouter:
    """The routes; ``changed(session)`` tells the session's sockets its state moved."""
    router = APIRouter()

    @router.put("/{session_id}/mounts", responses=raises(NotFound))
    def put_mounts(session_id: str, body: MountsBody) -> dict[str, Any]:
        """Replace the notebook's ``[[mounts]]``; cells using a mount see its contents in
        their provenance (a changed file makes them stale)."""
        session = manager.get(session_id)
        mounts = [m.dump() for m in parse_mounts([m.model_dump() for m in body.mounts])]
        session.configure("mounts", mounts or None)
        changed(session)
        with session.lock:
            cells = cells_list(session.derived)
        return {"mounts": mounts, "cells": cells}

    return router
