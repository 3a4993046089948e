"""The single-node cold scan as a Flight client sees it (issue 20), against DuckDB at its best.

A ``quiver flight`` process of its own; this process is the client: ``materialize`` with
``refresh`` (a new build every round), then the status until the build has ended — either
polled as a client without the wait does, or in one ``status`` call with ``wait_seconds``.
The baseline is DuckDB with a warm connection reading the same Parquet files into an
Arrow table. Rounds interleave the three so load hits them alike.

    .venv/bin/python bench/side_by_side.py coldscan
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.flight as fl

from bench.common import PARQUET_SQL, data_files, make_warehouse, quiver_serve, warm_duckdb
from catalog import Warehouses

BATCH_ROWS = 122_880  # the default QUIVER_BATCH_SIZE: the batches a scan writes


@dataclass
class ColdScan:
    client: fl.FlightClient
    request: bytes
    duckdb: Callable[[], object]
    rows: int
    files: list[str] = field(default_factory=list)
    out: Path | None = None


def duckdb_streamed(files: list[str], out: Path | None) -> Callable[[], object]:
    """The build's two halves without Quiver: DuckDB streaming the files in the batches a
    scan uses (warm connection), written to an Arrow IPC file at ``out`` when given."""
    con = duckdb.connect()

    def run() -> None:
        reader = con.sql(PARQUET_SQL, params={"files": files}).to_arrow_reader(BATCH_ROWS)
        if out is None:
            reader.read_all()
            return
        with pa.OSFile(str(out), "wb") as sink, pa.ipc.new_file(sink, reader.schema) as w:
            for batch in reader:
                w.write_batch(batch)

    run()  # warm it
    return run


def _act(client: fl.FlightClient, name: str, raw: bytes) -> dict[str, Any]:
    return json.loads(next(iter(client.do_action(fl.Action(name, raw)))).body.to_pybytes())


@contextlib.contextmanager
def setup(root: Path, rows: int = 1_000_000, files: int = 4) -> Iterator[ColdScan]:
    ref = make_warehouse(root, rows=rows, files=files)
    request = {"inputs": [ref.uri], "transform": {"executor": "scan@v1", "params": {}}}
    with quiver_serve(root, "flight") as (_, seen):
        client = fl.connect(seen["flight"])
        try:
            files = data_files(Warehouses(), ref)
            yield ColdScan(
                client,
                json.dumps({**request, "refresh": True}).encode(),
                warm_duckdb(files),
                rows,
                files,
                root / "plain.arrow",
            )
        finally:
            client.close()


def polled(s: ColdScan) -> int:
    """materialize, then status as fast as answers come until the build has ended."""
    res = _act(s.client, "materialize", s.request)
    status = json.dumps({"artifact_uri": res["artifact_uri"]}).encode()
    while res["state"] == "building":
        res = _act(s.client, "status", status)
    assert res["state"] == "ready", res
    return res["row_count"]


def waited(s: ColdScan) -> int:
    """materialize, then one status call that answers when the build has ended."""
    res = _act(s.client, "materialize", s.request)
    if res["state"] == "building":
        body = {"artifact_uri": res["artifact_uri"], "wait_seconds": 60}
        res = _act(s.client, "status", json.dumps(body).encode())
    assert res["state"] == "ready", res
    return res["row_count"]


def interleaved(s: ColdScan, rounds: int) -> dict[str, list[float]]:
    """Seconds per round of each way, taken in turn."""
    ways: dict[str, Callable[[], object]] = {
        "duckdb": s.duckdb,
        "polled": lambda: polled(s),
        "waited": lambda: waited(s),
    }
    if s.files:
        ways["streamed"] = duckdb_streamed(s.files, None)
        ways["written"] = duckdb_streamed(s.files, s.out)
    samples: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, fn in ways.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
    return samples


# --- where one cold scan spends its time --------------------------------------------------

# The steps of a cold scan, each as (class, method): timestamps are taken around them while
# an in-process server builds, and the client's own two calls are timed as it sees them.
STEPS = {
    "plan": ("materialize.plan", "Planner", "plan"),
    "duckdb start": ("executors.scan.run", "Query", "reader"),
    "begin build": ("catalog.store", "ArtifactStore", "begin_build"),
    "write": ("catalog.build", "Build", "write_reader"),
    "publish": ("catalog.build", "Build", "publish"),
}


@contextlib.contextmanager
def _timed_steps(marks: dict[str, float]) -> Iterator[None]:
    """Record when each step of :data:`STEPS` starts and ends (``"<step> >"``, ``"<step> <"``)."""
    import importlib

    saved = []
    for step, (module, cls_name, method) in STEPS.items():
        cls = getattr(importlib.import_module(module), cls_name)
        original = getattr(cls, method)

        def timed(*args: Any, _o: Any = original, _s: str = step, **kwargs: Any) -> Any:
            marks.setdefault(f"{_s} >", time.perf_counter())
            try:
                return _o(*args, **kwargs)
            finally:
                marks[f"{_s} <"] = time.perf_counter()

        saved.append((cls, method, original))
        setattr(cls, method, timed)
    try:
        yield
    finally:
        for cls, method, original in saved:
            setattr(cls, method, original)


def breakdown(root: Path, rounds: int, rows: int = 1_000_000) -> dict[str, float]:
    """Median milliseconds of each stretch of a cold scan with the status wait, the server
    in this process (so its steps can be timed), the client over gRPC on loopback."""
    from flight import Core, QuiverFlightServer
    from foundation import Settings

    ref = make_warehouse(root, rows=rows, files=4)
    settings = Settings(data_dir=root / "breakdown", flight_port=0, cache_max_bytes=0)
    server = QuiverFlightServer(Core.open(settings))
    request = {"inputs": [ref.uri], "transform": {"executor": "scan@v1", "params": {}}}
    s = ColdScan(fl.connect(server.location), json.dumps({**request, "refresh": True}).encode(),
                 lambda: None, rows)  # fmt: skip
    spans: dict[str, list[float]] = {}
    try:
        for i in range(rounds + 1):
            marks: dict[str, float] = {}
            with _timed_steps(marks):
                t0 = time.perf_counter()
                res = _act(s.client, "materialize", s.request)
                marks["answered"] = time.perf_counter()
                body = {"artifact_uri": res["artifact_uri"], "wait_seconds": 60}
                _act(s.client, "status", json.dumps(body).encode())
                t1 = time.perf_counter()
            m = marks
            stretches = {  # one after the other on the build's path: they add up to total
                "request in, plan": m["plan <"] - t0,
                "DuckDB query start (request's thread)": m["duckdb start <"] - m["plan <"],
                "begin build": m["begin build <"] - m["duckdb start <"],
                "hand-off to the build thread": m["write >"] - m["begin build <"],
                "DuckDB stream + IPC write": m["write <"] - m["write >"],
                "publish (footer, rename, row)": m["publish <"] - m["write <"],
                "status answer after publish": t1 - m["publish <"],
                "total": t1 - t0,
                "(materialize answered at)": m["answered"] - t0,
            }
            for name, seconds in stretches.items():
                if i:  # the first round warms
                    spans.setdefault(name, []).append(seconds * 1e3)
    finally:
        s.client.close()
        server.close()
    return {name: statistics.median(v) for name, v in spans.items()}
