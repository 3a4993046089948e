"""The core data routes (API.md §12.1, §12.2) over a Flight client: materialize, streams.

Thin by design: validate, run one Flight action (or DoGet/DoPut), shape the
JSON the Strata protocol and strata-client 0.11 expect. Nothing here opens an
artifact file or the store. The artifact routes are in ``artifacts.py``, the
names in ``names.py``; docs/rest.md documents every route.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from flight import MaterializeRequest
from foundation import BuildFailed, Conflict, InvalidArgument, NotFound, Unavailable
from rest.link import ARTIFACT_URI_HEADER, ROW_COUNT_HEADER, FlightLink, data_url, json_response
from rest.metrics import Metrics
from rest.openapi import DATA, DataFormat, raises
from rest.streaming import check_format


def materialize_json(answer: dict[str, Any], mode: str) -> dict[str, Any]:
    """The §12.1 response from the Flight ``materialize`` answer."""
    stream = mode == "stream"
    body: dict[str, Any] = {
        "hit": answer["hit"],
        "artifact_uri": answer["artifact_uri"],
        "state": answer["state"],
        "build_spec": None,
        "build_id": None,
        "stream_id": None,
        "stream_url": None,
    }
    if answer["state"] == "building":
        if stream:
            body["stream_id"] = answer["stream_id"]
            body["stream_url"] = f"/v1/streams/{answer['stream_id']}"
        else:
            body["state"] = "pending"
            body["build_id"] = answer["build_id"]
    elif stream:
        body["stream_url"] = data_url(answer["artifact_id"], answer["version"])
    return body


async def materialize_response(
    link: FlightLink, metrics: Metrics, body: MaterializeRequest
) -> Response:
    """``POST /v1/materialize`` once the body is valid: one Flight action, shaped for §12.1."""
    # The action blocks (a miss starts its executor in the caller's thread): one hop
    # to a worker thread, unless the server in this process can answer a hit from
    # memory (the hop is a fifth of the hit's latency). The body goes as JSON
    # bytes; the server validates it again.
    answer = link.cached_hit(body)  # a hit the server beside us answers from memory
    if answer is None:
        raw = body.model_dump_json(exclude_defaults=True).encode()
        answer = await run_in_threadpool(link.act_raw, "materialize", raw)
    metrics.record_materialize(answer["hit"])
    return json_response(materialize_json(answer, body.mode))


def core_router(link: FlightLink, metrics: Metrics) -> APIRouter:
    """The ``/v1/materialize`` and ``/v1/streams`` routes."""
    router = APIRouter(tags=["core"], responses=raises(Unavailable))
    act = link.act

    # --- materialize & streams -------------------------------------------------
    @router.post(
        "/v1/materialize",
        response_model=None,
        responses=raises(InvalidArgument, NotFound, Conflict),
    )
    async def materialize(body: MaterializeRequest) -> Response:
        """Find or build an artifact (§12.1); a miss in stream mode answers a stream_url."""
        return await materialize_response(link, metrics, body)

    @router.get(
        "/v1/streams/{stream_id}",
        response_class=Response,
        responses={**DATA, **raises(InvalidArgument, NotFound, BuildFailed)},
    )
    def stream(stream_id: str, format: DataFormat = None) -> Response:
        """The result of a build as it is written (Arrow IPC by default)."""
        check_format(format)
        try:
            build = act("build-status", {"build_id": stream_id})
        except NotFound:
            raise NotFound(f"Stream {stream_id} not found") from None
        if build["state"] == "failed":
            raise BuildFailed(
                f"build {stream_id} failed: {build['error_message']}",
                detail={"error": "scan_build_failed", "detail": build["error_message"]},
            )
        headers = {ARTIFACT_URI_HEADER: build["artifact_uri"]}
        if build["state"] in ("ready", "superseded") and build["row_count"] is not None:
            headers[ROW_COUNT_HEADER] = str(build["row_count"])
        return link.stream(
            build["artifact_uri"], format, filename=build["artifact_id"], headers=headers
        )

    return router
