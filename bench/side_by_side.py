"""Print every figure as a ratio against a baseline measured in the same run.

    .venv/bin/python bench/side_by_side.py            # all figures
    .venv/bin/python bench/side_by_side.py core       # one group

Each group is a function returning rows of (figure, ours, baseline, ratio,
target); the script prints them as a table.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    best_and_median,
    cold_scan,
    data_files,
    make_materializer,
    make_warehouse,
    median_time,
    warm_duckdb,
)

Row = tuple[str, str, str, str, str]
ROOT = Path(__file__).resolve().parents[1]  # the checkout: client scripts import from it

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
            duckdb = warm_duckdb(files)  # DuckDB at its best: a warm connection
            cold_scan(m, ref)
            base = median_time(duckdb, rounds)
            ours = median_time(lambda: cold_scan(m, ref), rounds)
        finally:
            m.close()
            m.store.close()
        rows.append(
            (
                "cold scan@v1 1M rows x 5 cols, 4 files -> ready artifact",
                f"{ours * 1000:.0f} ms",
                f"{base * 1000:.0f} ms (DuckDB warm, parquet -> Arrow)",
                f"{ours / base:.2f}x",
                "<= 1.5x",
            )
        )
        big = make_warehouse(root, rows=10_000_000, files=8)
        out = subprocess.run(
            [sys.executable, "-c", RSS_SCRIPT, big.uri, str(root / "rss"), str(ROOT)],
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


ACTION_P50_CLIENT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[2])
    from bench.bench_flight import action_p50_ms
    print(json.dumps([action_p50_ms(*job) for job in json.loads(sys.argv[1])]))
    """
)


