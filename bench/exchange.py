"""Export figures (issue 17), against baselines measured in the same run.

    flock /tmp/quiver-heavy.lock .venv/bin/python bench/exchange.py

- zip / HTML export of a 200-cell notebook whose cells ran (each printed a line
  and showed a small table): median over 10 requests, beside the baseline
  ``GET /cells`` of the same notebook (the same cells, serialised as JSON).
  Targets: zip ≤ 300 ms, HTML ≤ 500 ms.
- A snapshot of a notebook holding 500 MB of artifacts (one cell, 500 MB of
  int64), streamed to nowhere: the peak rise of the server's resident memory
  (sampled every 5 ms) beside streaming the same artifact alone
  (``GET /v1/artifacts/.../data``). RSS counts the pages of the mapped artifact
  file the stream reads (file-backed: the kernel drops them under pressure, the
  process holds nothing), so the figure is the anonymous part (``RssAnon``: what
  the process allocated), with the file-backed part beside it.
  Target: anonymous rise < 100 MB.

``--mb N`` / ``--cells N`` change the sizes (a quick check while developing).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import peak_rss_rise, quiver_serve

CELLS = 200
ROUNDS = 10
MB = 1024**2


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


def _drain(client: httpx.Client, url: str, **params: str) -> int:
    size = 0
    with client.stream("GET", url, params=params) as r:
        assert r.status_code == 200, r.read()
        for chunk in r.iter_bytes(1024 * 1024):
            size += len(chunk)
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=500, help="artifact size, MB (default 500)")
    parser.add_argument("--cells", type=int, default=CELLS, help="cells of the wide notebook")
    args = parser.parse_args()
    big_rows = args.mb * MB // 8
    with tempfile.TemporaryDirectory() as tmp, quiver_serve(Path(tmp)) as (proc, seen):
        client = httpx.Client(base_url=seen["rest"], timeout=600)
        sources = [
            f"import pyarrow as pa\nprint('cell {i}')\nt{i} = pa.table({{'a': list(range(30)), "
            f"'b': ['v{i}'] * 30}})\nt{i}"
            for i in range(args.cells)
        ]
        sid = _notebook(client, "wide", sources)
        base = f"/v1/notebooks/{sid}"
        cells = _ms(lambda: client.get(f"{base}/cells"))
        zipped = _ms(lambda: client.get(f"{base}/export", params={"fmt": "zip"}))
        page = _ms(lambda: client.get(f"{base}/export", params={"fmt": "html"}))
        big = _notebook(client, "big", [
            f"import numpy as np, pyarrow as pa\nbig = pa.table({{'x': np.arange({big_rows})}})",
        ])  # fmt: skip
        cell = client.get(f"/v1/notebooks/{big}/cells").json()["cells"][0]
        uri = cell["artifact_uri"]
        artifact_id, version = uri.removeprefix("strata://artifact/").split("@v=")
        data = f"/v1/artifacts/{artifact_id}/v/{version}/data"
        alone = peak_rss_rise(proc.pid, lambda: _drain(client, data))
        sizes: list[int] = []
        snap = peak_rss_rise(
            proc.pid,
            lambda: sizes.append(_drain(client, f"/v1/notebooks/{big}/export", fmt="snapshot")),
        )
        print(f"{'figure':<52} {'ours':>10} {'baseline':>10} {'ratio':>7}  target")
        for what, ms, target in (("zip", zipped, 300), ("HTML", page, 500)):
            label = f"{what} export, {args.cells} cells with outputs (ms)"
            print(f"{label:<52} {ms:>10.1f} {cells:>10.1f} {ms / cells:>7.2f}  <= {target} ms")
        label = f"snapshot of {args.mb} MB artifacts, peak rise (MB):"
        print(f"{label:<52} (streamed {sizes[0] / MB:.0f} MB; baseline: the artifact alone)")
        for i, part in enumerate(("RSS", "anonymous", "file-backed")):
            target = "< 100 MB" if part == "anonymous" else "(reported)"
            print(f"{'  ' + part:<52} {snap[i] / MB:>10.1f} {alone[i] / MB:>10.1f} "
                  f"{'':>7}  {target}")  # fmt: skip
        client.close()


if __name__ == "__main__":
    main()
