"""What the REST process counts: Prometheus metrics and the JSON view of ``/metrics``.

:class:`Metrics` holds the counters and histograms (requests by route and
status, time to first byte, bytes sent, materialize hits and misses, what is
open now); :class:`MetricsMiddleware`, pure ASGI like the rest of
``middleware.py``, counts every request by its route template.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from rest.middleware import ASGIApp, Message, Receive, Scope, Send


class Metrics:
    """Prometheus counters and histograms, plus the JSON view of ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "quiver_http_requests",
            "HTTP requests by method, route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "quiver_http_request_seconds",
            "Time to the first response byte, by route.",
            ["route"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5, 10),
        )
        self.bytes_sent = Counter(
            "quiver_http_response_bytes",
            "Response body bytes sent, by route.",
            ["route"],
            registry=self.registry,
        )
        self.cache = Counter(
            "quiver_materialize",
            "Materialize requests by outcome (hit or miss).",
            ["outcome"],
            registry=self.registry,
        )
        self.builds = Counter(
            "quiver_builds_started",
            "Builds started through this front end.",
            registry=self.registry,
        )
        self.started = time.time()
        self.open: dict[str, int] = {"http_requests": 0, "http_streams": 0, "websockets": 0}
        """In flight now: requests being handled, responses whose body is still being sent
        (started, not finished) and WebSocket connections. Changed on the event loop only."""
        self._children: dict[tuple[Any, ...], Any] = {}
        self.totals: dict[str, float] = {
            "requests": 0,
            "bytes_sent": 0,
            "errors": 0,
            "client_errors": 0,
            "hits": 0,
            "misses": 0,
        }

    def child(self, metric: Any, *labels: str | int) -> Any:
        """``metric.labels(*labels)``, remembered: ``labels()`` costs ~10 us a call."""
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*(str(v) for v in labels))
        return found

    def record_materialize(self, hit: bool) -> None:
        self.child(self.cache, "hit" if hit else "miss").inc()
        self.totals["hits" if hit else "misses"] += 1
        if not hit:
            self.builds.inc()

    def snapshot(self) -> dict[str, Any]:
        return {
            "uptime_s": round(time.time() - self.started, 3),
            "requests": int(self.totals["requests"]),
            "errors": int(self.totals["errors"]),
            "client_errors": int(self.totals["client_errors"]),
            "bytes_sent": int(self.totals["bytes_sent"]),
            "materialize": {"hits": int(self.totals["hits"]), "misses": int(self.totals["misses"])},
            "connections": dict(self.open),
        }


class MetricsMiddleware:
    """Counts requests, bytes and time to first byte by route template (not raw path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            self.metrics.open["websockets"] += 1
            try:
                await self.app(scope, receive, send)
            finally:
                self.metrics.open["websockets"] -= 1
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        sent = 0
        streaming = False
        recorded = False
        opened = self.metrics.open

        def record() -> None:
            """Count the request once, before its last byte leaves: a client that has read
            the whole response finds it counted."""
            nonlocal recorded
            if recorded:
                return
            recorded = True
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.child(self.metrics.requests, scope["method"], route, status).inc()
            self.metrics.child(self.metrics.bytes_sent, route).inc(sent)
            self.metrics.totals["requests"] += 1
            self.metrics.totals["bytes_sent"] += sent
            if status >= 500:
                self.metrics.totals["errors"] += 1
            elif status >= 400:
                self.metrics.totals["client_errors"] += 1

        async def measuring_send(message: Message) -> None:
            nonlocal status, sent, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                route = getattr(scope.get("route"), "path", "unmatched")
                self.metrics.child(self.metrics.latency, route).observe(time.perf_counter() - start)
                streaming = True
                opened["http_streams"] += 1
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
                if streaming and not message.get("more_body", False):
                    streaming = False
                    opened["http_streams"] -= 1
                    record()
            await send(message)

        opened["http_requests"] += 1
        try:
            await self.app(scope, receive, measuring_send)
        finally:
            opened["http_requests"] -= 1
            if streaming:
                opened["http_streams"] -= 1
            record()  # a response cut short (or never started) counts too
