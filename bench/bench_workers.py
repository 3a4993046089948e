"""Worker figures (issue 16): what sending a cell to Dask costs, and where big data goes.

A ``quiver serve`` process of its own with a ``distributed.LocalCluster`` (2
worker processes) as its server-configured worker ``cluster``:
- the dispatch overhead of a trivial cell on the Dask worker against the same
  cell on the local kernel (warm), both re-run after an edit through REST;
- a cell aggregating a 10M-row upstream table on the cluster: it completes, its
  output is readable over REST, and the server process's peak RSS rise (sampled
  every 5 ms) stays small, since the table goes Dask worker <-> Flight by URI.
``bench/side_by_side.py workers`` prints them against the targets.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

ROWS = 10_000_000
BIG = (
    "# @worker cluster\nimport numpy as np, pyarrow as pa\n"
    f"big = pa.table({{'id': np.arange({ROWS}), 'k': np.arange({ROWS}) % 100, "
    f"'v': np.arange({ROWS}) * 0.5}})"
)
AGG = "# @worker cluster\nby_k = big.group_by('k').aggregate([('v', 'sum'), ('id', 'count')])"


@dataclass
class Rig:
    client: httpx.Client
    sid: str
    server: psutil.Process

    def add(self, source: str) -> str:
        r = self.client.post(f"/v1/notebooks/{self.sid}/cells", json={"language": "python"})
        r.raise_for_status()
        cid = r.json()["id"]
        self.edit(cid, source)
        return cid

    def edit(self, cid: str, source: str) -> None:
        url = f"/v1/notebooks/{self.sid}/cells/{cid}"
        self.client.put(url, json={"source": source}).raise_for_status()

    def run(self, cid: str) -> dict[str, Any]:
        r = self.client.post(f"/v1/notebooks/{self.sid}/cells/{cid}/execute")
        r.raise_for_status()
        body = r.json()
        assert body["status"] == "ready", body
        return body


@contextmanager
def rig(root: Path) -> Iterator[Rig]:
    from distributed import LocalCluster

    from bench.common import quiver_serve

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=":0", host="127.0.0.1")  # fmt: skip
    spec = {"name": "cluster", "backend": "executor",
            "config": {"transport": "dask", "url": cluster.scheduler_address}}  # fmt: skip
    os.environ["QUIVER_WORKERS"] = json.dumps([spec])
    try:
        with (
            quiver_serve(root) as (proc, where),
            httpx.Client(base_url=where["rest"], timeout=600) as client,
        ):
            r = client.post("/v1/notebooks/create", json={"parent_path": ".", "name": "w"})
            r.raise_for_status()
            yield Rig(client, r.json()["session_id"], psutil.Process(proc.pid))
    finally:
        os.environ.pop("QUIVER_WORKERS", None)
        cluster.close(timeout=30)


def rerun_p50_ms(r: Rig, cid: str, head: str, rounds: int) -> float:
    """Edit the cell to a source never seen (not timed), then time its execute."""
    samples = []
    for i in range(rounds + 3):
        r.edit(cid, f"{head}x = {time.time_ns() + i}")
        start = time.perf_counter()
        r.run(cid)
        samples.append(time.perf_counter() - start)
    samples = sorted(samples[3:])
    return samples[len(samples) // 2] * 1000


def dispatch_overhead(r: Rig, rounds: int) -> tuple[float, float]:
    """p50 ms of a trivial cell re-run on the local kernel and on the Dask worker."""
    local = r.add("x = 0")
    remote = r.add("# @worker cluster\nx = 0")
    return (
        rerun_p50_ms(r, local, "", rounds),
        rerun_p50_ms(r, remote, "# @worker cluster\n", rounds),
    )


def big_aggregate(r: Rig) -> dict[str, Any]:
    """Run the 10M-row upstream and its aggregate on the cluster; seconds, RSS rise, rows."""
    up, agg = r.add(BIG), r.add(AGG)

    def rss() -> tuple[int, int]:
        info = r.server.memory_info()
        return info.rss, info.rss - info.shared  # all, and not file-backed (the heap)

    before = rss()
    peak = list(before)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            now = rss()
            peak[0], peak[1] = max(peak[0], now[0]), max(peak[1], now[1])

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        start = time.perf_counter()
        made = r.run(up)
        out = r.run(agg)
        elapsed = time.perf_counter() - start
        uri = out["artifact_uris"]["by_k"]
        page = r.client.get(
            f"/v1/notebooks/{r.sid}/cells/{agg}/data", params={"artifact_uri": uri, "limit": 5}
        ).json()
    finally:
        done.set()
        sampler.join()
    assert page["total"] == 100, page
    return {
        "seconds": elapsed,
        "rss_rise_mb": (peak[0] - before[0]) / 2**20,
        "anon_rise_mb": (peak[1] - before[1]) / 2**20,
        "rows": made["outputs"]["big"]["rows"],
    }


@pytest.fixture(scope="module")
def workers_rig() -> Iterator[Rig]:
    pytest.importorskip("distributed")
    with tempfile.TemporaryDirectory() as tmp, rig(Path(tmp)) as r:
        yield r


def test_dispatch_overhead(benchmark: Any, workers_rig: Rig) -> None:
    cid = workers_rig.add("# @worker cluster\nx = 0")
    benchmark.pedantic(
        lambda: workers_rig.run(cid), setup=lambda: workers_rig.edit(
            cid, f"# @worker cluster\nx = {time.time_ns()}"), rounds=10
    )  # fmt: skip
