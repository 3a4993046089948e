"""A notebook's Python environment over REST (API.md §7): the routes and their bodies.

The jobs behind them (busy rules, uv, frames) are :class:`rest.env_jobs.EnvService`.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from foundation import Conflict, InvalidArgument, NotFound
from notebooks import (
    NotebookManager,
    Parsed,
    Session,
    declared,
    name_of,
    package_problem,
    parse_environment_yaml,
    parse_requirements,
)
from rest.env_jobs import EnvService
from rest.openapi import raises

ACTIONS = ("add", "remove", "sync", "import", "change_python", "r_init", "r_add")
MAX_TEXT = 500_000


def _package(value: str | None) -> str | None:
    if value is None:
        return None
    problem = package_problem(value)
    if problem:
        raise ValueError(problem)
    return value.strip()


class PackageBody(BaseModel):
    package: str = Field(max_length=200)
    _check = field_validator("package")(classmethod(lambda cls, v: _package(v)))


class RequirementsBody(BaseModel):
    requirements: str = Field(max_length=MAX_TEXT)


class YamlBody(BaseModel):
    environment_yaml: str = Field(max_length=MAX_TEXT)


class JobBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    action: str = Field(max_length=32)
    package: str | None = Field(default=None, max_length=200)
    requirements: str | None = Field(default=None, max_length=MAX_TEXT)
    environment_yaml: str | None = Field(default=None, max_length=MAX_TEXT)

    @field_validator("action")
    @classmethod
    def _action(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}")
        return value

    _check = field_validator("package")(classmethod(lambda cls, v: _package(v)))


def _preview(session: Session, parsed: Parsed) -> dict[str, Any]:
    current = {name_of(d): d for d in declared(session.nb.path)}
    new = {name_of(r): r for r in parsed.requirements}

    def info(spec: str) -> dict[str, Any]:
        return {"name": name_of(spec), "version": None, "specifier": spec}

    return {
        "preview_dependencies": [info(r) for r in parsed.requirements],
        "normalized_requirements": list(parsed.requirements),
        "imported_count": len(parsed.requirements),
        "warnings": list(parsed.warnings),
        "additions": [info(r) for n, r in new.items() if current.get(n) != r],
        "removals": [info(r) for n, r in current.items() if n not in new],
        "unchanged": [info(r) for n, r in new.items() if current.get(n) == r],
    }


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "notebook"


def notebook_env_router(
    manager: NotebookManager, service: EnvService, *, router: APIRouter
) -> APIRouter:
    """The §7 routes under ``/v1/notebooks``."""

    def everything(session: Session, **extra: Any) -> dict[str, Any]:
        return {**extra, **service.payload(session), "cells": service.cells(session)}

    @router.get("/{session_id}/dependencies", responses=raises(NotFound))
    def dependencies(session_id: str) -> dict[str, Any]:
        """The notebook's declared and resolved packages (``EnvPayload``)."""
        return service.payload(manager.get(session_id))

    @router.post(
        "/{session_id}/dependencies", responses=raises(InvalidArgument, NotFound, Conflict)
    )
    def add(session_id: str, body: PackageBody) -> dict[str, Any]:
        """``uv add <package>``, then the venv synced; the cells made stale by it."""
        session = manager.get(session_id)
        done = service.run_now(session, "add", package=body.package)
        return everything(session, success=True, package=body.package, **done)

    @router.delete(
        "/{session_id}/dependencies/{package_name}",
        responses=raises(InvalidArgument, NotFound, Conflict),
    )
    def remove(session_id: str, package_name: str) -> dict[str, Any]:
        """``uv remove <package_name>``, then the venv synced."""
        session = manager.get(session_id)
        problem = package_problem(package_name)
        if problem:
            raise InvalidArgument(problem)
        done = service.run_now(session, "remove", package=package_name.strip())
        return everything(session, success=True, package=package_name.strip(), **done)

    @router.get("/{session_id}/environment", responses=raises(NotFound))
    def environment(session_id: str) -> dict[str, Any]:
        """The environment's state (``EnvPayload``)."""
        return service.payload(manager.get(session_id))

    @router.post(
        "/{session_id}/environment/sync", responses=raises(InvalidArgument, NotFound, Conflict)
    )
    def sync(session_id: str) -> dict[str, Any]:
        """``uv lock`` + ``uv sync`` now (synchronous)."""
        session = manager.get(session_id)
        done = service.run_now(session, "sync")
        return everything(session, **done)

    @router.get("/{session_id}/environment/jobs/current", responses=raises(NotFound))
    def current(session_id: str) -> dict[str, Any]:
        """The running job (or null), the last finished ones and the cells."""
        return everything(manager.get(session_id))

    @router.post(
        "/{session_id}/environment/jobs",
        status_code=202,
        responses=raises(InvalidArgument, NotFound, Conflict),
    )
    def submit(session_id: str, body: JobBody) -> JSONResponse:
        """Start an environment job in the background (202); frames tell its progress."""
        session = manager.get(session_id)
        what = _job_arguments(body)
        service.run_later(session, body.action, **what)
        return JSONResponse(everything(session, accepted=True), status_code=202)

    @router.get("/{session_id}/environment/requirements.txt", responses=raises(NotFound))
    def export(session_id: str) -> PlainTextResponse:
        """The declared dependencies, one a line."""
        session = manager.get(session_id)
        deps = declared(session.nb.path)
        name = _safe_name(session.nb.name)
        return PlainTextResponse(
            "".join(f"{d}\n" for d in deps),
            headers={"Content-Disposition": f'attachment; filename="{name}-requirements.txt"'},
        )

    def importing(session_id: str, parsed: Parsed) -> dict[str, Any]:
        session = manager.get(session_id)
        done = service.run_now(session, "import", parsed=parsed)
        return everything(session, success=True, imported_count=len(parsed.requirements),
                          warnings=list(parsed.warnings), **done)  # fmt: skip

    @router.post(
        "/{session_id}/environment/requirements.txt",
        responses=raises(InvalidArgument, NotFound, Conflict),
    )
    def import_requirements(session_id: str, body: RequirementsBody) -> dict[str, Any]:
        """Replace the declared dependencies with a requirements.txt."""
        return importing(session_id, parse_requirements(body.requirements))

    @router.post(
        "/{session_id}/environment/requirements.txt/preview",
        responses=raises(InvalidArgument, NotFound),
    )
    def preview_requirements(session_id: str, body: RequirementsBody) -> dict[str, Any]:
        """What importing a requirements.txt would change (nothing is touched)."""
        session = manager.get(session_id)
        return {
            **_preview(session, parse_requirements(body.requirements)),
            **service.payload(session),
        }

    @router.post(
        "/{session_id}/environment/environment.yaml",
        responses=raises(InvalidArgument, NotFound, Conflict),
    )
    def import_yaml(session_id: str, body: YamlBody) -> dict[str, Any]:
        """Replace the declared dependencies with a conda environment.yaml's."""
        return importing(session_id, parse_environment_yaml(body.environment_yaml))

    @router.post(
        "/{session_id}/environment/environment.yaml/preview",
        responses=raises(InvalidArgument, NotFound),
    )
    def preview_yaml(session_id: str, body: YamlBody) -> dict[str, Any]:
        """What importing an environment.yaml would change (nothing is touched)."""
        session = manager.get(session_id)
        parsed = parse_environment_yaml(body.environment_yaml)
        return {**_preview(session, parsed), **service.payload(session)}

    return router


def _job_arguments(body: JobBody) -> dict[str, Any]:
    """The §7 validation of a job body (400s); the arguments of its change."""
    action, content = body.action, (body.requirements, body.environment_yaml)
    has_content = any(c is not None for c in content)
    if action in ("add", "remove"):
        if body.package is None:
            raise InvalidArgument(f"{action} jobs require package")
        if has_content:
            raise InvalidArgument(f"{action} jobs take no requirements or environment_yaml")
        return {"package": body.package}
    if action == "sync":
        if body.package is not None or has_content:
            raise InvalidArgument("sync jobs take no package, requirements or environment_yaml")
        return {}
    if action == "import":
        if body.package is not None or sum(c is not None for c in content) != 1:
            raise InvalidArgument(
                "import jobs take exactly one of requirements or environment_yaml"
            )
        if body.requirements is not None:
            return {"parsed": parse_requirements(body.requirements)}
        return {"parsed": parse_environment_yaml(body.environment_yaml or "")}
    if action == "change_python":
        raise InvalidArgument("change_python jobs require python_version")
    raise InvalidArgument(f"{action} jobs need R (Rscript), which this server does not have")
