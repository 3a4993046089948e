"""Print every figure as a ratio against a baseline measured in the same run.

    .venv/bin/python bench/side_by_side.py            # all figures
    .venv/bin/python bench/side_by_side.py core       # one group

Each group is a function returning rows of (figure, ours, baseline, ratio,
target); the script prints them as a table.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    cold_scan,
    data_files,
    duckdb_baseline,
    make_materializer,
    make_warehouse,
    median_time,
)

Row = tuple[str, str, str, str, str]

RSS_SCRIPT = textwrap.dedent(
    """
    import json, sys, threading
    from pathlib import Path
    import psutil
    sys.path.insert(0, sys.argv[3])
    from bench.common import make_materializer, scan_request
    from catalog.uris import parse_uri
    ref = parse_uri(sys.argv[1])
    m = make_materializer(Path(sys.argv[2]))
    m.warehouses.resolve(ref)
    proc = psutil.Process()
    before = proc.memory_info().rss // 1024
    peak = [before]
    done = threading.Event()
    def sample():
        while not done.wait(0.005):
            peak[0] = max(peak[0], proc.memory_info().rss // 1024)
    sampler = threading.Thread(target=sample)
    sampler.start()
    res = m.materialize(scan_request(ref, refresh=False), wait=True)
    done.set()
    sampler.join()
    after = peak[0]
    m.close()
    print(json.dumps({"rows": res.info.row_count, "bytes": res.info.byte_size,
                      "before_kb": before, "after_kb": after}))
    """
)


def core_figures(rounds: int = 7) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ref = make_warehouse(root, rows=1_000_000, files=4)
        m = make_materializer(root / "data")
        try:
            files = data_files(m.warehouses, ref)
            duckdb_baseline(files)  # warm the page cache for both sides
            cold_scan(m, ref)
            base = median_time(lambda: duckdb_baseline(files), rounds)
            ours = median_time(lambda: cold_scan(m, ref), rounds)
        finally:
            m.close()
            m.store.close()
        rows.append(
            (
                "cold scan@v1 1M rows x 5 cols, 4 files -> ready artifact",
                f"{ours * 1000:.0f} ms",
                f"{base * 1000:.0f} ms (DuckDB parquet -> Arrow table)",
                f"{ours / base:.2f}x",
                "<= 1.5x",
            )
        )
        big = make_warehouse(root, rows=10_000_000, files=8)
        out = subprocess.run(
            [sys.executable, "-c", RSS_SCRIPT, big.uri, str(root / "rss"), str(Path.cwd())],
            check=True,
            capture_output=True,
            text=True,
        )
        r = json.loads(out.stdout)
        rise_mb = (r["after_kb"] - r["before_kb"]) / 1024
        rows.append(
            (
                "peak RSS rise, scan@v1 of 10M rows into an artifact",
                f"{rise_mb:.0f} MB",
                f"artifact {r['bytes'] / 2**20:.0f} MB, {r['rows']:,} rows",
                f"{rise_mb / (r['bytes'] / 2**20):.2f}x of the data",
                "< 300 MB",
            )
        )
    return rows


GROUPS: dict[str, Callable[[], list[Row]]] = {"core": core_figures}


def main(argv: list[str]) -> None:
    wanted = argv or list(GROUPS)
    print(f"{'figure':58} {'ours':>10}  {'baseline':44} {'ratio':>12}  target")
    for name in wanted:
        for figure, ours, base, ratio, target in GROUPS[name]():
            print(f"{figure:58} {ours:>10}  {base:44} {ratio:>12}  {target}", flush=True)
    print(f"(peak RSS of this script: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} kB)")


if __name__ == "__main__":
    main(sys.argv[1:])
