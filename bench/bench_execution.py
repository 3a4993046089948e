"""Cell execution figures (issue 6), with pytest-benchmark.

Through a real uvicorn and a real Flight server, with a warm kernel:
re-running a trivial cell after a source change, a cache hit, and passing a
1M-row table from one cell to the next against writing and reading it once
as Arrow IPC. ``bench/side_by_side.py execution`` prints them against the
targets.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from bench.bench_notebooks import p50_ms
from executors import load_registry
from flight import Core, QuiverFlightServer
from foundation import Settings
from notebooks import Executions, FlightConfig, NotebookManager
from rest.app import create_app
from rest.notebooks import notebook_router
from tests.servers import serving

ROWS = 1_000_000
MAKE_TABLE = (
    "import numpy as np, pyarrow as pa\n"
    f"{{name}} = pa.table({{{{'id': np.arange({ROWS}), 'v': np.arange({ROWS}) * 0.5, "
    f"'k': np.arange({ROWS}) % 7}}}})"
)


@dataclass
class Bench:
    client: httpx.Client
    sid: str
    ids: dict[str, str]

    def url(self, cid: str) -> str:
        return f"/v1/notebooks/{self.sid}/cells/{cid}"

    def edit(self, name: str, source: str) -> None:
        self.client.put(self.url(self.ids[name]), json={"source": source}).raise_for_status()

    def run(self, name: str, mode: str = "normal") -> dict:
        r = self.client.post(f"{self.url(self.ids[name])}/execute", params={"mode": mode})
        r.raise_for_status()
        body = r.json()
        assert body["status"] == "ready", body
        return body


@contextmanager
def bench_setup(root: Path) -> Iterator[Bench]:
    settings = Settings(
        data_dir=root / "data", notebook_root=root / "notebooks", flight_port=0, host="127.0.0.1"
    )
    core = Core.open(settings, registry=load_registry())
    flight = QuiverFlightServer(core)
    manager = NotebookManager(settings, python_versions={"3.11": Path(sys.executable)})
    executions = Executions(manager, FlightConfig(flight.location))
    app = create_app([notebook_router(manager, settings, executions=executions)])
    session = manager.create(".", "bench", "3.11", False)
    cells = {
        "trivial": "x = 1",
        "hit": "y = 2",
        "make": MAKE_TABLE.format(name="t"),
        "use": "n = t.num_rows",
        "make_private": MAKE_TABLE.format(name="_t"),
        "use_nothing": "m = 1",
    }
    ids = {}
    for name, source in cells.items():
        cid = session.add_cell("python").id
        session.update_source(cid, source)
        ids[name] = cid
    try:
        with serving(app) as url, httpx.Client(base_url=url, timeout=60) as client:
            b = Bench(client, session.id, ids)
            b.run("trivial")  # the kernel is warm from here on
            b.run("hit")
            yield b
    finally:
        executions.close()
        flight.close()


class Rerun:
    """Edit the trivial cell (not timed), then time its execute round trip."""

    def __init__(self, b: Bench) -> None:
        self.b = b
        self.i = time.time_ns()  # sources never seen before: no cache hits

    def __call__(self) -> float:
        self.i += 1
        self.b.edit("trivial", f"x = {self.i}")
        start = time.perf_counter()
        body = self.b.run("trivial")
        elapsed = time.perf_counter() - start
        assert body["execution_method"] == "warm"
        return elapsed


def p50(samples: list[float]) -> float:
    samples = sorted(samples)
    return samples[len(samples) // 2] * 1000


def rerun_p50(b: Bench, rounds: int) -> float:
    rerun = Rerun(b)
    for _ in range(5):
        rerun()
    return p50([rerun() for _ in range(rounds)])


def cache_hit_p50(b: Bench, rounds: int) -> float:
    def hit() -> None:
        assert b.run("hit")["execution_method"] == "cached"

    for _ in range(5):
        hit()
    return p50_ms(hit, rounds)


def pass_cost_ms(b: Bench, rounds: int) -> float:
    """(make t + use t) - (make a private table + use nothing): what passing t adds."""

    def pair(make: str, use: str) -> float:
        start = time.perf_counter()
        b.run(make, "rerun")
        used = b.run(use, "rerun")
        elapsed = time.perf_counter() - start
        if use == "use":
            assert used["outputs"]["n"]["preview"] == ROWS
        return elapsed

    pair("make", "use")
    pair("make_private", "use_nothing")
    with_table = p50([pair("make", "use") for _ in range(rounds)])
    without = p50([pair("make_private", "use_nothing") for _ in range(rounds)])
    return max(with_table - without, 0.0)


def ipc_round_trip_ms(rounds: int) -> float:
    """Write the same table once as an Arrow IPC file and read it back."""
    import numpy as np

    table = pa.table({"id": np.arange(ROWS), "v": np.arange(ROWS) * 0.5, "k": np.arange(ROWS) % 7})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.arrow"

        def once() -> None:
            with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
                w.write_table(table)
            with pa.memory_map(str(path)) as source:
                assert pa.ipc.open_file(source).read_all().num_rows == ROWS

        once()
        return p50_ms(once, rounds)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    with bench_setup(tmp_path_factory.mktemp("bench-exec")) as b:
        yield b


def test_rerun_trivial_cell_after_edit(benchmark, bench) -> None:
    rerun = Rerun(bench)
    benchmark.pedantic(lambda: bench.run("trivial"), setup=lambda: rerun.b.edit(
        "trivial", f"x = {time.perf_counter_ns()}"), rounds=30)  # fmt: skip


def test_cache_hit(benchmark, bench) -> None:
    benchmark(lambda: bench.run("hit"))


def test_pass_1m_rows_between_cells(benchmark, bench) -> None:
    def pair() -> None:
        bench.run("make", "rerun")
        bench.run("use", "rerun")

    benchmark.pedantic(pair, rounds=5)


def test_ipc_write_read_1m_rows(benchmark) -> None:
    benchmark.pedantic(lambda: ipc_round_trip_ms(1), rounds=3)
