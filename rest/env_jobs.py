"""Environment jobs of notebook sessions: busy rules, the uv run, frames (API.md §7, §13).

:class:`EnvService` runs environment jobs for sessions: one at a time per
notebook and none while a cell runs (409 ``ENVIRONMENT_BUSY``). A job
streams uv's output as ``environment_job_progress`` frames and ends with
``environment_job_finished`` (and ``dependency_changed`` for add/remove);
after a change the session's kernel restarts on the notebook's venv and
cells that depended on the old environment go stale. The parsing, uv and
the swap-in of the new environment are in ``notebooks.env``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from foundation import Conflict, InvalidArgument, QuiverError
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
    requirement,
    resolved,
    state_dict,
)
from rest.notebook_ws import Conversation, Handler
from rest.ws_hub import Hub

log = logging.getLogger(__name__)

ENV_WAIT_S = 600.0
"""How long a cell run that asked to wait for the environment waits for a job (uv's own bound)."""

PROGRESS_EVERY_S = 0.2
"""At most one ``environment_job_progress`` frame this often (uv's lines accumulate)."""


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

    def env(self, session: Session) -> Environment:
        return session.environment

    def payload(self, session: Session) -> dict[str, Any]:
        """API.md §2.4 ``EnvPayload``."""
        env = self.env(session)
        return {
            "environment": env.state(),
            **env.jobs(),
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
            session.env_busy = True  # until the job ends (a waiting run then goes)
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
