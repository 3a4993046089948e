"""A notebook's Python environment over REST and the WebSocket (API.md §7, §13).

:class:`EnvService` runs environment jobs for sessions: one at a time per
notebook and none while a cell runs (409 ``ENVIRONMENT_BUSY``). A job
streams uv's output as ``environment_job_progress`` frames and ends with
``environment_job_finished``; after a change the session's kernel restarts
on the notebook's venv and cells that depended on the old environment go
stale. :func:`notebook_env_router` holds the routes; the parsing, uv and the
swap-in of the new environment are in ``notebooks.env``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from foundation import Conflict, InvalidArgument, NotFound, QuiverError
from notebooks import (
    Environment,
    EnvJob,
    Executions,
    NotebookManager,
    Parsed,
    Session,
    busy,
    cells_list,
    declared,
    name_of,
    package_problem,
    parse_environment_yaml,
    parse_requirements,
    requirement,
    resolved,
    state_dict,
)
from rest.notebook_ws import Conversation, Handler
from rest.openapi import raises
from rest.ws_hub import Hub

log = logging.getLogger(__name__)

ACTIONS = ("add", "remove", "sync", "import", "change_python", "r_init", "r_add")
MAX_TEXT = 500_000
PROGRESS_EVERY_S = 0.2


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


class EnvService:
    """The environments of a manager's sessions and the jobs that change them."""

    def __init__(
        self,
        manager: NotebookManager,
        executions: Executions | None,
        hub: Hub,
        changed: Callable[[Session], None],
    ) -> None:
        self.manager = manager
        self.executions = executions
        self.hub = hub
        self.changed = changed
        self._envs: dict[str, Environment] = {}
        self._lock = threading.Lock()

    def env(self, session: Session) -> Environment:
        with self._lock:
            found = self._envs.get(session.id)
            if found is None or found.path != session.nb.path:
                found = self._envs[session.id] = Environment(session.nb.path)
            return found

    def payload(self, session: Session) -> dict[str, Any]:
        """API.md §2.4 ``EnvPayload``."""
        env = self.env(session)
        job = env.job
        return {
            "environment": env.state(),
            "environment_job": job.as_dict() if job is not None else None,
            "environment_job_history": list(env.history.jobs),
            "dependencies": env.dependencies(),
            "resolved_dependencies": resolved(env.path),
            "r_environment": state_dict(session)["r_environment"],
        }

    def cells(self, session: Session) -> list[dict[str, Any]]:
        with session.lock:
            return cells_list(session.derived)

    # -- jobs --------------------------------------------------------------------------------

    def begin(self, session: Session, action: str, command: str, package: str | None) -> EnvJob:
        """A running job; 409 ``ENVIRONMENT_BUSY`` while a cell or another job runs."""
        env = self.env(session)
        with session.lock:
            runner = self.executions.get(session.id) if self.executions else None
            if session.executing or (runner is not None and runner.busy):
                running = session.derived.running or (runner.current if runner else None)
                raise busy(f"Notebook is executing cell {running}", env.job)
            job = env.begin(action, command, package)
            session.env_busy = True
        self.hub.publish(session.id, "environment_job_started", {"environment_job": job.as_dict()})
        return job

    def perform(self, session: Session, job: EnvJob, **change: Any) -> dict[str, Any]:
        """Run ``job`` to its end; the §2.4 ``EnvChange`` fields plus ``lockfile_changed``.
        A failure raises (400 with uv's lines) after the job is recorded as failed."""
        env = self.env(session)
        last = [0.0]

        def on_line(stream: str, line: str) -> None:
            job.append(stream, line)
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY_S:
                last[0] = now
                frame = {"environment_job": job.as_dict()}
                self.hub.publish(session.id, "environment_job_progress", frame)

        error: QuiverError | None = None
        result: dict[str, Any] = {}
        try:
            job.lockfile_changed = env.change(job, on_line=on_line, **change)
            job.phase = "refreshing_runtime"
            if self.executions is not None:
                job.phase = "invalidating_warm_pool"
                self.executions.environment_changed(session.id)
            job.phase = "recomputing_staleness"
            session.refresh_env()
            cells = self.cells(session)
            stale = [c["id"] for c in cells if c.get("status") != "ready"]
            job.stale_cell_ids, job.stale_cell_count = stale, len(stale)
            result = {
                "lockfile_changed": job.lockfile_changed,
                "stale_cell_count": len(stale),
                "stale_cell_ids": stale,
                "warm_pool_reset": self.executions is not None,
            }
        except QuiverError as exc:
            error = exc
        except Exception as exc:  # never leave the notebook marked busy
            log.exception("environment job %s failed", job.id)
            error = InvalidArgument(f"Environment operation failed: {type(exc).__name__}: {exc}")
        finally:
            env.end(job, error.message if error else None)
            session.env_busy = False
            self._finished(session, job)
        if error is not None:
            raise error
        return result

    def _finished(self, session: Session, job: EnvJob) -> None:
        payload = self.payload(session)
        cells = self.cells(session)
        frame = {
            **payload,
            "environment_job": job.as_dict(),
            "cells": cells,
            "lockfile_changed": job.lockfile_changed,
            "stale_cell_count": job.stale_cell_count,
            "stale_cell_ids": job.stale_cell_ids,
        }
        self.hub.publish(session.id, "environment_job_finished", frame)
        if job.action in ("add", "remove"):
            self.hub.publish(session.id, "dependency_changed", {
                "action": job.action, "package": job.package, "success": job.error is None,
                "error": job.error, "lockfile_changed": job.lockfile_changed,
                "dependencies": payload["dependencies"], "environment": payload["environment"],
            })  # fmt: skip
        self.changed(session)

    def plan(
        self, session: Session, action: str, *, package: str | None = None,
        parsed: Parsed | None = None,
    ) -> tuple[EnvJob, dict[str, Any]]:  # fmt: skip
        """Start a job for ``action``; the job and the arguments of its change."""
        if action == "add":
            assert package is not None
            req = str(requirement(package))
            return self.begin(session, "add", f"uv add {req}", req), {"add": req}
        if action == "remove":
            assert package is not None
            name = _removable(session, package)
            return self.begin(session, "remove", f"uv remove {name}", name), {"remove": name}
        if action == "import":
            assert parsed is not None
            job = self.begin(session, "import", "uv lock", None)
            return job, {"replace": parsed.requirements, "python": parsed.python}
        return self.begin(session, "sync", "uv sync", None), {}

    def run_now(self, session: Session, action: str, **what: Any) -> dict[str, Any]:
        job, change = self.plan(session, action, **what)
        result = self.perform(session, job, **change)
        return {**result, "operation_log": _log(job)}

    def run_later(self, session: Session, action: str, **what: Any) -> EnvJob:
        job, change = self.plan(session, action, **what)

        def go() -> None:
            with contextlib.suppress(QuiverError):  # recorded in the job and its frames
                self.perform(session, job, **change)

        threading.Thread(target=go, daemon=True, name=f"env-job-{job.id[:8]}").start()
        return job

    # -- WebSocket ---------------------------------------------------------------------------

    def ws_handlers(self) -> dict[str, Handler]:
        def handler(action: str) -> Handler:
            def answer(talk: Conversation, payload: dict[str, Any]) -> None:
                raw = payload.get("package")
                problem = package_problem(raw) if isinstance(raw, str) else "Missing package"
                if problem:
                    talk.error(problem)
                    return
                try:
                    self.run_later(talk.session, action, package=raw)
                except Conflict as exc:
                    detail = exc.detail if isinstance(exc.detail, dict) else {}
                    talk.error(exc.message, code=detail.get("code", "conflict"))
                except QuiverError as exc:
                    talk.error(exc.message)

            return answer

        return {"dependency_add": handler("add"), "dependency_remove": handler("remove")}


def _removable(session: Session, package: str) -> str:
    name = name_of(package)
    if name not in {name_of(d) for d in declared(session.nb.path)}:
        raise InvalidArgument(f"Package {package!r} is not a dependency of this notebook")
    return name


def _log(job: EnvJob) -> dict[str, Any]:
    return {
        "command": job.command, "duration_ms": job.duration_ms or 0,
        "stdout": job.stdout, "stderr": job.stderr,
        "stdout_truncated": job.stdout_truncated, "stderr_truncated": job.stderr_truncated,
    }  # fmt: skip


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


def notebook_env_router(manager: NotebookManager, service: EnvService) -> APIRouter:
    """The §7 routes under ``/v1/notebooks``."""
    router = APIRouter()

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
