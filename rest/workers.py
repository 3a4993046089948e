"""Worker routes of a notebook (API.md §8): the catalog, the default worker, the definitions.

``GET /{sid}/workers?refresh=`` lists the catalog (``notebooks.workers``; live
probes when ``refresh`` is true), ``PUT /{sid}/worker`` sets the notebook's
default worker, ``PUT /{sid}/workers`` replaces its ``[[workers]]``. In service
mode the definitions are the server's (403 on ``PUT workers``) and a notebook
may only pick a server-configured worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from foundation import Conflict, NotFound, Settings, Unauthorized
from notebooks import (
    NotebookManager,
    NotebookWorkerSpec,
    Session,
    Workers,
    cells_list,
)
from rest.openapi import raises

LOCAL = "local"  # the built-in worker's name


class WorkerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    worker: str | None = Field(default=None, max_length=200)

    @field_validator("worker")
    @classmethod
    def _trim(cls, value: str | None) -> str | None:
        value = value.strip() if value is not None else None
        return value or None


class WorkersBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workers: list[NotebookWorkerSpec] = Field(default_factory=list, max_length=100)


def worker_model(settings: Settings) -> Workers:
    """The server's worker model from its settings."""
    return Workers(
        settings.workers,
        probe_interval=settings.worker_probe_interval_s,
        probe_timeout=settings.worker_probe_timeout_s,
        editable=settings.deployment_mode != "service",
    )


def referenced(session: Session) -> set[str]:
    """Worker names the notebook and its cells are assigned to."""
    with session.lock:
        names = {session.cell_worker(cell) for cell in session.derived.cells}
    names.add(session.nb.get("worker"))
    return {n for n in names if n and n != LOCAL}


def workers_router(
    manager: NotebookManager,
    settings: Settings,
    workers: Workers,
    changed: Callable[[Session], None],
    *,
    router: APIRouter,
) -> APIRouter:
    """The routes; ``changed(session)`` tells the session's sockets its state moved."""
    service = settings.deployment_mode == "service"

    def catalog(session: Session, *, refresh: bool = False) -> dict[str, Any]:
        entries = workers.catalog(session.nb.get("workers"), referenced(session), refresh=refresh)
        return {
            "workers": entries,
            "definitions_editable": not service,
            "health_checked_at": int(time.time() * 1000),
        }

    @router.get("/{session_id}/workers", responses=raises(NotFound))
    def list_workers(session_id: str, refresh: bool = False) -> dict[str, Any]:
        """The worker catalog: ``local`` first, then the server's, the notebook's, and names
        assigned but defined nowhere. ``refresh=true`` probes every worker now."""
        return catalog(manager.get(session_id), refresh=refresh)

    @router.put("/{session_id}/worker", responses=raises(NotFound, Unauthorized))
    def put_worker(session_id: str, body: WorkerBody) -> dict[str, Any]:
        """Set the notebook's default worker (null or ``local``: the local kernel). Cells that
        change worker become stale."""
        session = manager.get(session_id)
        name = None if body.worker in (None, LOCAL) else body.worker
        if name is not None and service and name not in {s.name for s in workers.server}:
            raise Unauthorized(f"worker {name!r} is not one of this server's workers")
        session.configure("worker", name)
        changed(session)
        with session.lock:
            cells = cells_list(session.derived)
        return {"worker": session.nb.get("worker"), **catalog(session), "cells": cells}

    @router.put("/{session_id}/workers", responses=raises(NotFound, Unauthorized, Conflict))
    def put_workers(session_id: str, body: WorkersBody) -> dict[str, Any]:
        """Replace the notebook's ``[[workers]]`` (secrets only by ``token_env``)."""
        session = manager.get(session_id)
        if service:
            raise Unauthorized(
                "Notebook worker definitions are managed by the server in service mode"
            )
        names = [spec.name for spec in body.workers]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise Conflict(f"worker {twice[0]!r} is defined twice")
        dumped = [spec.dump() for spec in body.workers]
        session.configure("workers", dumped or None)
        changed(session)
        return {"configured_workers": dumped, **catalog(session)}

    return router
