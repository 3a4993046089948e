"""Notebook routes (API.md §3–§6, §11, §13): validate, call the domain, shape the JSON.

Statuses come from the domain errors (``rest/errors.py``); body validation is
pydantic's 422. Responses are pre-built dicts of plain JSON types, encoded
once with ``json.dumps`` (FastAPI's generic encoder would walk them again).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fastapi import APIRouter, Depends, Query, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field, field_validator
from starlette.requests import HTTPConnection

from foundation import (
    Conflict,
    Internal,
    InvalidArgument,
    NotFound,
    Settings,
    Unauthorized,
    Unavailable,
)
from notebooks import (
    LANGUAGES,
    MODES,
    NAME_TEXT_PATTERN,
    NOTEBOOK_NAME_PATTERN,
    Executions,
    NotebookManager,
    Runner,
    Session,
    caller,
    cell_json,
    cells_json,
    dag_dict,
    dag_update,
    dumps,
    identity,
    state_dict,
)
from rest.env_jobs import ENV_WAIT_S, EnvService
from rest.notebook_config import notebook_config_router
from rest.notebook_data import notebook_data_router
from rest.notebook_env import notebook_env_router
from rest.notebook_exchange import notebook_exchange_router
from rest.notebook_ws import Handler, serve_socket
from rest.openapi import DATA, DataFormat, raises
from rest.streaming import check_format, stream_response
from rest.workers import worker_model, workers_router
from rest.ws_hub import Hub
from rest.ws_messages import handlers as ws_handlers


def _json(body: Any, *, started: float | None = None) -> Response:
    headers = {}
    if started is not None:
        headers["Server-Timing"] = f"total;dur={(time.perf_counter() - started) * 1000:.1f}"
    payload = body if isinstance(body, bytes) else dumps(body)
    return Response(payload, media_type="application/json", headers=headers)


def _object(**members: Any) -> bytes:
    """A JSON object whose ``bytes`` members are already-encoded JSON."""
    parts = [
        dumps(key) + b":" + (value if isinstance(value, bytes) else dumps(value))
        for key, value in members.items()
    ]
    return b"{" + b",".join(parts) + b"}"


class CreateBody(BaseModel):
    parent_path: str
    name: str = Field(json_schema_extra={"pattern": NOTEBOOK_NAME_PATTERN})
    python_version: str | None = Field(default=None, max_length=16, pattern=r"^\d+\.\d+$")
    starter_cell: bool = False


class OpenBody(BaseModel):
    path: str = "..."


class PathBody(BaseModel):
    path: str


class RenameBody(BaseModel):
    name: str = Field(
        json_schema_extra={
            "allOf": [{"pattern": NAME_TEXT_PATTERN}, {"pattern": r"\S"}],
            "maxLength": 255,
        }
    )

    @field_validator("name")
    @classmethod
    def _trimmed(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("name must not be empty")
        if len(value) > 255:
            raise ValueError("name must be at most 255 characters")
        return value


class AddCellBody(BaseModel):
    after_cell_id: str | None = None
    language: str = Field("python", json_schema_extra={"enum": list(LANGUAGES)})

    @field_validator("language")
    @classmethod
    def _supported(cls, value: str) -> str:
        if value not in LANGUAGES:
            raise ValueError(
                f"unsupported cell language '{value}'; supported: {', '.join(LANGUAGES)}"
            )
        return value


class ReorderBody(BaseModel):
    cell_ids: list[str]


class SourceBody(BaseModel):
    source: str
    author: str | None = Field(default=None, max_length=200)
    force: bool = False


def _check_source(source: str, limit: int) -> None:
    # The cap is a setting, so it is checked here rather than in the model; same 422 shape.
    if len(source) > limit:
        raise RequestValidationError(
            [
                {
                    "type": "string_too_long",
                    "loc": ("body", "source"),
                    "msg": f"String should have at most {limit} characters",
                    "input": None,
                    "ctx": {"max_length": limit},
                }
            ]
        )


def notebook_router(
    manager: NotebookManager,
    settings: Settings,
    *,
    executions: Executions | None = None,
    hub: Hub | None = None,
    ws_extra: Mapping[str, Handler] | None = None,
    extra: Iterable[Callable[[APIRouter], object]] = (),
) -> APIRouter:
    """The ``/v1/notebooks`` routes over ``manager``.

    ``executions`` (built over the same manager with the Flight location the
    kernels and cell-data routes use) enables running cells and reading their
    outputs; without it those routes answer 503. Run frames of ``executions``
    go to the WebSocket ``hub`` (one is made if not given). ``ws_extra`` adds or
    replaces WebSocket message handlers (``rest/ws_messages.py``); each of ``extra``
    declares a feature's own routes (e.g. the AI assistant's) on this router, so they
    have the same prefix and caller.
    """
    header = settings.personal_mode_user_header

    async def identify(connection: HTTPConnection) -> None:
        # Async, so the value is set in the request's own context, which the
        # sync route functions inherit when they run in the thread pool.
        # (HTTPConnection: requests and WebSockets alike.)
        caller.set(connection.headers.get(header) if header else None)

    router = APIRouter(prefix="/v1/notebooks", tags=["notebooks"], dependencies=[Depends(identify)])
    max_source = settings.notebook_max_source_chars
    hub = hub or Hub()
    if executions is not None:
        executions.set_emitter(hub.publish)

    def runner_for(session: Session) -> Runner:
        if executions is None:
            raise Unavailable("Cell execution is not configured on this server")
        return executions.runner(session)

    def changed(session: Session, *, dag: bool = False) -> None:
        # Cheap when nobody listens: frames are built only for live sockets.
        if not hub.has_clients(session.id):
            return
        hub.publish_state(session)
        if dag:
            hub.publish(session.id, "dag_update", dag_update(session))

    def opened(session: Session, *, dag: bool) -> dict[str, Any]:
        with session.lock:
            body = state_dict(session)
            if dag:
                body["dag"] = dag_dict(session.derived.dag)
        body["session_id"] = session.id
        body["path"] = session.path
        body.update(manager.runtime_config())
        return body

    @router.get("/config")
    def config() -> Response:
        return _json(manager.runtime_config())

    @router.get("/discover")
    def discover() -> Response:
        return _json(manager.discover())

    @router.post("/create", responses=raises(InvalidArgument, Unauthorized, Conflict))
    def create(body: CreateBody) -> Response:
        started = time.perf_counter()
        session = manager.create(
            body.parent_path, body.name, body.python_version, body.starter_cell
        )
        return _json(opened(session, dag=False), started=started)

    @router.post("/open", responses=raises(InvalidArgument, NotFound))
    def open_notebook(body: OpenBody) -> Response:
        started = time.perf_counter()
        return _json(opened(manager.open(body.path), dag=True), started=started)

    @router.post(
        "/delete-by-path", responses=raises(InvalidArgument, Unauthorized, NotFound, Conflict)
    )
    def delete_by_path(body: PathBody) -> Response:
        return _json(manager.delete_by_path(body.path))

    @router.get("/sessions", responses=raises(Unauthorized))
    def sessions() -> Response:
        return _json({"sessions": manager.list_sessions()})

    @router.get("/sessions/{session_id}", responses=raises(Unauthorized, NotFound))
    def session_state(session_id: str) -> Response:
        started = time.perf_counter()
        manager.require_personal()
        session = manager.get(session_id, "Session not found")
        return _json(opened(session, dag=True), started=started)

    @router.delete(
        "/{session_id}", responses=raises(InvalidArgument, Unauthorized, NotFound, Conflict)
    )
    def delete(session_id: str) -> Response:
        return _json(manager.delete(session_id))

    @router.put("/{session_id}/name", responses=raises(NotFound, Conflict))
    def rename(session_id: str, body: RenameBody) -> Response:
        session = manager.get(session_id)
        session.rename(body.name)
        return _json({"notebook_id": session.nb.notebook_id, "name": session.nb.name})

    @router.get("/{session_id}/cells", responses=raises(NotFound))
    def list_cells(session_id: str) -> Response:
        session = manager.get(session_id)
        cells = cells_json(session.derived, session.render_cache)
        return _json(_object(notebook_id=session.nb.notebook_id, cells=cells))

    @router.post("/{session_id}/cells", responses=raises(InvalidArgument, NotFound, Conflict))
    def add_cell(session_id: str, body: AddCellBody) -> Response:
        session = manager.get(session_id)
        with session.lock:
            cell = session.add_cell(body.language, body.after_cell_id)
            derived = session.derived
        changed(session, dag=True)
        return _json(cell_json(_current(derived, cell.id), derived, session.render_cache))

    @router.put(
        "/{session_id}/cells/reorder", responses=raises(InvalidArgument, NotFound, Conflict)
    )
    def reorder(session_id: str, body: ReorderBody) -> Response:
        session = manager.get(session_id)
        with session.lock:
            session.reorder(body.cell_ids)
            derived = session.derived
        changed(session, dag=True)
        cells = cells_json(derived, session.render_cache)
        return _json(_object(notebook_id=session.nb.notebook_id, cells=cells))

    @router.put(
        "/{session_id}/cells/{cell_id}", responses=raises(InvalidArgument, NotFound, Conflict)
    )
    def update_cell(session_id: str, cell_id: str, body: SourceBody) -> Response:
        _check_source(body.source, max_source)
        session = manager.get(session_id)
        author = identity(caller.get(), body.author)
        lock_s = settings.notebook_cell_lock_s
        with session.lock:
            session.edit_source(
                cell_id, body.source, author=author, force=body.force, lock_s=lock_s
            )
            derived = session.derived
        changed(session, dag=True)
        hub.publish_presence(session)
        cache = session.render_cache
        return _json(
            _object(
                cell=cell_json(_current(derived, cell_id), derived, cache),
                dag=dag_dict(derived.dag),
                cells=cells_json(derived, cache),
            )
        )

    @router.delete(
        "/{session_id}/cells/{cell_id}", responses=raises(InvalidArgument, NotFound, Conflict)
    )
    def delete_cell(session_id: str, cell_id: str) -> Response:
        session = manager.get(session_id)
        with session.lock:
            session.delete_cell(cell_id)
            derived = session.derived
        changed(session, dag=True)
        dag = dag_dict(derived.dag, producers=False)
        dag["variant_groups"] = []
        return _json(
            _object(
                message="Cell deleted",
                cell_id=cell_id,
                variant_groups=[],
                cells=cells_json(derived, session.render_cache),
                dag=dag,
            )
        )

    @router.get("/{session_id}/dag", responses=raises(NotFound))
    def get_dag(session_id: str) -> Response:
        return _json(dag_dict(manager.get(session_id).derived.dag))

    # -- execution (API.md §5, §13) -------------------------------------------------------

    @router.post(
        "/{session_id}/cells/{cell_id}/execute",
        responses=raises(InvalidArgument, NotFound, Conflict, Unavailable),
    )
    def execute(
        session_id: str,
        cell_id: str,
        mode: str = Query("normal", json_schema_extra={"enum": list(MODES)}),
        wait_for_environment: bool = Query(
            False, description="While an environment job runs, run when it ends (not 409)"
        ),
    ) -> Response:
        session = manager.get(session_id)
        if mode not in MODES:
            raise InvalidArgument(f"unknown run mode '{mode}'")
        if session.derived.cell(cell_id) is None:
            raise NotFound("Cell not found")
        if wait_for_environment:
            session.wait_env_idle(ENV_WAIT_S)  # still busy after it: 409 as without waiting
        return _json(runner_for(session).execute(cell_id, mode))

    @router.post("/{session_id}/cells/{cell_id}/cancel", responses=raises(NotFound))
    def cancel(session_id: str, cell_id: str) -> Response:
        session = manager.get(session_id)
        if session.derived.cell(cell_id) is None:
            raise NotFound("Cell not found")
        runner = executions.get(session.id) if executions is not None else None
        cancelled = runner is not None and runner.cancel(cell_id)
        return _json({"cell_id": cell_id, "cancelled": cancelled})

    @router.get(
        "/{session_id}/cells/{cell_id}/outputs/{variable}",
        response_class=Response,
        responses={**DATA, **raises(InvalidArgument, NotFound, Unavailable)},
    )
    def cell_output(
        session_id: str, cell_id: str, variable: str, format: DataFormat = None
    ) -> Response:
        fmt = check_format(format)
        session = manager.get(session_id)
        derived = session.derived
        if derived.cell(cell_id) is None:
            raise NotFound("Cell not found")
        result = derived.results.get(cell_id)
        var = result.variables.get(variable) if result is not None else None
        if var is None:
            raise NotFound(f"Cell {cell_id} has no output named '{variable}' (run the cell?)")
        if var.get("kind") != "arrow" or not var.get("artifact_uri"):
            raise NotFound(
                f"Output '{variable}' of cell {cell_id} is a {var.get('type', 'value')}, "
                "not a table; only tables are served as data"
            )
        if executions is None:
            raise Unavailable("Cell data needs the Flight service, which is not configured")
        uri = str(var["artifact_uri"])
        reader = executions.client.stream(uri)  # a Flight DoGet, forwarded batch by batch
        return stream_response(
            reader, fmt, filename=variable, headers={"X-Strata-Artifact-Uri": uri}
        )

    # The parts declare their routes on this router rather than on routers of their own
    # included here: FastAPI builds an included router's routes again, and a nested one's
    # once more when the app includes this router (40% of building the whole app).
    notebook_data_router(manager, settings, executions, router=router)
    notebook_config_router(manager, settings, executions, changed, router=router)
    environments = EnvService(manager, executions, hub, changed)
    notebook_env_router(manager, environments, router=router)
    messages = ws_handlers({**environments.ws_handlers(), **(ws_extra or {})})

    def opened_with_dag(session: Session) -> dict[str, Any]:
        return opened(session, dag=True)

    notebook_exchange_router(manager, settings, executions, changed, opened_with_dag, router=router)
    found = executions.workers if executions is not None else None
    workers_router(manager, settings, found or worker_model(settings), changed, router=router)
    for feature in extra:
        feature(router)

    @router.websocket("/ws/{session_id}")
    async def socket(websocket: WebSocket, session_id: str) -> None:
        await serve_socket(
            websocket, session_id, hub, manager, executions, settings=settings, handlers=messages
        )

    return router


def _current(derived: Any, cell_id: str) -> Any:
    cell = derived.cell(cell_id)
    if cell is None:  # the lock makes this unreachable; say so loudly if not
        raise Internal(f"cell {cell_id} vanished during the request")
    return cell
