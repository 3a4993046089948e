"""Artifacts by URL (issue 20): polars reading a 1M-row artifact's Parquet rendition over HTTP
against the same Parquet file on local disk, and what a projected scan pulls over the wire.

The real REST app (``app_from_settings``) under uvicorn in front of a real Flight server,
wrapped in a counter of the body bytes it sends. ``bench/side_by_side.py urls`` prints it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl
import pyarrow as pa

from flight import Core, QuiverClient, QuiverFlightServer
from foundation import Settings
from rest.app import app_from_settings
from rest.renditions import byte_range
from tests.servers import serve_asgi

ROWS = 1_000_000


def table(rows: int = ROWS) -> pa.Table:
    """1M rows × 5 columns, the shape of the scan figures."""
    rng = np.random.default_rng(1)
    return pa.table(
        {
            "id": np.arange(rows, dtype=np.int64),
            "a": rng.random(rows),
            "b": rng.integers(0, 1_000_000, rows, dtype=np.int64),
            "c": rng.random(rows).astype(np.float32),
            "s": pa.array(np.char.add("k", (np.arange(rows) % 1000).astype(str))),
        }
    )


class BytesSent:
    """ASGI wrapper counting the body bytes the app sends, and noting the threads it runs
    on (uvicorn's event loop) for :meth:`cpu_s`."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.sent = 0
        self.threads: set[int] = set()

    def cpu_s(self) -> float:
        """CPU seconds the app's threads have used so far (kernel time of the copies too)."""
        return sum(time.clock_gettime(time.pthread_getcpuclockid(t)) for t in self.threads)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.threads.add(threading.get_ident())

        async def counted(message: Any) -> None:
            if message["type"] == "http.response.body":
                self.sent += len(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, counted)


@dataclass
class Setup:
    url: str
    local: Path
    counter: BytesSent
    rendition_write_s: float


@contextlib.contextmanager
def setup(root: Path) -> Iterator[Setup]:
    settings = Settings(data_dir=root / "data", notebook_root=root / "nb", flight_port=0)
    server = QuiverFlightServer(Core.open(settings))
    counter = BytesSent(app_from_settings(settings, flight_uri=server.location))
    base, stop = serve_asgi(counter)
    try:
        with QuiverClient(server.location) as client:
            answer = client.put(table())
        path = f"/v1/artifacts/{answer['artifact_id']}/v/{answer['version']}/data.parquet"
        t0 = time.perf_counter()
        whole = httpx.get(base + path, timeout=120)  # the first request writes the rendition
        written = time.perf_counter() - t0
        local = root / "local.parquet"
        local.write_bytes(whole.content)  # the same bytes, on local disk
        yield Setup(base + path, local, counter, written)
    finally:
        stop()
        server.close()


@dataclass
class Floor:
    url: str
    cpu: list[float]
    """CPU seconds its connection threads used answering requests (one entry each)."""

    def cpu_s(self) -> float:
        return sum(self.cpu)


@contextlib.contextmanager
def sendfile_server(path: Path) -> Iterator[Floor]:
    """The floor: a minimal HTTP/1.1 server of one file with ``Range`` support, a thread per
    connection and ``os.sendfile`` (no event loop, no framework, no copy through Python).
    What polars's HTTP reading costs here whoever serves the bytes; its URL."""
    size = path.stat().st_size
    listener = socket.create_server(("127.0.0.1", 0))
    cpu: list[float] = []

    def answer(conn: socket.socket) -> None:
        fd = os.open(path, os.O_RDONLY)
        lines = conn.makefile("rb")
        mark = time.thread_time()
        with conn, contextlib.suppress(OSError):
            while request := lines.readline():
                headers = {}
                while (line := lines.readline()) not in (b"\r\n", b""):
                    key, _, value = line.decode().partition(":")
                    headers[key.strip().lower()] = value.strip()
                span = byte_range(headers.get("range"), size) or (0, size)
                start, end = span
                status = "200 OK"
                if "range" in headers:
                    status = f"206 Partial Content\r\nContent-Range: bytes {start}-{end - 1}/{size}"
                conn.sendall(
                    f"HTTP/1.1 {status}\r\nContent-Length: {end - start}\r\n"
                    "Accept-Ranges: bytes\r\n\r\n".encode()
                )
                while start < end and not request.startswith(b"HEAD"):
                    start += os.sendfile(conn.fileno(), fd, start, end - start)
                now = time.thread_time()
                cpu.append(now - mark)
                mark = now
        os.close(fd)

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield Floor(f"http://127.0.0.1:{listener.getsockname()[1]}/{path.name}", cpu)
    finally:
        listener.close()


def interleaved(fns: dict[str, Any], rounds: int) -> dict[str, tuple[float, float]]:
    """(best, median) seconds of each function, their rounds interleaved so a busy moment
    of the machine falls on all of them alike."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
    return {n: (min(s), sorted(s)[len(s) // 2]) for n, s in samples.items()}


def projected_bytes(s: Setup) -> tuple[int, int]:
    """Bytes served for ``scan_parquet(url).select("a")`` and the file's size."""
    s.counter.sent = 0
    pl.scan_parquet(s.url).select("a").collect()
    return s.counter.sent, s.local.stat().st_size
