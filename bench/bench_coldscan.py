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
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.flight as fl

from bench.common import data_files, make_warehouse, quiver_serve, warm_duckdb
from catalog import Warehouses


@dataclass
class ColdScan:
    client: fl.FlightClient
    request: bytes
    duckdb: Callable[[], object]
    rows: int


def _act(client: fl.FlightClient, name: str, raw: bytes) -> dict[str, Any]:
    return json.loads(next(iter(client.do_action(fl.Action(name, raw)))).body.to_pybytes())


@contextlib.contextmanager
def setup(root: Path, rows: int = 1_000_000, files: int = 4) -> Iterator[ColdScan]:
    ref = make_warehouse(root, rows=rows, files=files)
    request = {"inputs": [ref.uri], "transform": {"executor": "scan@v1", "params": {}}}
    with quiver_serve(root, "flight") as (_, seen):
        client = fl.connect(seen["flight"])
        try:
            yield ColdScan(
                client,
                json.dumps({**request, "refresh": True}).encode(),
                warm_duckdb(data_files(Warehouses(), ref)),
                rows,
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
    samples: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, fn in ways.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
    return samples
