"""Operational routes: liveness, readiness, metrics (JSON and Prometheus)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from quiver.errors import QuiverError
from rest.core import FlightLink, json_response
from rest.middleware import Metrics


def ops_router(link: FlightLink, metrics: Metrics) -> APIRouter:
    """``/health/ready``, ``/metrics`` and ``/metrics/prometheus`` (no auth).

    ``/health`` (liveness) belongs to every app: :func:`rest.app.create_app` has it.
    """
    router = APIRouter(tags=["ops"])

    @router.get("/health/ready", response_model=None)
    def ready() -> Response:
        """Readiness: the Flight server answers and its store can be read."""
        checks: dict[str, Any] = {}
        try:
            answer = link.act("health")
            checks["flight"] = {"status": "ok", "location": link.client.location}
            checks["store"] = {"status": "ok", **answer["store"]}
        except QuiverError as exc:
            checks["flight"] = {"status": "error", "location": link.client.location,
                                "detail": exc.message}  # fmt: skip
        ok = all(c["status"] == "ok" for c in checks.values()) and "store" in checks
        body = {"status": "ready" if ok else "not_ready", "checks": checks}
        return json_response(body, 200 if ok else 503)

    @router.get("/metrics", response_model=None)
    def metrics_json() -> Response:
        """This front end's counters, plus the Flight server's store and build counters."""
        body = metrics.snapshot()
        try:
            body["flight"] = link.act("stats")
        except QuiverError as exc:
            body["flight"] = {"status": "unreachable", "detail": exc.message}
        return json_response(body)

    @router.get("/metrics/prometheus", response_model=None)
    def metrics_prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
