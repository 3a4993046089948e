"""Split REST at full speed (issue 20): ``GET …/data`` of a ready 1M-row artifact through
``quiver rest --flight`` in its own process, against a bare FastAPI app streaming the same
table from memory as Arrow IPC. curl reads every byte, in its own process; rounds interleave.

    .venv/bin/python bench/side_by_side.py split

The REST process forwards the IPC stream stored in the artifact file (``rendition-read`` raw
results over gRPC); the Flight server runs in this process, as does the bare app.
"""

from __future__ import annotations

import contextlib
import resource
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pyarrow as pa

from bench.bench_rest import bare_app, curl_seconds, rest_process
from bench.bench_urls import table
from flight import Core, QuiverClient, QuiverFlightServer
from foundation import Settings
from tests.servers import serve_asgi


@dataclass
class Split:
    ours: str  # …/data through the REST process
    bare: str  # the bare app's /data
    rest: psutil.Process
    rows: int


@contextlib.contextmanager
def split_setup(tmp: Path, rows: int = 1_000_000) -> Iterator[Split]:
    """A Flight server here holding a ``rows``-row artifact, ``quiver rest --flight`` in front
    of it, and the bare app serving the same table; checks both answer the same rows."""
    settings = Settings(data_dir=tmp / "data", notebook_root=tmp / "nb", flight_port=0)
    flight = QuiverFlightServer(Core.open(settings))
    try:
        data = table(rows)
        with QuiverClient(flight.location) as client:
            put = client.put(data)
        bare, stop_bare = serve_asgi(bare_app(data))
        try:
            with rest_process(flight.location, tmp) as (url, proc):
                path = f"/v1/artifacts/{put['artifact_id']}/v/{put['version']}/data"
                s = Split(url + path, bare + "/data", proc, rows)
                for got in (httpx.get(s.ours, timeout=120), httpx.get(s.bare, timeout=120)):
                    assert got.status_code == 200, got.text[:200]
                    read = pa.ipc.open_stream(got.content).read_all()
                    assert read.num_rows == rows and read.schema.equals(data.schema)
                yield s
        finally:
            stop_bare()
    finally:
        flight.close()


def _cpu_here() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _cpu_of(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def measure(s: Split, rounds: int) -> dict[str, float]:
    """Seconds per full read (median, best) of ours and the bare app, interleaved, the bytes
    each sends, and the CPU per body: the REST process and the Flight server (this process)
    for ours, this process for the bare app."""
    ours: list[float] = []
    bare: list[float] = []
    cpu_rest = cpu_flight = cpu_bare = 0.0
    size = bare_size = 0
    for _ in range(rounds):
        here, rest = _cpu_here(), _cpu_of(s.rest)
        t, size = curl_seconds(s.ours)
        cpu_flight += _cpu_here() - here
        cpu_rest += _cpu_of(s.rest) - rest
        ours.append(t)
        here = _cpu_here()
        t, bare_size = curl_seconds(s.bare)
        cpu_bare += _cpu_here() - here
        bare.append(t)
    return {
        "ours_median": statistics.median(ours),
        "ours_best": min(ours),
        "bare_median": statistics.median(bare),
        "bare_best": min(bare),
        "bytes": size,
        "bare_bytes": bare_size,
        "cpu_rest_ms": cpu_rest / rounds * 1000,
        "cpu_flight_ms": cpu_flight / rounds * 1000,
        "cpu_bare_ms": cpu_bare / rounds * 1000,
    }