def flight_figures(rounds: int = 15) -> list[Row]:
    """Issue 3: DoGet, cache-hit DoAction, stream first batch, concurrent readers."""
    from bench.bench_flight import (
        concurrent_seconds,
        doget_pair,
        make_setup,
        scan_request,
        stream_first_vs_total,
    )

    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        s = make_setup(Path(tmp))
        try:
            base_loc = f"grpc://127.0.0.1:{s.baseline.port}"
            mb = s.baseline.table.nbytes / 1e6
            doget_pair(s.location, base_loc, s.ticket, 2)  # warm both
            ours, base = doget_pair(s.location, base_loc, s.ticket, rounds)
            rows.append(
                (
                    "DoGet ready 1M-row artifact (mmap), throughput",
                    f"{mb / ours:.0f} MB/s",
                    f"{mb / base:.0f} MB/s (pyarrow server, table in memory)",
                    f"{base / ours:.2f}x",
                    ">= 0.9x",
                )
            )
            # The client runs in its own process, as a real one would.
            jobs = [[base_loc, "x", {}], [s.location, "materialize", s.small],
                    [s.location, "materialize", s.scan]]  # fmt: skip
            out = subprocess.run(
                [sys.executable, "-c", ACTION_P50_CLIENT, json.dumps(jobs), str(ROOT)],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            bare, small, table = json.loads(out.stdout)
            for label, ms in (("artifact input", small), ("table input", table)):
                rows.append(
                    (
                        f"materialize cache hit p50, DoAction ({label})",
                        f"{ms:.2f} ms",
                        f"{bare:.2f} ms (bare pyarrow DoAction)",
                        f"{ms / bare:.2f}x",
                        "<= 1 ms",
                    )
                )
            firsts, totals = [], []
            for _ in range(3):
                first, total = stream_first_vs_total(s.location, scan_request(s.ref, refresh=True))
                firsts.append(first)
                totals.append(total)
            first, total = statistics.median(firsts), statistics.median(totals)
            rows.append(
                (
                    "stream mode, cold 4-file scan: first batch",
                    f"{first * 1000:.0f} ms",
                    f"{total * 1000:.0f} ms (whole build, same request)",
                    f"{first / total:.2f}x",
                    "< 0.5x",
                )
            )
            one = min(concurrent_seconds(s.location, s.ticket, 1) for _ in range(3))
            many = min(concurrent_seconds(s.location, s.ticket, 16) for _ in range(3))
            rows.append(
                (
                    "16 concurrent DoGet readers, aggregate throughput",
                    f"{16 * mb / many:.0f} MB/s",
                    f"{mb / one:.0f} MB/s (one reader)",
                    f"{(16 / many) / (1 / one):.2f}x",
                    ">= 1x",
                )
            )
        finally:
            s.close()
    return rows


def notebook_figures(rounds: int = 60) -> list[Row]:
    """Issue 5: one cell edit in a 200-cell notebook through REST (cell, DAG, all cells)."""
    from bench.bench_notebooks import edit_setup, p50_ms

    with tempfile.TemporaryDirectory() as tmp, edit_setup(Path(tmp)) as (edit, client):
        for _ in range(10):  # warm both
            edit()
            client.get("/health")
        base = p50_ms(lambda: client.get("/health"), rounds)
        ours = p50_ms(edit, rounds)
        size = len(edit().content)
    return [
        (
            "edit 1 cell of 200 via REST, p50 (~90 cells flip)",
            f"{ours:.1f} ms",
            f"{base:.1f} ms (GET /health, same server)",
            f"{ours / base:.1f}x",
            f"<= 20 ms ({size / 1e3:.0f} kB body)",
        )
    ]


def execution_figures(rounds: int = 60) -> list[Row]:
    """Issue 6: warm re-run after an edit, cache hit, a 1M-row table passed cell to cell."""
    from bench.bench_execution import (
        bench_setup,
        cache_hit_p50,
        ipc_round_trip_ms,
        pass_cost_ms,
        rerun_p50,
    )
    from bench.bench_notebooks import p50_ms

    with tempfile.TemporaryDirectory() as tmp, bench_setup(Path(tmp)) as b:
        for _ in range(10):
            b.client.get("/health")
        bare = p50_ms(lambda: b.client.get("/health"), rounds)
        rerun = rerun_p50(b, rounds)
        hit = cache_hit_p50(b, rounds)
        passed = pass_cost_ms(b, 7)
    ipc = ipc_round_trip_ms(7)
    return [
        (
            "re-run trivial cell after an edit via REST, p50 (warm)",
            f"{rerun:.1f} ms",
            f"{bare:.1f} ms (GET /health, same server)",
            f"{rerun / bare:.1f}x",
            "<= 15 ms (Strata ~60 ms)",
        ),
        (
            "cell cache hit via REST, p50",
            f"{hit:.1f} ms",
            f"{bare:.1f} ms (GET /health, same server)",
            f"{hit / bare:.1f}x",
            "<= 5 ms (Strata ~25 ms)",
        ),
        (
            "pass a 1M-row table (3 cols, 24 MB) cell -> cell",
            f"{passed:.0f} ms",
            f"{ipc:.0f} ms (IPC file write + mmap read)",
            f"{passed / ipc:.2f}x",
            "<= 2x",
        ),
    ]


def rest_figures(rounds: int = 7) -> list[Row]:
    """Issue 4: GET …/data vs a bare FastAPI app, materialize cache hit, RSS over 10M rows."""
    from bench.bench_rest import (
        make_setup,
        materialize_p50,
        rss_while_streaming,
        server_cpu_ms,
        throughput_pair,
    )

    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        s = make_setup(Path(tmp))
        try:
            for label, url in (("", s.rest), (" over gRPC", s.rest_grpc)):
                throughput_pair(s, 1, url)  # warm both
                ours, base, size = throughput_pair(s, rounds, url)
                mb = size / 1e6
                rows.append(
                    (
                        f"GET …/data ready 1M-row artifact{label} (curl reads all)",
                        f"{mb / ours:.0f} MB/s",
                        f"{mb / base:.0f} MB/s (bare FastAPI, table in memory)",
                        f"{base / ours:.2f}x",
                        ">= 0.7x" if not label else "(quiver rest --flight)",
                    )
                )
            # Why the gRPC figure sits where it does: server CPU per body, same run.
            cpu = {k: server_cpu_ms(u, rounds) for k, u in
                   (("in-process", s.rest + s.data_path), ("gRPC", s.rest_grpc + s.data_path),
                    ("bare", s.bare + "/data"))}  # fmt: skip
            rows.append(
                (
                    "  server CPU per body: in-process / over gRPC",
                    f"{cpu['in-process']:.0f} / {cpu['gRPC']:.0f} ms",
                    f"{cpu['bare']:.0f} ms (bare FastAPI)",
                    f"{cpu['in-process'] / cpu['bare']:.1f}x / {cpu['gRPC'] / cpu['bare']:.1f}x",
                    "(2 cores, curl too)",
                )
            )
            for label, url in (("", s.rest), (" over gRPC", s.rest_grpc)):
                hit, bare = materialize_p50(s, 300, url)
                rows.append(
                    (
                        f"POST /v1/materialize cache hit p50{label}",
                        f"{hit:.2f} ms",
                        f"{bare:.2f} ms (bare FastAPI JSON POST)",
                        f"{hit / bare:.2f}x",
                        "<= 2 ms" if not label else "(quiver rest --flight)",
                    )
                )
        finally:
            s.close()
        size, rise, seconds = rss_while_streaming(Path(tmp))
        rows.append(
            (
                "GET …/data 10M rows: REST process RSS rise",
                f"{rise / 1e6:.0f} MB",
                f"{size / 1e6:.0f} MB streamed in {seconds:.2f} s",
                f"{rise / size:.2f}x",
                "< 100 MB",
            )
        )
    return rows


def data_figures(rounds: int = 30) -> list[Row]:
    """Issue 13: the table viewer's page of a 5M-row display output, and the server's RSS."""
    from bench.bench_data import data_setup, deep_sorted_ms, page_figures, server_rss_rise

    with tempfile.TemporaryDirectory() as tmp, data_setup(Path(tmp)) as b:
        for view in (
            {},
            {"sort_by": "value"},
            {"filters": [{"col": "qty", "op": "gt", "value": 1}]},
        ):
            b.page(view, 0)  # warm: the kernel, the code paths
        figures = page_figures(b, rounds)
        rise, peak, peak_anon = server_rss_rise(b, rounds)
        deep = deep_sorted_ms(b)
    targets = {"page": "<= 20 ms (Strata 85 ms)", "sorted": "<= 100 ms (Strata 252 ms)",
               "filtered": "<= 50 ms (Strata 80 ms)"}  # fmt: skip
    rows: list[Row] = [
        (
            f"GET …/cells/{{id}}/data 5M rows: {name} page (of 100) p50",
            f"{ours:.1f} ms",
            f"{base:.0f} ms (whole output per page, in-process)",
            f"{ours / base:.2f}x",
            targets[name],
        )
        for name, (ours, base) in figures.items()
    ]
    rows.append(
        (
            "  sorted page from the middle (offset 2.5M), p50",
            f"{deep:.0f} ms",
            f"{figures['sorted'][1]:.0f} ms (whole output, first pages)",
            "",
            "(reported)",
        )
    )
    rows.append(
        (
            f"  server RSS rise after {3 * rounds} pages (peak during)",
            f"{rise / 1e6:.0f} MB",
            f"peak {peak / 1e6:.0f} MB, of it heap {peak_anon / 1e6:.0f} MB",
            "",
            "< 50 MB",
        )
    )
    return rows


def web_figures(rounds: int = 15) -> list[Row]:
    """Issue 19: the web UI in Chromium: first paint of 200 cells, the save round trip."""
    from bench.bench_web import first_paints, p50, save_round_trips, web_setup

    with tempfile.TemporaryDirectory() as tmp, web_setup(Path(tmp)) as b:
        big = first_paints(b, b.big, rounds)
        small = first_paints(b, b.small, rounds)
        reloaded = first_paints(b, b.big, rounds, reload=True)
        small_reloaded = first_paints(b, b.small, rounds, reload=True)
        saves, bare = save_round_trips(b, 3 * rounds)
    return [
        (
            "web UI: first paint of a 200-cell notebook, new tab, p50",
            f"{p50(big):.0f} ms",
            f"{p50(small):.0f} ms (a 1-cell notebook)",
            f"{p50(big) / p50(small):.1f}x",
            f"<= 1000 ms (max {max(big):.0f} ms)",
        ),
        (
            "  the same, reloaded in its tab, p50",
            f"{p50(reloaded):.0f} ms",
            f"{p50(small_reloaded):.0f} ms (a 1-cell notebook)",
            f"{p50(reloaded) / p50(small_reloaded):.1f}x",
            f"(max {max(reloaded):.0f} ms)",
        ),
        (
            "web UI: save round trip while typing (cell 100 of 200), p50",
            f"{p50(saves):.1f} ms",
            f"{p50(bare):.1f} ms (bare socket round trip)",
            f"{p50(saves) / p50(bare):.1f}x",
            f"<= 50 ms (p90 {sorted(saves)[int(0.9 * len(saves))]:.0f} ms)",
        ),
    ]


def worker_figures(rounds: int = 30) -> list[Row]:
    """Issue 16: a trivial cell's dispatch to Dask vs local; a 10M-row aggregate's RSS."""
    from bench.bench_workers import big_aggregate, dispatch_overhead, rig

    with tempfile.TemporaryDirectory() as tmp, rig(Path(tmp)) as r:
        local, remote = dispatch_overhead(r, rounds)
        big = big_aggregate(r)
    return [
        (
            "trivial cell on a Dask worker, re-run via REST, p50",
            f"{remote:.1f} ms",
            f"{local:.1f} ms (same cell, local kernel)",
            f"+{remote - local:.1f} ms",
            "<= +100 ms",
        ),
        (
            f"{big['rows'] / 1e6:.0f}M-row upstream + aggregate on 2 Dask workers",
            f"{big['seconds']:.1f} s",
            f"server RSS rise {big['rss_rise_mb']:.0f} MB",
            "",
            "completes; RSS rise < 300 MB",
        ),
    ]


def ai_figures(rounds: int = 60) -> list[Row]:
    """Issue 18: the assistant's stream, first token in to first frame out."""
    from bench.bench_ai import first_byte, p50, p90

    m = first_byte(rounds)
    ours, direct = m["ours"], m["direct"]
    return [
        (
            "AI stream: provider's first token -> first SSE delta, p50",
            f"{p50(ours):.1f} ms",
            f"{p50(direct):.1f} ms (openai client reading it directly)",
            f"+{p50(ours) - p50(direct):.1f} ms",
            f"<= +20 ms (p90 {p90(ours):.1f} vs {p90(direct):.1f} ms)",
        ),
    ]


def env_figures() -> list[Row]:
    """Issue 15: notebook environments on uv, offline (bench/bench_env.py)."""
    from bench.bench_env import figures

    with tempfile.TemporaryDirectory() as tmp:
        f = figures(Path(tmp))
    base = f"{f['python_start'] * 1000:.0f} ms (python -c 'import pyarrow')"
    ms = lambda s: f"{s * 1000:.0f} ms"  # noqa: E731
    return [
        ("new notebook -> first cell result, empty uv cache", ms(f["first_empty"]), base,
         f"{f['first_empty'] / f['python_start']:.1f}x", "<= 3 s (Strata ~20 s)"),
        ("new notebook -> first cell result, warm", ms(f["first_warm"]), base,
         f"{f['first_warm'] / f['python_start']:.1f}x", "<= 0.4 s (Strata 0.62 s)"),
        ("add a local wheel -> a cell imports it, empty cache", ms(f["add_empty"]), base,
         f"{f['add_empty'] / f['python_start']:.1f}x", "<= 2 s"),
        ("add a local wheel -> a cell imports it, warm", ms(f["add_warm"]), base,
         f"{f['add_warm'] / f['python_start']:.1f}x", "<= 0.4 s (Strata 0.45 s)"),
        ("20 notebooks opened, one cell run in each", ms(f["many_s"]), base,
         f"{f['many_s'] / f['python_start']:.1f}x", "<= 3 s (Strata 12 s)"),
        ("  server process tree growth per notebook", f"{f['many_mib_per_nb']:.1f} MiB", "-",
         "-", "<= 25 MiB (Strata 133 MiB)"),
    ]  # fmt: skip


def flight_sql_figures(rounds: int = 7) -> list[Row]:
    """Issue 21: Flight SQL through ADBC: fetch, cold query, cache hit."""
    from bench.bench_flight_sql import (
        AGGREGATE,
        HIT,
        ROWS,
        WHOLE,
        cold_pair,
        fetch_pair,
        hit_p50_ms,
        make_rig,
        served,
    )

    with tempfile.TemporaryDirectory() as tmp:
        rig = make_rig(Path(tmp))
        cold, duck, second = cold_pair(rig, AGGREGATE, rounds)
        with served(rig, rig.root / "data") as server:
            fetch_pair(server.location, WHOLE, 2)  # build, then warm both
            ours, base, size = fetch_pair(server.location, WHOLE, rounds)
            hit, same_calls, bare, idle = hit_p50_ms(server.location, HIT, 20 * rounds)
    mb = size / 1e6
    return [
        (
            f"ADBC fetch_arrow_table, {ROWS:,}-row query result",
            f"{mb / ours:.0f} MB/s",
            f"{mb / base:.0f} MB/s (plain DoGet, same artifact)",
            f"{base / ours:.2f}x",
            ">= 0.9x",
        ),
        (
            "cold aggregate query, 4-file warehouse, best of N",
            f"{cold * 1000:.0f} ms",
            f"{duck * 1000:.0f} ms (warm DuckDB, same SQL on the files)",
            f"{cold / duck:.2f}x",
            "<= 1.3x",
        ),
        (
            "  a second query on the same table, same server (new SQL text)",
            f"{second * 1000:.0f} ms",
            f"{duck * 1000:.0f} ms (warm DuckDB)",
            f"{second / duck:.2f}x",
            "(reported)",
        ),
        (
            "repeated identical query via ADBC (cache hit, new cursor), p50",
            f"{hit:.2f} ms",
            f"{bare:.2f} ms (pyarrow GetFlightInfo + DoGet)",
            f"{hit / bare:.2f}x",
            "<= 2 ms",
        ),
        (
            "  the same 4 calls ADBC sends, bare pyarrow client, p50",
            f"{same_calls:.2f} ms",
            "(prepare, GetFlightInfo, DoGet, close)",
            f"{hit / same_calls:.2f}x",
            "(reported)",
        ),
        (
            "  ADBC, same query, against a Python server doing no work, p50",
            f"{idle:.2f} ms",
            "(the floor of ADBC + pyarrow's server here)",
            f"{hit / idle:.2f}x",
            "(reported)",
        ),
    ]


def url_figures(rounds: int = 9) -> list[Row]:
    """Issue 20: polars reads an artifact's Parquet rendition by URL vs from local disk, and
    vs the same file from a minimal sendfile server (what polars over HTTP costs anyway)."""
    import polars as pl

    from bench.bench_urls import interleaved, projected_bytes, sendfile_server, setup

    with tempfile.TemporaryDirectory() as tmp, setup(Path(tmp)) as s:
        with sendfile_server(s.local) as floor:
            sources = {"url": s.url, "disk": str(s.local), "floor": floor.url}
            reads = {name: (lambda src=src: pl.read_parquet(src)) for name, src in sources.items()}
            interleaved(reads, 1)  # warm all
            ours_cpu, floor_cpu = s.counter.cpu_s(), floor.cpu_s()
            t = interleaved(reads, rounds)
            ours_cpu = (s.counter.cpu_s() - ours_cpu) / rounds
            floor_cpu = (floor.cpu_s() - floor_cpu) / rounds
        sent, size = projected_bytes(s)
    (url_best, url_med), (disk_best, disk_med) = t["url"], t["disk"]
    floor_best, floor_med = t["floor"]
    return [
        (
            "polars read_parquet(url), 1M rows x 5 cols, median",
            f"{url_med * 1e3:.0f} ms",
            f"{disk_med * 1e3:.0f} ms (same file, local disk)",
            f"{url_med / disk_med:.2f}x",
            "<= 1.5x",
        ),
        (
            "  best of the rounds",
            f"{url_best * 1e3:.0f} ms",
            f"{disk_best * 1e3:.0f} ms",
            f"{url_best / disk_best:.2f}x",
            "",
        ),
        (
            "  same file from a bare sendfile server, median / best",
            f"{floor_med * 1e3:.0f} / {floor_best * 1e3:.0f} ms",
            "local disk",
            f"{floor_med / disk_med:.2f}x / {floor_best / disk_best:.2f}x",
            "(the floor for HTTP)",
        ),
        (
            "  server CPU per read: ours (event loop) vs the sendfile server's threads",
            f"{ours_cpu * 1e3:.1f} ms",
            f"{floor_cpu * 1e3:.1f} ms",
            f"{ours_cpu / floor_cpu:.2f}x",
            "(reported)",
        ),
        (
            "scan_parquet(url).select(1 of 5 cols): bytes served",
            f"{sent / 1e6:.1f} MB",
            f"{size / 1e6:.1f} MB (the whole file)",
            f"{sent / size:.2f}x",
            "only the column's chunks",
        ),
        (
            "first request: the Parquet rendition written and sent",
            f"{s.rendition_write_s * 1e3:.0f} ms",
            "",
            "",
            "once per version",
        ),
    ]


def split_figures(rounds: int = 21, rows: int = 1_000_000) -> list[Row]:
    """Issue 20: GET …/data through ``quiver rest --flight`` in its own process vs bare FastAPI."""
    from bench.bench_split import measure, split_setup

    with tempfile.TemporaryDirectory() as tmp, split_setup(Path(tmp), rows) as s:
        measure(s, 1)  # warm both
        m = measure(s, rounds)
    mb = m["bytes"] / 1e6
    return [
        (
            f"GET …/data ready {rows / 1e6:g}M-row artifact, split REST, median",
            f"{mb / m['ours_median']:.0f} MB/s",
            f"{m['bare_bytes'] / 1e6 / m['bare_median']:.0f} MB/s (bare FastAPI, in memory)",
            f"{m['bare_median'] / m['ours_median']:.2f}x",
            ">= 0.8x",
        ),
        (
            "  best of the rounds",
            f"{m['ours_best'] * 1e3:.0f} ms",
            f"{m['bare_best'] * 1e3:.0f} ms",
            f"{m['bare_best'] / m['ours_best']:.2f}x",
            f"({mb:.1f} MB, curl reads all)",
        ),
        (
            "  CPU per body: REST process + Flight server",
            f"{m['cpu_rest_ms']:.0f} + {m['cpu_flight_ms']:.0f} ms",
            f"{m['cpu_bare_ms']:.0f} ms (bare FastAPI)",
            "",
            "(2 cores, curl too)",
        ),
    ]


def coldscan_figures(rounds: int = 9, rows: int = 1_000_000) -> list[Row]:
    """Issue 20: cold scan@v1 through Flight as a client sees it vs DuckDB at its best,
    and where the time of one goes."""
    from bench.bench_coldscan import breakdown, interleaved, setup

    with tempfile.TemporaryDirectory() as tmp, setup(Path(tmp), rows) as s:
        interleaved(s, 1)  # warm all: page cache, server, connection
        samples = interleaved(s, rounds)
        # DuckDB alone, round after round (no build's writes in the background): its best
        alone = [median_time(s.duckdb, 1) for _ in range(rounds)]
    with tempfile.TemporaryDirectory() as tmp:
        spans = breakdown(Path(tmp), max(3, rounds // 2), rows)
    t = {name: best_and_median(v) for name, v in samples.items()}
    base_best = min(t["duckdb"][0], min(alone))
    base_med = t["duckdb"][1]
    shape = f"{rows / 1e6:g}M rows x 5 cols, 4 files"
    out: list[Row] = []
    for name, label in (("waited", "status waits"), ("polled", "status polled")):
        best, med = t[name]
        out.append(
            (
                f"cold scan@v1 {shape}, Flight client, {label}, best",
                f"{best * 1e3:.0f} ms",
                f"{base_best * 1e3:.0f} ms (DuckDB warm, parquet -> Arrow)",
                f"{best / base_best:.2f}x",
                "<= 1.3x" if name == "waited" else "(before the wait)",
            )
        )
        out.append(
            (
                "  median of the rounds (interleaved)",
                f"{med * 1e3:.0f} ms",
                f"{base_med * 1e3:.0f} ms",
                f"{med / base_med:.2f}x",
                "",
            )
        )
    for name, label in (("streamed", "stream of 122880-row batches"), ("written", "+ IPC file")):
        best, med = t[name]
        out.append(
            (
                f"  DuckDB alone: {label}, best / median",
                f"{best * 1e3:.0f} / {med * 1e3:.0f} ms",
                "DuckDB warm, into a table",
                f"{best / base_best:.2f}x / {med / base_med:.2f}x",
                "(the build without Quiver)",
            )
        )
    for step, ms in spans.items():
        out.append((f"  breakdown (in-process server, median): {step}", f"{ms:.1f} ms", "", "", ""))
    return out


def node_figures(rounds: int = 7, rows: int = 2_000_000) -> list[Row]:
    """Issue 20: every endpoint of a partitioned artifact read at once from 2 data nodes
    pinned to separate cores vs from 1; plain, and with zstd streams (the nodes' work grows)."""
    from bench.bench_nodes import PARTS, measure, nodes_setup

    out: list[Row] = []
    for compression in ("none", "zstd"):
        with tempfile.TemporaryDirectory() as tmp, nodes_setup(Path(tmp), rows, compression) as s:
            measure(s, 1)  # warm: page cache, connections, both nodes
            m = measure(s, rounds)
        mb = s.bytes / 1e6
        (one_best, one_med), (two_best, two_med) = (best_and_median(m[w]) for w in ("one", "two"))
        cpu = {k: statistics.median(v) * 1e3 for k, v in m.items() if k.endswith("_cpu")}
        shape = f"{rows / 1e6:g}M rows, {PARTS} parts, {mb:.0f} MB, IPC {compression}"
        out += [
            (
                f"parallel read, {shape}: 2 nodes vs 1, median",
                f"{mb / two_med:.0f} MB/s",
                f"{mb / one_med:.0f} MB/s (1 node, same client)",
                f"{one_med / two_med:.2f}x",
                ">= 1.5x",
            ),
            (
                "  best of the rounds",
                f"{two_best * 1e3:.0f} ms",
                f"{one_best * 1e3:.0f} ms",
                f"{one_best / two_best:.2f}x",
                "",
            ),
            (
                "  CPU per read, median: client + nodes",
                f"{cpu['two_client_cpu']:.0f} + {cpu['two_nodes_cpu']:.0f} ms",
                f"{cpu['one_client_cpu']:.0f} + {cpu['one_nodes_cpu']:.0f} ms",
                "",
                "(2 cores in all)",
            ),
        ]
    return out


def node_url_figures(rounds: int = 9, rows: int = 1_000_000) -> list[Row]:
    """Issue 20: polars reads a Parquet rendition by URL through a REST front end in front of
    a data node (the node reads the bytes from the part storage) vs one in front of the head."""
    import polars as pl

    from bench.bench_node_urls import node_urls_setup
    from bench.bench_urls import interleaved

    with tempfile.TemporaryDirectory() as tmp, node_urls_setup(Path(tmp), rows) as s:
        sources = {"node": s.via_node, "head": s.via_head, "disk": str(s.local)}
        reads = {name: (lambda src=src: pl.read_parquet(src)) for name, src in sources.items()}
        interleaved(reads, 1)  # warm all
        sent = s.node_bytes()
        t = interleaved(reads, rounds)
        per_read = (s.node_bytes() - sent) / rounds
        size = s.local.stat().st_size
    (node_best, node_med), (head_best, head_med) = t["node"], t["head"]
    disk_best, disk_med = t["disk"]
    shape = f"{rows / 1e6:g}M rows x 5 cols, {size / 1e6:.1f} MB"
    return [
        (
            f"polars read_parquet(url) via a data node, {shape}, median",
            f"{node_med * 1e3:.0f} ms",
            f"{head_med * 1e3:.0f} ms (quiver rest in front of the head)",
            f"{node_med / head_med:.2f}x",
            "",
        ),
        (
            "  best of the rounds",
            f"{node_best * 1e3:.0f} ms",
            f"{head_best * 1e3:.0f} ms",
            f"{node_best / head_best:.2f}x",
            "",
        ),
        (
            "  via the node vs local disk, median / best",
            f"{node_med * 1e3:.0f} / {node_best * 1e3:.0f} ms",
            f"{disk_med * 1e3:.0f} / {disk_best * 1e3:.0f} ms",
            f"{node_med / disk_med:.2f}x / {node_best / disk_best:.2f}x",
            "",
        ),
        (
            "  bytes the node sent per read",
            f"{per_read / 1e6:.1f} MB",
            f"{size / 1e6:.1f} MB (the file)",
            f"{per_read / size:.2f}x",
            "all from the node",
        ),
        (
            "  first request via the node: written, copied, sent",
            f"{s.first_s * 1e3:.0f} ms",
            "",
            "",
            "once per version",
        ),
    ]


def daskscan_figures(rounds: int = 3, rows: int = 10_000_000, one_file: bool = False) -> list[Row]:
    """Cold scan@v1 of 10M rows built on Dask: 2 pinned workers vs 1 (bench_daskscan);
    ``one_file``: the rows in one file, cut into row-group ranges."""
    from bench.bench_daskscan import FILES, measure

    t = measure(rounds, rows, one_file=one_file)
    if one_file:
        two = statistics.median(t["two_parts"])
        shape = f"{rows / 1e6:g}M rows x 5 cols, 1 append ({t['files']} files) -> {two:g} parts"
    else:
        shape = f"{rows / 1e6:g}M rows x 5 cols, {FILES} files -> {FILES} parts"
    out: list[Row] = []
    for label, pick in (("median", statistics.median), ("best", min)):
        one, two = pick(t["one"]), pick(t["two"])
        out.append(
            (
                f"cold scan@v1 {shape}, 2 pinned Dask workers, {label}" if label == "median"
                else "  best of the rounds",
                f"{two:.2f} s",
                f"{one:.2f} s (1 pinned Dask worker)",
                f"{one / two:.2f}x faster",
                ">= 1.6x" if label == "median" else "",
            )
        )  # fmt: skip
    for name, label in (("one", "1 worker"), ("two", "2 workers")):
        walls, busy = t[name], t[f"{name}_busy"]
        slowest = statistics.median(max(b.values()) for b in busy)
        total = statistics.median(sum(b.values()) for b in busy)
        out.append(
            (
                f"  {label}: compute on the busiest worker / all workers, median",
                f"{slowest:.2f} / {total:.2f} s",
                f"wall {statistics.median(walls):.2f} s",
                f"{statistics.median(walls) - slowest:.2f} s",
                "(head: plan, schedule, publish)",
            )
        )
    return out


GROUPS: dict[str, Callable[[], list[Row]]] = {
    "core": core_figures,
    "coldscan": coldscan_figures,
    "flight": flight_figures,
    "flight_sql": flight_sql_figures,
    "notebooks": notebook_figures,
    "execution": execution_figures,
    "rest": rest_figures,
    "data": data_figures,
    "web": web_figures,
    "workers": worker_figures,
    "ai": ai_figures,
    "env": env_figures,
    "urls": url_figures,
    "split": split_figures,
    "nodes": node_figures,
    "nodeurls": node_url_figures,
    "daskscan": daskscan_figures,
    "daskscan1": lambda: daskscan_figures(one_file=True),
}


def main(argv: list[str]) -> None:
    wanted = argv or list(GROUPS)
    print(f"{'figure':58} {'ours':>10}  {'baseline':44} {'ratio':>12}  target")
    for name in wanted:
        for figure, ours, base, ratio, target in GROUPS[name]():
            print(f"{figure:58} {ours:>10}  {base:44} {ratio:>12}  {target}", flush=True)
    print(f"(peak RSS of this script: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} kB)")


if __name__ == "__main__":
    main(sys.argv[1:])
