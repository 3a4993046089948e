"""The REST side of the Flight connection, and the JSON answer every route sends.

:class:`FlightLink` runs a Flight action (in process when the server is beside
us, else over gRPC), a DoPut or a DoGet, with an unreachable server as a REST
503; :func:`json_response` writes a compact JSON body. Every router of the
data routes (core, artifacts, names, registry, uploads, ops) gets one link.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
from fastapi.responses import Response

from flight import LocalActions, MaterializeRequest, QuiverClient
from foundation import Busy, Unavailable
from rest.renditions import RenditionResponder
from rest.streaming import StreamingResponse, check_format, stream_response

ARTIFACT_URI_HEADER = "X-Strata-Artifact-Uri"
ROW_COUNT_HEADER = "X-Arrow-Row-Count"


def json_response(body: Any, status_code: int = 200) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")).encode(),
        status_code=status_code,
        media_type="application/json",
    )


def data_url(artifact_id: str, version: int) -> str:
    return f"/v1/artifacts/{artifact_id}/v/{version}/data"


class FlightLink:
    """The REST side of the Flight connection: actions and DoGets with REST errors."""

    def __init__(self, client: QuiverClient, *, in_process: bool = True) -> None:
        self.client = client
        self._actions = LocalActions(client, enabled=in_process)
        self.renditions = RenditionResponder(self._actions)

    def _unreachable(self, exc: Unavailable) -> Unavailable:
        if isinstance(exc, Busy):  # the server answered: it is at capacity
            return exc
        return Unavailable(
            f"the Flight server at {self.client.location} is unavailable: {exc.message}",
            detail=exc.detail,
        )

    def act(self, name: str, body: dict[str, Any] | None = None) -> Any:
        try:
            return self._actions.action(name, body or {})
        except Unavailable as exc:
            raise self._unreachable(exc) from None

    def act_raw(self, name: str, raw: bytes) -> Any:
        """:meth:`act` on a body already JSON-encoded."""
        try:
            return self._actions.action_raw(name, raw)
        except Unavailable as exc:
            raise self._unreachable(exc) from None

    def put(self, data: pa.Table | pa.RecordBatchReader, **kwargs: Any) -> dict[str, Any]:
        """:meth:`QuiverClient.put` (a DoPut), with an unreachable server as a 503."""
        try:
            return self.client.put(data, **kwargs)
        except Unavailable as exc:
            raise self._unreachable(exc) from None

    def cached_hit(self, request: MaterializeRequest) -> dict[str, Any] | None:
        """A cache hit answered in-process without blocking, or None (then :meth:`act_raw`)."""
        return self._actions.cached_hit(request)

    def stream(
        self,
        uri: str,
        fmt: str | None,
        *,
        filename: str,
        headers: dict[str, str],
    ) -> StreamingResponse:
        checked = check_format(fmt)
        local = self._actions.open_ready(uri)
        if local is not None:  # the producer thread closes it when the response ends
            return stream_response(local, checked, filename=filename, headers=headers)
        try:
            flight_stream = self.client.open_stream(uri)
        except Unavailable as exc:
            raise self._unreachable(exc) from None
        return stream_response(
            flight_stream.reader(),
            checked,
            filename=filename,
            headers=headers,
            on_close=flight_stream.cancel,
        )
