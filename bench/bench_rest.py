"""REST facade figures (issue 4): GET …/data throughput against a bare FastAPI app streaming
the same table from memory, the materialize cache-hit p50, and the REST process's RSS while
it streams a 10M-row artifact. Clients run in their own processes (curl, a Python script).

    .venv/bin/python bench/side_by_side.py rest
    .venv/bin/python -m pytest bench/bench_rest.py -o python_files='bench_*.py'
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pyarrow as pa
from fastapi import FastAPI
from fastapi.responses import Response, StreamingResponse

from bench.common import make_warehouse
from flight import Core, QuiverClient, QuiverFlightServer
from foundation import Settings
from rest.app import app_from_settings
from tests.servers import serve_asgi

EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"


def bare_app(table: pa.Table) -> FastAPI:
    """The baseline: FastAPI streaming an in-memory table as Arrow IPC, and a JSON echo."""
    app = FastAPI()
    batches = table.to_batches()

    def ipc() -> Iterator[bytes | memoryview]:
        yield memoryview(table.schema.serialize())
        for batch in batches:
            yield memoryview(batch.serialize())
        yield EOS

    @app.get("/data")
    def data() -> StreamingResponse:
        return StreamingResponse(ipc(), media_type="application/vnd.apache.arrow.stream")

    @app.post("/echo")
    def echo(body: dict) -> Response:
        return Response(json.dumps({"hit": True, **body}).encode(), media_type="application/json")

    return app


@dataclass
class Setup:
    rest: str  # quiver serve's default: the REST app calls the Flight server beside it in-process
    rest_grpc: str  # the same app over loopback gRPC, as ``quiver rest --flight`` runs it
    bare: str
    data_path: str
    request: dict
    flight: QuiverFlightServer
    stops: list

    def close(self) -> None:
        for stop in self.stops:
            stop()
        self.flight.close()


def make_setup(tmp: Path, rows: int = 1_000_000) -> Setup:
    ref = make_warehouse(tmp, rows=rows)
    settings = Settings(data_dir=tmp / "data", notebook_root=tmp / "nb", flight_port=0)
    flight = QuiverFlightServer(Core.open(settings))
    request = {"inputs": [ref.uri], "transform": {"executor": "scan@v1", "params": {}}}
    with QuiverClient(flight.location) as q:
        res = q.materialize(ref.uri)
        table = q.fetch(res)  # waits for the build; the baseline serves the same rows
        res = q.materialize(ref.uri)
    local = settings.model_copy(update={"rest_in_process_flight": True})
    rest, stop_rest = serve_asgi(app_from_settings(local, flight_uri=flight.location))
    remote = settings.model_copy(update={"rest_in_process_flight": False})
    rest_grpc, stop_grpc = serve_asgi(app_from_settings(remote, flight_uri=flight.location))
    bare, stop_bare = serve_asgi(bare_app(table))
    path = f"/v1/artifacts/{res['artifact_id']}/v/{res['version']}/data"
    return Setup(rest, rest_grpc, bare, path, request, flight, [stop_rest, stop_grpc, stop_bare])


def curl_seconds(url: str) -> tuple[float, int]:
    """Time for curl (its own process) to read every byte of ``url``; (seconds, bytes)."""
    out = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{time_total} %{size_download}", url],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    seconds, size = out.stdout.split()
    return float(seconds), int(size)


def throughput_pair(s: Setup, rounds: int, rest: str | None = None) -> tuple[float, float, int]:
    """Median seconds for ours (``rest``, default ``s.rest``) and the baseline, interleaved;
    and the bytes."""
    ours, base = [], []
    size = 0
    for _ in range(rounds):
        t, size = curl_seconds((rest or s.rest) + s.data_path)
        ours.append(t)
        base.append(curl_seconds(s.bare + "/data")[0])
    return statistics.median(ours), statistics.median(base), size


P50_CLIENT = textwrap.dedent(
    """
    import json, statistics, sys, time
    import httpx
    rounds = int(sys.argv[1])
    out = []
    for url, body in json.loads(sys.argv[2]):
        with httpx.Client() as c:
            for _ in range(20):
                c.post(url, json=body)
            samples = []
            for _ in range(rounds):
                t = time.perf_counter()
                r = c.post(url, json=body)
                samples.append(time.perf_counter() - t)
                assert r.status_code == 200, r.text
        out.append(statistics.median(samples) * 1000)
    print(json.dumps(out))
    """
)


def materialize_p50(s: Setup, rounds: int, rest: str | None = None) -> tuple[float, float]:
    """p50 ms of a cache-hit POST /v1/materialize (to ``rest``, default ``s.rest``) and of a
    bare JSON POST, from a client process."""
    jobs = [[s.bare + "/echo", {"x": 1}], [(rest or s.rest) + "/v1/materialize", s.request]]
    out = subprocess.run(
        [sys.executable, "-c", P50_CLIENT, str(rounds), json.dumps(jobs)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    bare, ours = json.loads(out.stdout)
    return ours, bare


def server_cpu_ms(url: str, rounds: int) -> float:
    """CPU milliseconds this process (where the servers run; curl is a child, not counted)
    spends per full read of ``url``: what the 2 cores must share with the client."""
    import resource

    def used() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    before = used()
    for _ in range(rounds):
        curl_seconds(url)
    return (used() - before) / rounds * 1000


@contextlib.contextmanager
def rest_process(flight_location: str, tmp: Path) -> Iterator[tuple[str, psutil.Process]]:
    """``quiver rest --flight`` in its own process, as a REST front end in front of a Flight
    service runs: its base URL (answering ``/health``) and the process, stopped on exit."""
    quiver = shutil.which("quiver", path=str(Path(sys.executable).parent)) or "quiver"
    proc = subprocess.Popen(
        [quiver, "rest", "--flight", flight_location, "--rest-port", "0",
         "--data-dir", str(tmp / "rest"), "--notebook-root", str(tmp / "nb")],
        stdout=subprocess.PIPE, text=True,
        env={**os.environ, "QUIVER_LOG_LEVEL": "warning"},
    )  # fmt: skip
    try:
        url = None
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("rest: "):
                url = line.split(": ", 1)[1].strip()
            if line.startswith("ready"):
                break
        assert url is not None, f"quiver rest did not start (exit code {proc.poll()})"
        subprocess.run(["curl", "-sS", "-o", "/dev/null", url + "/health"], check=True)
        yield url, psutil.Process(proc.pid)
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(15)


def rss_while_streaming(tmp: Path, rows: int = 10_000_000) -> tuple[int, int, float]:
    """Upload a ``rows``-row artifact, run ``quiver rest`` as its own process, read the artifact
    through it with curl; (bytes streamed, REST RSS rise in bytes, seconds)."""
    settings = Settings(data_dir=tmp / "big", notebook_root=tmp / "nb", flight_port=0)
    flight = QuiverFlightServer(Core.open(settings))
    try:
        with QuiverClient(flight.location) as q:
            batches = (
                pa.record_batch({"i": pa.array(range(o, o + 500_000), pa.int64()),
                                 "x": pa.array(range(o, o + 500_000), pa.float64())})
                for o in range(0, rows, 500_000)
            )  # fmt: skip
            schema = pa.schema([("i", pa.int64()), ("x", pa.float64())])
            put = q.put(pa.RecordBatchReader.from_batches(schema, batches))
        with rest_process(flight.location, tmp) as (url, rest):
            path = f"{url}/v1/artifacts/{put['artifact_id']}/v/{put['version']}/data"
            before = rest.memory_info().rss
            peak = [before]
            done = threading.Event()

            def sample() -> None:
                while not done.wait(0.005):
                    peak[0] = max(peak[0], rest.memory_info().rss)

            sampler = threading.Thread(target=sample)
            sampler.start()
            t = time.perf_counter()
            _, size = curl_seconds(path)
            seconds = time.perf_counter() - t
            done.set()
            sampler.join()
            return size, peak[0] - before, seconds
    finally:
        flight.close()


# --- pytest-benchmark --------------------------------------------------------------
def _setup_fixture():  # pragma: no cover - used by the tests below only
    import pytest

    @pytest.fixture(scope="module")
    def rest_setup() -> Iterator[Setup]:
        with tempfile.TemporaryDirectory() as tmp:
            s = make_setup(Path(tmp))
            try:
                yield s
            finally:
                s.close()

    return rest_setup


rest_setup = _setup_fixture()


def test_rest_data_1m_rows(benchmark, rest_setup) -> None:
    benchmark.pedantic(curl_seconds, args=(rest_setup.rest + rest_setup.data_path,), rounds=5)


def test_bare_fastapi_data_1m_rows(benchmark, rest_setup) -> None:
    benchmark.pedantic(curl_seconds, args=(rest_setup.bare + "/data",), rounds=5)


def test_rest_materialize_cache_hit(benchmark, rest_setup) -> None:
    import httpx

    with httpx.Client(base_url=rest_setup.rest) as c:
        benchmark(lambda: c.post("/v1/materialize", json=rest_setup.request))
