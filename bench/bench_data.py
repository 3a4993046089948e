"""Issue 13: a page of a 5M-row display output through REST, against loading it whole.

``quiver serve`` runs as its own process (its RSS is the server's); a notebook
cell shows a 5M-row table, and the viewer's requests (a page, a sorted page, a
filtered page) go to ``GET …/cells/{id}/data``. The baseline, in the same run,
is what Strata does for each page: the whole output deserialised from its IPC
bytes, then filtered, sorted and sliced with Arrow compute.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as fl

from bench.common import quiver_serve, rss_parts

ROWS = 5_000_000
CELL = f"""\
import numpy as np, pyarrow as pa
rng = np.random.default_rng(7)
n = {ROWS}
pa.table({{
    "id": np.arange(n),
    "value": rng.random(n),
    "cat": pa.array(rng.integers(0, 50, n)).cast(pa.string()),
    "qty": rng.integers(0, 1000, n),
}})
"""
VIEWS: dict[str, dict[str, Any]] = {
    "page": {},
    "sorted": {"sort_by": "value", "sort_dir": "desc"},
    "filtered": {"filters": [{"col": "qty", "op": "gt", "value": 900}]},
}


@dataclass
class DataBench:
    http: httpx.Client
    server: psutil.Process
    base: str
    cell: str
    uri: str
    blob: Path
    """The output as an IPC stream file, for the baseline (Strata keeps it so)."""

    def page(self, view: dict[str, Any], offset: int) -> dict[str, Any]:
        params = {"artifact_uri": self.uri, "offset": offset, "limit": 100, **view}
        if "filters" in params:
            params["filters"] = json.dumps(params["filters"])
        r = self.http.get(f"{self.base}/cells/{self.cell}/data", params=params)
        r.raise_for_status()
        return r.json()


def whole_page(blob: Path, view: dict[str, Any], offset: int) -> list[list[Any]]:
    """Strata's way: the whole output read, then filtered, sorted, sliced."""
    table = pa.ipc.open_stream(blob.read_bytes()).read_all()
    for f in view.get("filters", []):
        table = table.filter(pc.greater(table[f["col"]], f["value"]))
    if view.get("sort_by"):
        order = "descending" if view.get("sort_dir") == "desc" else "ascending"
        table = table.sort_by([(view["sort_by"], order)])
    page = table.slice(offset, 100)
    columns = [page.column(i).to_pylist() for i in range(page.num_columns)]
    return [[c[r] for c in columns] for r in range(page.num_rows)]


@contextlib.contextmanager
def data_setup(root: Path) -> Iterator[DataBench]:
    with quiver_serve(root) as (proc, seen):
        http = httpx.Client(base_url=seen["rest"], timeout=300)
        nb = http.post("/v1/notebooks/create", json={"parent_path": ".", "name": "pages"}).json()
        base = f"/v1/notebooks/{nb['session_id']}"
        cell = http.post(f"{base}/cells", json={}).json()["id"]
        http.put(f"{base}/cells/{cell}", json={"source": CELL}).raise_for_status()
        res = http.post(f"{base}/cells/{cell}/execute").json()
        assert res["status"] == "ready", res
        uri = res["displays"][-1]["artifact_uri"]
        client = fl.connect(seen["flight"])
        table = client.do_get(fl.Ticket(uri.encode())).read_all()
        client.close()
        blob = root / "output.arrows"
        with pa.OSFile(str(blob), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        del table
        yield DataBench(http, psutil.Process(proc.pid), base, cell, uri, blob)
        http.close()


def p50_ms(fn: Callable[[int], object], rounds: int) -> float:
    samples = []
    for i in range(rounds):
        t = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def page_figures(b: DataBench, rounds: int) -> dict[str, tuple[float, float]]:
    """Per view: (ours p50 ms, whole-output baseline p50 ms); offsets spread over the rows."""
    out = {}
    offsets = [(i % 30) * 100 for i in range(rounds)]  # paging forward from the top
    for name, view in VIEWS.items():
        ours = p50_ms(lambda i, v=view: b.page(v, offsets[i]), rounds)
        base = p50_ms(lambda i, v=view: whole_page(b.blob, v, offsets[i]), max(3, rounds // 5))
        out[name] = (ours, base)
    return out


def _rss(proc: psutil.Process) -> tuple[int, int]:
    """(RSS, its anonymous part: heap, not pages of mapped files), bytes."""
    rss, anon, _ = rss_parts(proc.pid)
    return rss, anon


def server_rss_rise(b: DataBench, rounds: int) -> tuple[int, int, int]:
    """Bytes of the server's RSS: (rise after the viewer's requests, peak rise during them,
    peak rise of its anonymous part during them)."""
    before, before_anon = _rss(b.server)
    peak = [before, before_anon]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.002):
            rss, anon = _rss(b.server)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], anon)

    sampler = threading.Thread(target=sample)
    sampler.start()
    for name, view in VIEWS.items():
        for i in range(rounds):
            b.page(view, (i * 104729 * 100) % 4_000_000 if name == "page" else (i % 30) * 100)
    done.set()
    sampler.join()
    return _rss(b.server)[0] - before, peak[0] - before, peak[1] - before_anon


def deep_sorted_ms(b: DataBench, rounds: int = 3) -> float:
    """A sorted page from the middle of the 5M rows (the worst case: a full ranking)."""
    return p50_ms(lambda i: b.page(VIEWS["sorted"], 2_500_000 + i * 100), rounds)
