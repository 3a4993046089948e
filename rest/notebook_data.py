"""A notebook's output data for Strata 0.11's table viewer (API.md §16).

Pages, summaries and exports of a cell's table output, and the bytes of a
display output. The REST layer is a Flight client: a page and a summary are
Flight actions (``table-page``, ``table-summary``) that the Flight server
answers from the artifact's memory-mapped file, the view (filters, search,
sort) pushed down; an export is a ``DoGet`` of a view ticket, streamed.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from flight import LocalActions, QuiverClient
from foundation import InvalidArgument, NotFound, Settings, Unavailable
from notebooks import Executions, NotebookManager, Session, kept_at
from rest.openapi import content, raises
from rest.streaming import stream_response

ARTIFACT_URI_PATTERN = r"^strata://artifact/[^@/]+@v=[0-9]+$"
_ARTIFACT = re.compile(ARTIFACT_URI_PATTERN)


def _filters(raw: str | None) -> list[Any]:
    if not raw:
        return []
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise InvalidArgument("filters must be valid JSON") from None
    if not isinstance(parsed, list):
        raise InvalidArgument("filters must be a JSON array")
    return parsed


def _view(
    sort_by: str | None, sort_dir: str, search: str | None, filters: str | None
) -> dict[str, Any]:
    if sort_dir not in ("asc", "desc"):
        raise InvalidArgument("sort_dir must be 'asc' or 'desc'")
    return {
        "filters": _filters(filters),
        "search": search or None,
        "sort_by": sort_by or None,
        "sort_dir": sort_dir,
    }


def _checked_uri(artifact_uri: str) -> str:
    if not _ARTIFACT.fullmatch(artifact_uri):
        raise InvalidArgument("Malformed artifact_uri: expected strata://artifact/{id}@v={n}")
    return artifact_uri


def page_params(
    sort_by: str | None = None,
    sort_dir: Annotated[str, Query(json_schema_extra={"enum": ["asc", "desc"]})] = "asc",
    search: Annotated[str | None, Query(max_length=1000)] = None,
    # a request line over 64 KiB is refused by the HTTP server itself (400, text/plain);
    # 4000 characters fit even when each is percent-encoded as four UTF-8 bytes
    filters: Annotated[str | None, Query(max_length=4000)] = None,
) -> dict[str, Any]:
    return _view(sort_by, sort_dir, search, filters)


ViewParams = Annotated[dict[str, Any], Depends(page_params)]
ArtifactUri = Annotated[
    str, Query(description="The table output's artifact URI.",
               json_schema_extra={"pattern": ARTIFACT_URI_PATTERN})
]  # fmt: skip
EXPORT = content("text/csv", "application/vnd.apache.parquet", description="The view, streamed.")
BLOB = content("*/*", description="The display output's bytes, with its own media type.")


def notebook_data_router(
    manager: NotebookManager,
    settings: Settings,
    executions: Executions | None,
    *,
    router: APIRouter,
) -> APIRouter:
    """The ``{id}/cells/{cell_id}/data…`` and ``…/outputs/{index}/blob`` routes, declared
    on ``router`` (the notebook router, under ``/v1/notebooks``)."""

    def flight() -> tuple[Executions, LocalActions]:
        if executions is None:
            raise Unavailable("Cell data needs the Flight service, which is not configured")
        return executions, LocalActions(executions.client, enabled=settings.rest_in_process_flight)

    def source(session: Session, cell_id: str) -> tuple[QuiverClient, LocalActions]:
        """Where the cell's tables are: this node's Flight service, or the node a flight
        worker ran the cell on (its tables stay there; they stream from it)."""
        execs, actions = flight()
        result = session.derived.results.get(cell_id)
        where = kept_at(result.variables) if result is not None else None
        if where is None or execs.workers is None:
            return execs.client, actions
        client = execs.workers.data_client(where)
        return client, LocalActions(client, enabled=False)

    def cell_session(session_id: str, cell_id: str) -> Session:
        session = manager.get(session_id)
        if session.derived.cell(cell_id) is None:
            raise NotFound("Cell not found")
        return session

    found = raises(InvalidArgument, NotFound, Unavailable)

    @router.get("/{session_id}/cells/{cell_id}/data", responses=found)
    def data_page(
        session_id: str,
        cell_id: str,
        artifact_uri: ArtifactUri,
        view: ViewParams,
        offset: int = 0,
        limit: int = 100,
    ) -> dict[str, Any]:
        """A page of a table output, filtered, searched and sorted on the Flight server."""
        _, actions = source(cell_session(session_id, cell_id), cell_id)
        offset, limit = max(0, offset), max(1, min(limit, 500))
        answer = actions.action(
            "table-page",
            {"artifact_uri": _checked_uri(artifact_uri), "offset": offset, "limit": limit, **view},
        )
        return {
            "cell_id": cell_id,
            "artifact_uri": artifact_uri,
            "pageable": True,
            "columns": answer["columns"],
            "rows": answer["rows"],
            "total": answer["total"],
            "offset": offset,
            "limit": limit,
            "sort_by": view["sort_by"],
            "sort_dir": view["sort_dir"],
        }

    @router.get("/{session_id}/cells/{cell_id}/data/summary", responses=found)
    def data_summary(session_id: str, cell_id: str, artifact_uri: ArtifactUri) -> dict[str, Any]:
        """Per column: dtype, nulls, distinct, min and max (numbers and times)."""
        _, actions = source(cell_session(session_id, cell_id), cell_id)
        answer = actions.action("table-summary", {"artifact_uri": _checked_uri(artifact_uri)})
        return {
            "cell_id": cell_id,
            "artifact_uri": artifact_uri,
            "pageable": True,
            "columns": answer["columns"],
            "total": answer["total"],
        }

    @router.get(
        "/{session_id}/cells/{cell_id}/data/export",
        response_class=Response,
        responses={**EXPORT, **found},
    )
    def data_export(
        session_id: str,
        cell_id: str,
        artifact_uri: ArtifactUri,
        view: ViewParams,
        fmt: Annotated[str, Query(json_schema_extra={"enum": ["csv", "parquet"]})] = "csv",
    ) -> Response:
        """The whole view as CSV or Parquet, streamed from a Flight ``DoGet``."""
        if fmt not in ("csv", "parquet"):
            raise InvalidArgument("fmt must be 'csv' or 'parquet'")
        client, _ = source(cell_session(session_id, cell_id), cell_id)
        stream = client.open_view(_checked_uri(artifact_uri), view)
        return stream_response(stream.reader(), fmt, filename=f"{cell_id}", on_close=stream.cancel)  # type: ignore[arg-type]

    @router.get(
        "/{session_id}/cells/{cell_id}/outputs/{index}/blob",
        response_class=Response,
        responses={**BLOB, **raises(NotFound, Unavailable)},
    )
    def output_blob(session_id: str, cell_id: str, index: int) -> Response:
        """The bytes of display output ``index`` (negative: from the end) with its type."""
        session = cell_session(session_id, cell_id)
        result = session.derived.results.get(cell_id)
        shown = result.displays if result is not None else []
        if not -len(shown) <= index < len(shown):
            raise NotFound(f"Cell {cell_id} has no display output {index}")
        resolved = index % len(shown)
        output = shown[resolved]
        headers = {"X-Strata-Output-Index": str(resolved)}
        kind = str(output.get("content_type") or "")
        if kind == "arrow/ipc" and output.get("artifact_uri"):
            client, _ = source(session, cell_id)
            stream = client.open_stream(str(output["artifact_uri"]))
            return stream_response(stream.reader(), headers=headers, on_close=stream.cancel)
        data, media = _display_bytes(output)
        return Response(data, media_type=media, headers=headers)

    return router


def _display_bytes(output: dict[str, Any]) -> tuple[bytes, str]:
    kind = str(output.get("content_type") or "")
    url = output.get("inline_data_url")
    if isinstance(url, str) and ";base64," in url:
        return base64.b64decode(url.split(";base64,", 1)[1]), kind or "application/octet-stream"
    if kind == "text/markdown":
        return str(output.get("markdown_text") or "").encode(), "text/markdown; charset=utf-8"
    if kind == "text/html":  # served as text: a stored page must not run in our origin
        return str(output.get("html") or "").encode(), "text/plain; charset=utf-8"
    if kind == "error":
        return str(output.get("error") or "").encode(), "text/plain; charset=utf-8"
    if kind == "arrow/ipc":
        return json.dumps(output.get("preview") or []).encode(), "application/json"
    text = output.get("text") or output.get("preview") or ""
    return str(text).encode(), "text/plain; charset=utf-8"
