"""Flight figures (issue 3), with pytest-benchmark; ``flight_figures()`` in
bench/side_by_side.py prints them as ratios against baselines from the same run.

    .venv/bin/python -m pytest bench/bench_flight.py -q -p no:cacheprovider
    .venv/bin/python bench/side_by_side.py flight
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.flight as fl
import pytest

from bench.common import make_warehouse
from catalog import TableRef
from flight import Core, QuiverFlightServer
from foundation import Settings


class MemoryServer(fl.FlightServerBase):
    """The baseline: a minimal pyarrow Flight server serving one table from memory."""

    def __init__(self, table: pa.Table) -> None:
        super().__init__("grpc://127.0.0.1:0")
        self.table = table

    def do_get(self, context: fl.ServerCallContext, ticket: fl.Ticket) -> fl.FlightDataStream:
        return fl.RecordBatchStream(self.table)

    def do_action(self, context: fl.ServerCallContext, action: fl.Action) -> list[bytes]:
        return [b"{}"]


@dataclass
class Setup:
    server: QuiverFlightServer
    baseline: MemoryServer
    ref: TableRef
    scan: dict[str, Any]
    ticket: fl.Ticket
    small: dict[str, Any]

    @property
    def location(self) -> str:
        return self.server.location

    def close(self) -> None:
        self.baseline.shutdown()
        self.server.close()


def scan_request(ref: TableRef, **extra: Any) -> dict[str, Any]:
    return {"inputs": [ref.uri], "transform": {"executor": "scan@v1", "params": {}}, **extra}


def action(client: fl.FlightClient, name: str, body: dict[str, Any]) -> dict[str, Any]:
    result = next(iter(client.do_action(fl.Action(name, json.dumps(body).encode()))))
    return json.loads(result.body.to_pybytes())


def make_setup(root: Path) -> Setup:
    ref = make_warehouse(root, rows=1_000_000, files=4)
    settings = Settings(data_dir=root / "flight-data", flight_port=0, cache_max_bytes=0)
    server = QuiverFlightServer(Core.open(settings))
    client = fl.connect(server.location)
    scan = scan_request(ref)
    res = action(client, "materialize", scan)
    ticket = fl.Ticket(res["ticket"].encode())
    client.do_get(ticket).read_all()  # wait for the build
    sql = "select category, count(*) n from input0 group by 1"
    small = {
        "inputs": [res["artifact_uri"]],
        "transform": {"executor": "sql@v1", "params": {"sql": sql}},
    }
    client.do_get(fl.Ticket(action(client, "materialize", small)["ticket"].encode())).read_all()
    path = server.core.store.path_of(res["artifact_id"], res["version"])
    in_memory = pa.ipc.open_file(pa.py_buffer(path.read_bytes())).read_all()
    client.close()
    return Setup(server, MemoryServer(in_memory), ref, scan, ticket, small)


def read_all(location: str, ticket: fl.Ticket) -> int:
    client = fl.connect(location)
    try:
        return client.do_get(ticket).read_all().num_rows
    finally:
        client.close()


def doget_seconds(location: str, ticket: fl.Ticket, rounds: int) -> float:
    client = fl.connect(location)
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        client.do_get(ticket).read_all()
        samples.append(time.perf_counter() - t0)
    client.close()
    return statistics.median(samples)


def doget_pair(ours: str, base: str, ticket: fl.Ticket, rounds: int) -> tuple[float, float]:
    """Median DoGet seconds of two servers, measured alternately so load hits both alike."""
    a, b = fl.connect(ours), fl.connect(base)
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for client, out in ((a, samples[0]), (b, samples[1])):
            t0 = time.perf_counter()
            client.do_get(ticket).read_all()
            out.append(time.perf_counter() - t0)
    a.close()
    b.close()
    return statistics.median(samples[0]), statistics.median(samples[1])


def action_p50_ms(
    location: str, name: str, body: dict[str, Any], rounds: int = 500, warmup: int = 50
) -> float:
    """p50 ms of the DoAction ``name`` with ``body``, after ``warmup`` calls."""
    client = fl.connect(location)
    raw = json.dumps(body).encode()
    for _ in range(warmup):
        list(client.do_action(fl.Action(name, raw)))
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        list(client.do_action(fl.Action(name, raw)))
        samples.append(time.perf_counter() - t0)
    client.close()
    return statistics.median(samples) * 1000


def stream_first_vs_total(location: str, request: dict[str, Any]) -> tuple[float, float]:
    """A cold (refresh) build read through GetFlightInfo + DoGet: first batch, total."""
    client = fl.connect(location)
    t0 = time.perf_counter()
    info = client.get_flight_info(fl.FlightDescriptor.for_command(json.dumps(request)))
    reader = client.do_get(info.endpoints[0].ticket)
    reader.read_chunk()
    first = time.perf_counter() - t0
    for _ in reader:
        pass
    total = time.perf_counter() - t0
    client.close()
    return first, total


def concurrent_seconds(location: str, ticket: fl.Ticket, readers: int) -> float:
    """Wall time for ``readers`` clients to each read the whole artifact at once."""
    clients = [fl.connect(location) for _ in range(readers)]
    start = threading.Barrier(readers + 1)

    def run(client: fl.FlightClient) -> None:
        start.wait()
        client.do_get(ticket).read_all()

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    for c in clients:
        c.close()
    return elapsed


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    s = make_setup(Path(tmp_path_factory.mktemp("bench-flight")))
    yield s
    s.close()


def test_doget_ready_1m_rows(benchmark, setup) -> None:
    assert benchmark(read_all, setup.location, setup.ticket) == 1_000_000


def test_doget_baseline_memory_server(benchmark, setup) -> None:
    location = f"grpc://127.0.0.1:{setup.baseline.port}"
    assert benchmark(read_all, location, fl.Ticket(b"")) == 1_000_000


def test_materialize_hit_small_result(benchmark, setup) -> None:
    client = fl.connect(setup.location)
    raw = json.dumps(setup.small).encode()
    result = benchmark(lambda: list(client.do_action(fl.Action("materialize", raw))))
    assert json.loads(result[0].body.to_pybytes())["hit"] is True


def test_materialize_hit_table_input(benchmark, setup) -> None:
    client = fl.connect(setup.location)
    raw = json.dumps(setup.scan).encode()
    result = benchmark(lambda: list(client.do_action(fl.Action("materialize", raw))))
    assert json.loads(result[0].body.to_pybytes())["hit"] is True


def test_bare_do_action_baseline(benchmark, setup) -> None:
    client = fl.connect(f"grpc://127.0.0.1:{setup.baseline.port}")
    benchmark(lambda: list(client.do_action(fl.Action("x", b"{}"))))


def test_16_concurrent_readers(benchmark, setup) -> None:
    benchmark.pedantic(concurrent_seconds, (setup.location, setup.ticket, 16), rounds=3)
