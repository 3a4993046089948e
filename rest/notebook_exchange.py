"""A notebook's mounts, export and import routes (API.md §8, §9), under ``/v1/notebooks``.

Thin: the bodies are checked here (a bad mount is a 422 naming the field and
why), the work is ``notebooks.exchange``'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import pyarrow as pa
from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from foundation import (
    Conflict,
    InvalidArgument,
    NotFound,
    QuiverError,
    Settings,
    TooLarge,
    Unavailable,
)
from notebooks import (
    IPYNB_LIMIT,
    MOUNT_SECRET_PATTERN,
    MOUNT_URI_PATTERN,
    Executions,
    NotebookManager,
    Session,
    bundle_entries,
    cells_list,
    check_format,
    chosen_artifacts,
    confine,
    dumps,
    html_page,
    markdown,
    open_archive,
    parse_mounts,
    picture,
    read_ipynb,
    restore_archive,
    safe_name,
    selected_cells,
    snapshot_entries,
    write_notebook,
    zip_chunks,
)
from rest.middleware import UPLOAD_ROUTE
from rest.openapi import content, raises
from rest.streaming import body as arrow_body

EXPORT = content(
    "application/zip",
    "text/markdown",
    "text/html",
    description="The notebook as a zip, a snapshot (a zip with results), Markdown or HTML.",
)

MOUNT_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
FORMATS = ["zip", "snapshot", "markdown", "html"]
INCLUDES = ["all", "selected", "none"]


class MountSpec(BaseModel):
    """API.md §2.6: a mount a notebook's cells see as a variable of its name."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=MOUNT_NAME, max_length=100)
    uri: str = Field(
        min_length=1,
        max_length=4096,
        description="file:///path, s3://bucket/prefix, gs://…, az://…; no '..'",
        json_schema_extra={"pattern": MOUNT_URI_PATTERN},  # checked by the validator below
    )
    mode: Literal["ro", "rw"] = "ro"
    pin: str | None = Field(default=None, max_length=200)
    options: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        max_length=50,
        description="fsspec storage options; <option>_env names the variable holding a secret",
        json_schema_extra={
            "propertyNames": {
                "anyOf": [{"pattern": "_env$"}, {"not": {"pattern": MOUNT_SECRET_PATTERN}}]
            },
            "patternProperties": {"_env$": {"type": "string", "pattern": MOUNT_NAME}},
        },
    )


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
    manager: NotebookManager,
    settings: Settings,
    executions: Executions | None,
    changed: Callable[[Session], None],
    opened: Callable[[Session], dict[str, Any]],
    *,
    router: APIRouter,
) -> APIRouter:
    """The routes; ``changed(session)`` tells the session's sockets its state moved,
    ``opened(session)`` is the answer of ``open`` (an import answers it too)."""

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

    @router.put("/{session_id}/cells/{cell_id}/mounts", responses=raises(NotFound))
    def put_cell_mounts(session_id: str, cell_id: str, body: MountsBody) -> dict[str, Any]:
        """Replace the cell's own ``mounts`` (its entry in ``notebook.toml``), which narrow
        the notebook's by name; the cell's ``mounts`` then shows what it sees."""
        session = manager.get(session_id)
        mounts = [m.dump() for m in parse_mounts([m.model_dump() for m in body.mounts])]
        session.configure_cell(cell_id, "mounts", mounts or None)
        changed(session)
        with session.lock:
            cells = cells_list(session.derived)
        cell = next(c for c in cells if c["id"] == cell_id)
        return {"cell": cell, "mounts": mounts, "cells": cells}

    def artifact_chunks(uri: str) -> Iterator[bytes | memoryview]:
        if executions is None:
            raise Unavailable("Artifacts are not reachable: no Flight service is configured")
        stream = executions.client.open_stream(uri)
        try:
            yield from arrow_body(stream.reader(), "arrow")
        finally:
            stream.cancel()

    def reachable(uris: list[str]) -> None:
        """Refuse (503, 404) before a snapshot's stream starts, not in its middle: once
        the headers went out, a failure can only cut the archive short."""
        if uris and executions is None:
            raise Unavailable("A snapshot with artifacts needs the Flight service, which is "
                              "not configured; export with include=none")  # fmt: skip
        for uri in uris:
            assert executions is not None
            executions.client.status(uri)

    @router.get(
        "/{session_id}/export",
        response_class=Response,
        responses={**EXPORT, **raises(InvalidArgument, NotFound, Unavailable)},
    )
    def export(
        session_id: str,
        fmt: Annotated[str, Query(json_schema_extra={"enum": FORMATS})] = "zip",
        include: Annotated[str, Query(json_schema_extra={"enum": INCLUDES})] = "all",
        cells: Annotated[str, Query(max_length=4096, description="cell ids, comma-separated")] = "",
        app_view: bool = False,
        include_inactive_variants: bool = False,
    ) -> Response:
        """The notebook as a file: ``zip`` (sources and provenance), ``snapshot`` (the zip
        with outputs and artifacts chosen by ``include``/``cells``), ``markdown`` or ``html``."""
        session = manager.get(session_id)
        check_format(fmt)
        pic = picture(session)
        name = safe_name(pic.name)
        if fmt == "zip":
            return _download(zip_chunks(bundle_entries(pic)), "application/zip", f"{name}.zip")
        if fmt == "snapshot":
            wanted = [c.strip() for c in cells.split(",") if c.strip()]
            chosen = selected_cells(pic, include, wanted)
            reachable(chosen_artifacts(pic, chosen))
            chunks = zip_chunks(snapshot_entries(pic, chosen, artifact_chunks))
            return _download(chunks, "application/zip", f"{name}.snapshot.zip")
        stem = safe_name(pic.path.name) + ("-app" if app_view else "")
        if fmt == "markdown":
            text = "".join(markdown(pic, app_view=app_view))
            return _download(text, "text/markdown; charset=utf-8", f"{stem}.md")
        page = "".join(html_page(pic, app_view=app_view))
        return _download(page, "text/html; charset=utf-8", f"{stem}.html")

    def answer(target: Path, extra: dict[str, Any], started: float) -> Response:
        body = opened(manager.open(str(target)))
        body.update(extra)
        timing = f"total;dur={(time.perf_counter() - started) * 1000:.1f}"
        return Response(
            dumps(body), media_type="application/json", headers={"Server-Timing": timing}
        )

    @router.post(
        "/import",
        response_model=None,
        responses=raises(InvalidArgument, Conflict, TooLarge),
        openapi_extra={UPLOAD_ROUTE: True},
    )
    def import_jupyter(
        file: Annotated[UploadFile, File(description="A Jupyter notebook (.ipynb), at most 50 MB")],
        name: Annotated[str | None, Form(max_length=255)] = None,
        parent_path: Annotated[str | None, Form(max_length=4096)] = None,
    ) -> Response:
        """Import a Jupyter notebook: a new notebook, opened; plus ``import_report``."""
        started = time.perf_counter()
        data = file.file.read(IPYNB_LIMIT + 1)
        if len(data) > IPYNB_LIMIT:
            raise TooLarge(f"the .ipynb is larger than {IPYNB_LIMIT // 1024**2} MB")
        converted = read_ipynb(data)
        stem = Path(file.filename or "").stem
        title = (name or converted.title or safe_name(stem, "") or "Imported notebook").strip()
        parent = confine(manager.root, parent_path or ".", "parent_path")
        version = next(iter(manager.python_versions()), None)
        if version is None:
            raise Unavailable("No Python interpreter is available for notebooks")
        deps = list(converted.report["captured_deps"])
        target = write_notebook(
            parent, title, version, converted.cells, deps, owner=manager.new_owner()
        )
        return answer(target, {"import_report": converted.report}, started)

    def put_artifact(path: Path) -> str:
        if executions is None:
            raise Unavailable("Artifacts cannot be restored: no Flight service is configured")
        with pa.memory_map(str(path)) as source:
            try:
                reader = pa.ipc.open_stream(source)
            except pa.ArrowInvalid as exc:
                raise InvalidArgument(
                    f"an artifact in the archive is not Arrow IPC: {exc}"
                ) from None
            return str(executions.client.put(reader, metadata={"imported": True})["artifact_uri"])

    def known(uri: str) -> bool:
        if executions is None:
            return False
        try:
            return executions.client.status(uri).get("state") in ("ready", "superseded")
        except QuiverError:
            return False

    @router.post(
        "/import-snapshot",
        response_model=None,
        responses=raises(InvalidArgument, Conflict, TooLarge),
        openapi_extra={UPLOAD_ROUTE: True},
    )
    def import_snapshot(
        file: Annotated[UploadFile, File(description="A snapshot or zip export")],
        name: Annotated[str | None, Form(max_length=255)] = None,
        parent_path: Annotated[str | None, Form(max_length=4096)] = None,
    ) -> Response:
        """Restore a ``snapshot`` (or ``zip``) export as a new notebook, opened; cells whose
        results came along (artifacts verified by digest) are ready."""
        started = time.perf_counter()
        parent = confine(manager.root, parent_path or ".", "parent_path")
        with open_archive(file.file) as zf:
            target, report = restore_archive(
                zf,
                parent,
                name,
                max_bytes=4 * settings.rest_max_body_bytes,
                put_artifact=put_artifact,
                known=known,
                owner=manager.new_owner(),
            )
        return answer(target, {"import_report": report}, started)

    return router


def _download(data: Iterator[bytes] | str, media: str, filename: str) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if isinstance(data, str):
        return Response(data.encode(), media_type=media, headers=headers)
    return StreamingResponse(data, media_type=media, headers=headers)
