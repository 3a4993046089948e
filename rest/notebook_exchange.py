"""A notebook's mounts, export and import routes (API.md §8, §9), under ``/v1/notebooks``.

Thin: the bodies are checked here (a bad mount is a 422 naming the field and
why), the work is ``notebooks.exchange``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from foundation import InvalidArgument, NotFound, Settings, Unavailable
from notebooks import (
    Executions,
    NotebookManager,
    Session,
    bundle_entries,
    cells_list,
    check_format,
    html_page,
    markdown,
    parse_mounts,
    picture,
    safe_name,
    selected_cells,
    snapshot_entries,
    zip_chunks,
)
from rest.openapi import content, raises
from rest.streaming import body as arrow_body

EXPORT = content(
    "application/zip",
    "text/markdown",
    "text/html",
    description="The notebook as a zip, a snapshot (a zip with results), Markdown or HTML.",
)

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
    manager: NotebookManager,
    settings: Settings,
    executions: Executions | None,
    changed: Callable[[Session], None],
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

    def artifact_chunks(uri: str) -> Iterator[bytes | memoryview]:
        if executions is None:
            raise Unavailable("Artifacts are not reachable: no Flight service is configured")
        stream = executions.client.open_stream(uri)
        try:
            yield from arrow_body(stream.reader(), "arrow")
        finally:
            stream.cancel()

    @router.get(
        "/{session_id}/export",
        response_class=Response,
        responses={**EXPORT, **raises(InvalidArgument, NotFound)},
    )
    def export(
        session_id: str,
        fmt: str = "zip",
        include: str = "all",
        cells: str = "",
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
            chunks = zip_chunks(snapshot_entries(pic, chosen, artifact_chunks))
            return _download(chunks, "application/zip", f"{name}.snapshot.zip")
        stem = safe_name(pic.path.name) + ("-app" if app_view else "")
        if fmt == "markdown":
            text = "".join(markdown(pic, app_view=app_view))
            return _download(text, "text/markdown; charset=utf-8", f"{stem}.md")
        page = "".join(html_page(pic, app_view=app_view))
        return _download(page, "text/html; charset=utf-8", f"{stem}.html")

    return router


def _download(data: Iterator[bytes] | str, media: str, filename: str) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if isinstance(data, str):
        return Response(data.encode(), media_type=media, headers=headers)
    return StreamingResponse(data, media_type=media, headers=headers)
