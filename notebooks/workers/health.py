"""Health of workers: one probe per target, each under a short time limit, with a record.

A target is a worker's ``(transport, url)``. Probing asks the engine itself: a
Dask scheduler must accept a connection, another Quiver server must answer its
Flight ``health`` action, an HTTP worker (Strata's transports) its ``/health``
route. :class:`HealthBook` keeps, per target, the last answer, counters and a
bounded history, and a background thread probes every known target on an
interval; ``refresh`` probes at once. A probe never blocks longer than its
timeout, so nothing waits on a dead worker.
"""

from __future__ import annotations

import collections
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse, urlunparse

from notebooks.workers.spec import WorkerSpec

HISTORY = 20
Target = tuple[str, str]  # (transport, url)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Record:
    health: str = "unknown"
    checked_at: int | None = None
    last_error: str | None = None
    history: collections.deque[dict[str, Any]] = field(
        default_factory=lambda: collections.deque(maxlen=HISTORY)
    )
    counts: dict[str, int] = field(
        default_factory=lambda: {"healthy": 0, "unavailable": 0, "unknown": 0}
    )
    consecutive_failures: int = 0
    last_at: dict[str, int | None] = field(
        default_factory=lambda: {"healthy": None, "unavailable": None, "unknown": None}
    )
    last_status_change_at: int | None = None
    last_duration_ms: float | None = None

    def fields(self) -> dict[str, Any]:
        """The ``WorkerCatalogEntry`` members about health (API.md §2.6)."""
        return {
            "health": self.health,
            "health_checked_at": self.checked_at,
            "last_error": self.last_error,
            "health_history": list(self.history),
            "probe_count": sum(self.counts.values()),
            "healthy_probe_count": self.counts["healthy"],
            "unavailable_probe_count": self.counts["unavailable"],
            "unknown_probe_count": self.counts["unknown"],
            "consecutive_failures": self.consecutive_failures,
            "last_healthy_at": self.last_at["healthy"],
            "last_unavailable_at": self.last_at["unavailable"],
            "last_unknown_at": self.last_at["unknown"],
            "last_status_change_at": self.last_status_change_at,
            "last_probe_duration_ms": self.last_duration_ms,
        }


def health_url(spec: WorkerSpec) -> str | None:
    """Where a worker's health is asked: the engine's own address, or an HTTP worker's
    ``/health`` route (next to ``/v1/execute`` when the URL names it)."""
    url = (spec.config.url or "").strip()
    transport = spec.transport
    if transport in ("dask", "flight"):
        return url or None
    if not url.startswith(("http://", "https://")):
        return None
    parsed = urlparse(url)
    path = parsed.path.rstrip("/")
    for tail in ("/v1/execute", "/v1/notebook-execute"):
        if path.endswith(tail):
            path = path[: -len(tail)]
    return urlunparse(parsed._replace(path=f"{path}/health", params="", query="", fragment=""))


def probe(transport: str, url: str, timeout: float, token: str | None = None) -> str | None:
    """Ask one target; None when healthy, else why not (raises nothing)."""
    try:
        if transport == "dask":
            parsed = urlparse(url)
            if not parsed.hostname or not parsed.port:
                return f"not a Dask scheduler address: {url}"
            with socket.create_connection((parsed.hostname, parsed.port), timeout=timeout):
                return None
        if transport == "flight":
            import pyarrow.flight as fl

            headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
            options = fl.FlightCallOptions(timeout=timeout, headers=headers)
            with fl.connect(url) as client:
                list(client.do_action(fl.Action("health", b"{}"), options))
            return None
        import httpx

        answer = httpx.get(url, timeout=timeout)
        if answer.status_code != 200:
            return f"HTTP {answer.status_code} from {url}"
        return None
    except Exception as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"{type(exc).__name__}: {text}"[:500]


class HealthBook:
    """Per-target health records, probed in the background every ``interval`` seconds."""

    def __init__(
        self,
        *,
        interval: float,
        timeout: float,
        prober: Callable[[str, str, float, str | None], str | None] = probe,
    ) -> None:
        self.interval = interval
        self.timeout = timeout
        self._prober = prober
        self._records: dict[Target, Record] = {}
        self._tokens: dict[Target, str | None] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, targets: Iterable[tuple[Target, str | None]]) -> None:
        """Targets the background thread keeps probing (with the token each needs)."""
        with self._lock:
            for target, token in targets:
                self._records.setdefault(target, Record())
                self._tokens[target] = token
            start = self._thread is None and self.interval > 0 and not self._stop.is_set()
            if start:
                self._thread = threading.Thread(
                    target=self._loop, name="quiver-worker-probes", daemon=True
                )
        if start and self._thread is not None:
            self._thread.start()

    def record(self, target: Target) -> Record:
        with self._lock:
            return self._records.setdefault(target, Record())

    def probe(self, target: Target, token: str | None = None) -> Record:
        """Probe now (at most ``timeout`` seconds) and record the answer."""
        started = time.perf_counter()
        error = self._prober(target[0], target[1], self.timeout, token)
        duration = round((time.perf_counter() - started) * 1000, 3)
        health = "healthy" if error is None else "unavailable"
        at = now_ms()
        with self._lock:
            rec = self._records.setdefault(target, Record())
            if rec.health != health:
                rec.last_status_change_at = at
            rec.health, rec.checked_at, rec.last_duration_ms = health, at, duration
            rec.last_error = error
            rec.counts[health] += 1
            rec.last_at[health] = at
            rec.consecutive_failures = 0 if error is None else rec.consecutive_failures + 1
            rec.history.append(
                {"checked_at": at, "health": health, "error": error, "duration_ms": duration}
            )
            return rec

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                targets = list(self._tokens.items())
            for target, token in targets:
                if self._stop.is_set():
                    return
                self.probe(target, token)

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=self.timeout + 1)
