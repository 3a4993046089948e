"""Export figures (issue 17), against baselines measured in the same run.

    flock /tmp/quiver-heavy.lock .venv/bin/python bench/exchange.py

- zip / HTML export of a 200-cell notebook whose cells ran (each printed a line
  and showed a small table): median over 10 requests, beside the baseline
  ``GET /cells`` of the same notebook (the same cells, serialised as JSON).
  Targets: zip ≤ 300 ms, HTML ≤ 500 ms.
- A snapshot of a notebook holding 500 MB of artifacts (one cell, 500 MB of
  int64), streamed to nowhere: the server's RSS rise (sampled every 5 ms)
  beside streaming the same artifact alone (``GET /v1/artifacts/.../data``).
  Target: rise < 100 MB.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import quiver_serve

CELLS = 200
ROUNDS = 10
BIG_ROWS = 500 * 1024**2 // 8


def _ms(fn: Callable[[], object]) -> float:
    samples = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def _notebook(client: httpx.Client, name: str, sources: list[str]) -> str:
    r = client.post("/v1/notebooks/create", json={"parent_path": ".", "name": name})
    sid = r.json()["session_id"]
    for source in sources:
        cid = client.post(f"/v1/notebooks/{sid}/cells", json={"language": "python"}).json()["id"]
        client.put(f"/v1/notebooks/{sid}/cells/{cid}", json={"source": source})
        out = client.post(f"/v1/notebooks/{sid}/cells/{cid}/execute").json()
        assert out["status"] == "ready", out
    return sid


def _rss_rise(pid: int, fn: Callable[[], object]) -> float:
    proc = psutil.Process(pid)
    before = proc.memory_info().rss
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], proc.memory_info().rss)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        fn()
    finally:
        done.set()
        sampler.join()
    return (peak[0] - before) / 1024**2


def _drain(client: httpx.Client, url: str, **params: str) -> int:
    size = 0
    with client.stream("GET", url, params=params) as r:
        assert r.status_code == 200, r.read()
        for chunk in r.iter_bytes(1024 * 1024):
            size += len(chunk)
    return size


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, quiver_serve(Path(tmp)) as (proc, seen):
        client = httpx.Client(base_url=seen["rest"], timeout=600)
        sources = [
            f"import pyarrow as pa\nprint('cell {i}')\nt{i} = pa.table({{'a': list(range(30)), "
            f"'b': ['v{i}'] * 30}})\nt{i}"
            for i in range(CELLS)
        ]
        sid = _notebook(client, "wide", sources)
        base = f"/v1/notebooks/{sid}"
        cells = _ms(lambda: client.get(f"{base}/cells"))
        zipped = _ms(lambda: client.get(f"{base}/export", params={"fmt": "zip"}))
        page = _ms(lambda: client.get(f"{base}/export", params={"fmt": "html"}))
        big = _notebook(client, "big", [
            f"import numpy as np, pyarrow as pa\nbig = pa.table({{'x': np.arange({BIG_ROWS})}})",
        ])  # fmt: skip
        cell = client.get(f"/v1/notebooks/{big}/cells").json()["cells"][0]
        uri = cell["artifact_uri"]
        artifact_id, version = uri.removeprefix("strata://artifact/").split("@v=")
        data = f"/v1/artifacts/{artifact_id}/v/{version}/data"
        alone = _rss_rise(proc.pid, lambda: _drain(client, data))
        sizes: list[int] = []
        snap = _rss_rise(
            proc.pid,
            lambda: sizes.append(_drain(client, f"/v1/notebooks/{big}/export", fmt="snapshot")),
        )
        print(f"{'figure':<52} {'ours':>10} {'baseline':>10} {'ratio':>7}  target")
        print(f"{'zip export, 200 cells with outputs (ms)':<52} {zipped:>10.1f} {cells:>10.1f} "
              f"{zipped / cells:>7.2f}  <= 300 ms")  # fmt: skip
        print(f"{'HTML export, 200 cells with outputs (ms)':<52} {page:>10.1f} {cells:>10.1f} "
              f"{page / cells:>7.2f}  <= 500 ms")  # fmt: skip
        print(f"{'snapshot of 500 MB artifacts: RSS rise (MB)':<52} {snap:>10.1f} {alone:>10.1f} "
              f"{'':>7}  < 100 MB (streamed {sizes[0] / 1024**2:.0f} MB)")  # fmt: skip
        client.close()


if __name__ == "__main__":
    main()
