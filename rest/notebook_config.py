"""Notebook-level settings and listings Strata 0.11's browser client calls (API.md §16).

``PUT env``, ``PUT timeout``, ``PUT python-version``, ``POST close``, ``POST
recents/validate`` and ``GET artifacts`` (the registry names
that point at this notebook's cell outputs), under ``/v1/notebooks``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from flight import LocalActions
from foundation import Conflict, InvalidArgument, NotFound, QuiverError, Settings
from notebooks import (
    TOML,
    Executions,
    NotebookManager,
    Session,
    cells_list,
    confine,
    environment_dict,
    requested_python,
    set_requested_python,
)
from rest.openapi import raises

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class EnvBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    env: dict[str, str] = Field(
        default_factory=dict,
        max_length=500,
        # what the validator below checks, stated for generated clients
        json_schema_extra={"propertyNames": {"pattern": _ENV_NAME.pattern}},
    )

    @field_validator("env")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if not _ENV_NAME.match(key):
                raise ValueError(f"invalid environment variable name {key!r}")
            if len(item) > 100_000 or "\x00" in item:
                raise ValueError(f"the value of {key} is too long or holds a NUL byte")
        return value


class TimeoutBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout: float | None = Field(default=None, gt=0, le=86_400)


class PythonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    python_version: str = Field(max_length=16, pattern=r"^\d+\.\d+$")


class RecentsBody(BaseModel):
    paths: list[str] = Field(default_factory=list, max_length=100)


def notebook_config_router(
    manager: NotebookManager,
    settings: Settings,
    executions: Executions | None,
    changed: Callable[[Session], None],
    *,
    router: APIRouter,
) -> APIRouter:
    """The routes; ``changed(session)`` tells the session's sockets its state moved."""

    def cells(session: Session) -> list[dict[str, Any]]:
        with session.lock:
            return cells_list(session.derived)

    @router.put("/{session_id}/env", responses=raises(NotFound))
    def put_env(session_id: str, body: EnvBody) -> dict[str, Any]:
        """Replace the notebook's ``[env]`` (cells run with it; a change makes them stale)."""
        session = manager.get(session_id)
        session.configure("env", dict(body.env) or None)
        changed(session)
        return {
            "env": dict(session.nb.get("env") or {}),
            "env_sources": {},
            "env_fetch_error": None,
            "env_fetched_at": None,
            "secret_manager_config": {},
            "cells": cells(session),
        }

    @router.put("/{session_id}/timeout", responses=raises(NotFound))
    def put_timeout(session_id: str, body: TimeoutBody) -> dict[str, Any]:
        """Replace the notebook's default cell time limit (null: none)."""
        session = manager.get(session_id)
        session.configure("timeout", body.timeout)
        changed(session)
        return {"timeout": session.nb.get("timeout"), "cells": cells(session)}

    @router.put(
        "/{session_id}/python-version",
        response_model=None,
        responses=raises(InvalidArgument, NotFound, Conflict),
    )
    def put_python(session_id: str, body: PythonBody) -> JSONResponse:
        """Record the notebook's Python (``requires-python``); kernels start with the
        server's matching interpreter. Unchanged: 200 ``accepted: false``."""
        session = manager.get(session_id)
        available = list(manager.python_versions())
        if body.python_version not in available:
            raise InvalidArgument(
                f"Python {body.python_version} is not available for this deployment "
                f"(allowed: {', '.join(available)})"
            )
        accepted = requested_python(session.nb.path) != body.python_version
        if accepted:
            session.ensure_not_busy()
            set_requested_python(session.nb.path, body.python_version)
            session.refresh_env()
            changed(session)
        answer: dict[str, Any] = {"accepted": accepted}
        if not accepted:
            answer["reason"] = "already_at_requested_version"
        answer.update(environment=environment_dict(session), cells=cells(session))
        return JSONResponse(answer)

    @router.post("/{session_id}/close", responses=raises(NotFound, Conflict))
    def close(session_id: str) -> dict[str, Any]:
        """Close the session (its kernel stops); the notebook stays on disk."""
        session = manager.get(session_id)
        if session.executing:
            raise Conflict("Closing the session is blocked while notebook execution is running.")
        session.ensure_env_idle()
        manager.close(session_id)
        return {"closed": True, "session_id": session_id, "path": session.path}

    @router.post("/recents/validate")
    def validate_recents(body: RecentsBody) -> dict[str, Any]:
        """The given paths that still hold a notebook (inside the storage root)."""
        valid = []
        for raw in body.paths:
            if not isinstance(raw, str) or not raw.strip():
                continue
            try:
                path: Path = confine(manager.root, raw, "path")
                if (path / TOML).is_file():
                    valid.append(raw)
            except (QuiverError, OSError, ValueError):
                continue
        return {"valid": valid}

    @router.get("/{session_id}/artifacts", responses=raises(NotFound))
    def artifacts(session_id: str) -> dict[str, Any]:
        """Per cell, the registry names pointing at its outputs; ``readers`` is empty
        (Quiver cells do not declare the datasets they read)."""
        session = manager.get(session_id)
        by_uri: dict[str, str] = {}
        for cid, result in session.derived.results.items():
            for uri in result.artifact_uris.values():
                by_uri[uri] = cid
        found: dict[str, list[dict[str, Any]]] = {}
        if by_uri and executions is not None:
            actions = LocalActions(executions.client, enabled=settings.rest_in_process_flight)
            for named in actions.action("name-list", {})["names"]:
                cid = by_uri.get(named["artifact_uri"])
                if cid is not None:
                    found.setdefault(cid, []).append(
                        {
                            "name": named["name"],
                            "artifact_uri": named["artifact_uri"],
                            "artifact_id": named["artifact_id"],
                            "version": named["version"],
                            "updated_at": named["updated_at"],
                        }
                    )
        return {"cells": found, "readers": {}}

    return router
