"""Operational routes: liveness, readiness, dependency health, metrics (JSON and Prometheus)."""

from __future__ import annotations

import time
from typing import Any

import anyio.to_thread
from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from flight import process_json
from foundation import QuiverError, Unavailable
from rest.link import FlightLink, json_response
from rest.metrics import Metrics

PROCESS_KEYS = ("pid", "arrow_memory", "gc", "gc_pauses", "resource_limits")
"""The per-process keys of ``/metrics`` (the REST process; the Flight server's under
``flight_process`` when it runs in another process)."""


def ops_router(link: FlightLink, metrics: Metrics) -> APIRouter:
    """``/health/ready``, ``/health/dependencies``, ``/metrics`` and ``/metrics/prometheus``
    (no auth).

    ``/health`` (liveness) belongs to every app: :func:`rest.app.create_app` has it.
    """
    router = APIRouter(tags=["ops"])
    unhealthy: dict[int | str, dict[str, Any]] = {
        503: {"description": "Not ready or unhealthy: the same body, naming the failing check."}
    }

    @router.get("/health/ready", response_model=None, responses=unhealthy)
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

    @router.get("/health/dependencies", response_model=None, responses=unhealthy)
    def dependencies() -> Response:
        """Every dependency checked now: Flight, the store (read and write), the warehouses
        opened so far, free disk space. 200 when all are ok, else 503."""
        flight: dict[str, Any] = {"status": "ok", "location": link.client.location}
        started = time.perf_counter()
        try:
            answer = link.act("dependencies")
            checks = answer["checks"]
        except QuiverError as exc:
            unreachable = isinstance(exc, Unavailable)
            if unreachable:
                flight.update(status="error", detail=exc.message)
            unknown = {"status": "unknown", "detail": f"not checked: {exc.message}"}
            checks = {"store": unknown, "warehouses": unknown, "disk": unknown}
        flight["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
        checks = {"flight": flight, **checks}
        ok = all(c["status"] == "ok" for c in checks.values())
        body = {"status": "healthy" if ok else "unhealthy", "checks": checks}
        return json_response(body, 200 if ok else 503)

    @router.get("/metrics", response_model=None)
    async def metrics_json() -> Response:
        """This front end's counters and process state, plus the Flight server's store,
        build and disk figures (API.md §12.6)."""
        limiter = anyio.to_thread.current_default_thread_limiter()
        workers = {"max_workers": int(limiter.total_tokens), "busy": limiter.borrowed_tokens}
        body = metrics.snapshot()  # on the event loop, where the counters change
        return json_response(await run_in_threadpool(_with_flight, body, workers))

    def _with_flight(body: dict[str, Any], workers: dict[str, Any]) -> dict[str, Any]:
        try:
            body["flight"] = link.act("stats")
        except QuiverError as exc:
            body["flight"] = {"status": "unreachable", "detail": exc.message}
        body.update(process_json())
        try:
            runtime = link.act("runtime")
        except QuiverError:
            runtime = None
        pools = runtime["thread_pools"] if runtime else {"builds": None, "duckdb": None}
        body["thread_pools"] = {**pools, "rest_workers": workers}
        body["disk_cache"] = runtime["disk_cache"] if runtime else None
        if runtime is not None and runtime["pid"] != body["pid"]:
            body["flight_process"] = {k: runtime[k] for k in PROCESS_KEYS}
        return body

    @router.get("/metrics/prometheus", response_class=PlainTextResponse)
    def metrics_prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
