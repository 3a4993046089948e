"""The load campaign: concurrent clients against a real ``quiver serve``.

    flock /tmp/quiver-heavy.lock .venv/bin/python bench/load_rest.py [--clients 50] [--seconds 60]

Starts ``quiver serve`` (its own process, over a demo warehouse), warms it up, then
runs ``--clients`` clients for ``--seconds``. Most clients mix materialize cache hits
(REST), Flight DoGets, REST data reads and notebook cell edits; ``--runners`` of them
(5 by default) own a notebook each and edit and run its cell in a loop. It prints,
per operation, the count, errors and p50/p99 latency, and the server's RSS after the
warm-up and at the end. Exit code 0 when no operation failed. ``make test`` runs a
tiny form (``tests/test_load_rest.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pyarrow.flight as fl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catalog import write_demo_warehouse

ROWS = 20_000


@dataclass
class Server:
    rest: str
    flight: str
    process: subprocess.Popen[str]


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    async def timed(self, op: str, call: Callable[[], Awaitable[None]]) -> None:
        started = time.perf_counter()
        try:
            await call()
        except Exception as exc:
            self.errors[op].append(f"{type(exc).__name__}: {exc}"[:300])
            return
        self.latencies[op].append(time.perf_counter() - started)


@contextlib.contextmanager
def quiver_serve(root: Path, **env: str) -> Iterator[Server]:
    """``quiver serve`` on ephemeral ports; stopped (SIGTERM, then waited for) on exit."""
    command = [
        str(Path(sys.executable).parent / "quiver"),
        "serve",
        "--data-dir",
        str(root / "data"),
        "--notebook-root",
        str(root / "notebooks"),
        "--flight-port",
        "0",
        "--rest-port",
        "0",
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "QUIVER_LOG_LEVEL": "warning", **env},
    )
    drain: threading.Thread | None = None
    try:
        seen: list[str] = []
        found: dict[str, str] = {}
        deadline = time.monotonic() + 60
        assert process.stdout is not None
        while "rest" not in found or "flight" not in found:
            line = process.stdout.readline()
            if not line or time.monotonic() > deadline:
                raise RuntimeError("quiver serve did not start: " + "".join(seen))
            seen.append(line)
            match = re.match(r"(rest|flight): (\S+)", line)
            if match:
                found[match[1]] = match[2]
        drain = _drain(process)  # keep the pipe from filling; show the server's errors
        yield Server(found["rest"], found["flight"], process)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if drain is not None:
            drain.join(10)
        assert process.stdout is not None
        process.stdout.close()


def _drain(process: subprocess.Popen[str]) -> threading.Thread:
    def run() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if "Traceback" in line or "ERROR" in line:
                print("server:", line.rstrip(), file=sys.stderr)

    thread = threading.Thread(target=run, daemon=True, name="load-server-output")
    thread.start()
    return thread


@dataclass
class Setup:
    materialize: dict[str, Any]
    data_url: str
    ticket: bytes
    edit_cells: list[tuple[str, str]]
    """(session, cell) pairs clients edit (notebooks nobody runs)."""
    run_cells: list[tuple[str, str]]
    """(session, cell): one notebook per runner, each edited and run by its runner alone."""


def prepare(http: httpx.Client, flight_uri: str, warehouse: str, runners: int) -> Setup:
    """An artifact to hit and read, notebooks to edit and run; every cell run once."""
    body = {"inputs": [warehouse], "transform": {"executor": "scan@v1"}}
    built = http.post("/v1/materialize", json=body).json()
    assert http.get(built["stream_url"]).status_code == 200
    hit = http.post("/v1/materialize", json=body).json()
    assert hit["hit"], hit
    aid, version = hit["artifact_uri"].removeprefix("strata://artifact/").split("@v=")
    with fl.connect(flight_uri) as client:
        info = client.get_flight_info(fl.FlightDescriptor.for_path("artifact", aid, version))
        ticket = info.endpoints[0].ticket.ticket
    edit_cells = []
    for n in range(3):
        nb = http.post("/v1/notebooks/create", json={"parent_path": "", "name": f"edit{n}"})
        sid = nb.json()["session_id"]
        for _ in range(8):
            cell = http.post(f"/v1/notebooks/{sid}/cells", json={}).json()
            edit_cells.append((sid, cell["id"]))
    run_cells = []
    for n in range(runners):
        nb = http.post("/v1/notebooks/create", json={"parent_path": "", "name": f"run{n}"})
        sid = nb.json()["session_id"]
        cell = http.post(f"/v1/notebooks/{sid}/cells", json={}).json()["id"]
        http.put(f"/v1/notebooks/{sid}/cells/{cell}", json={"source": "x = 1"})
        ran = http.post(f"/v1/notebooks/{sid}/cells/{cell}/execute", timeout=120)
        assert ran.status_code == 200 and ran.json()["status"] == "ready", ran.text
        run_cells.append((sid, cell))
    data_url = f"/v1/artifacts/{aid}/v/{version}/data"
    return Setup(body, data_url, ticket, edit_cells, run_cells)


async def client_loop(
    http: httpx.AsyncClient,
    flight: fl.FlightClient,
    setup: Setup,
    tally: Tally,
    until: float,
    rnd: random.Random,
    run_cell: tuple[str, str] | None,
) -> None:
    async def ok(response: Awaitable[httpx.Response]) -> httpx.Response:
        answer = await response
        if answer.status_code != 200:
            raise RuntimeError(f"{answer.status_code} {answer.text[:200]}")
        return answer

    async def materialize() -> None:
        answer = await ok(http.post("/v1/materialize", json=setup.materialize))
        if not answer.json()["hit"]:
            raise RuntimeError("a materialize of a ready artifact was not a hit")

    async def rest_data() -> None:
        await ok(http.get(setup.data_url))

    def doget() -> None:
        flight.do_get(fl.Ticket(setup.ticket)).read_all()

    async def flight_get() -> None:
        await asyncio.to_thread(doget)

    async def edit(cell: tuple[str, str]) -> None:
        source = f"v = {rnd.randrange(10**6)}"
        await ok(http.put(f"/v1/notebooks/{cell[0]}/cells/{cell[1]}", json={"source": source}))

    async def run(cell: tuple[str, str]) -> None:
        await edit(cell)
        url = f"/v1/notebooks/{cell[0]}/cells/{cell[1]}/execute"
        answer = await ok(http.post(url, timeout=120))
        if answer.json()["status"] != "ready":
            raise RuntimeError(f"cell run ended {answer.json()['status']}")

    mix: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("materialize hit", materialize),
        ("materialize hit", materialize),
        ("flight doget", flight_get),
        ("rest data", rest_data),
        ("notebook edit", lambda: edit(rnd.choice(setup.edit_cells))),
    ]
    while time.monotonic() < until:
        if run_cell is not None:
            await tally.timed("cell run", lambda: run(run_cell))
            continue
        op, call = rnd.choice(mix)
        await tally.timed(op, call)


async def run_clients(
    rest: str, flight_uri: str, setup: Setup, clients: int, seconds: float, seed: int
) -> Tally:
    tally = Tally()
    until = time.monotonic() + seconds
    # An idle connection is dropped well before uvicorn's 5 s keep-alive timeout: reusing
    # one the server is closing at that moment is the client's race, not a server error.
    limits = httpx.Limits(
        max_connections=clients, max_keepalive_connections=clients, keepalive_expiry=1.0
    )
    async with httpx.AsyncClient(base_url=rest, timeout=120, limits=limits) as http:
        flights = [fl.connect(flight_uri) for _ in range(min(clients, 8))]
        try:
            await asyncio.gather(
                *(
                    client_loop(
                        http,
                        flights[i % len(flights)],
                        setup,
                        tally,
                        until,
                        random.Random(seed + i),
                        setup.run_cells[i] if i < len(setup.run_cells) else None,
                    )
                    for i in range(clients)
                )
            )
        finally:
            for client in flights:
                client.close()
    return tally


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Result:
    tally: Tally
    rss_start_mib: float
    rss_end_mib: float
    seconds: float

    @property
    def failures(self) -> int:
        return sum(len(v) for v in self.tally.errors.values())

    def report(self) -> str:
        lines = [f"{'operation':<18}{'count':>8}{'errors':>8}{'p50 ms':>10}{'p99 ms':>10}"]
        ops = sorted(set(self.tally.latencies) | set(self.tally.errors))
        for op in ops:
            done = self.tally.latencies.get(op, [])
            p50 = statistics.median(done) * 1000 if done else float("nan")
            p99 = percentile(done, 0.99) * 1000 if done else float("nan")
            errors = len(self.tally.errors.get(op, []))
            lines.append(f"{op:<18}{len(done):>8}{errors:>8}{p50:>10.1f}{p99:>10.1f}")
        lines.append(
            f"server RSS: {self.rss_start_mib:.0f} MiB after warm-up, "
            f"{self.rss_end_mib:.0f} MiB at the end ({self.seconds:.0f} s)"
        )
        for op, errors in self.tally.errors.items():
            lines += [f"  {op}: {e}" for e in errors[:3]]
        return "\n".join(lines)


def campaign(root: Path, *, clients: int, seconds: float, runners: int, seed: int = 0) -> Result:
    """The whole run: serve, prepare, warm up, load; the tally and the server's RSS."""
    warehouse = write_demo_warehouse(root / "warehouse", rows=ROWS, files=2)
    with quiver_serve(root) as server:
        with httpx.Client(base_url=server.rest, timeout=120) as http:
            setup = prepare(http, server.flight, warehouse.uri, min(runners, clients))
        memory = psutil.Process(server.process.pid)
        warm = min(5.0, seconds / 4)
        asyncio.run(run_clients(server.rest, server.flight, setup, clients, warm, seed))
        start = _rss_mib(memory)
        tally = asyncio.run(run_clients(server.rest, server.flight, setup, clients, seconds, seed))
        end = _rss_mib(memory)
    return Result(tally, start, end, seconds)


def _rss_mib(process: psutil.Process) -> float:
    """The server's RSS with its children (notebook kernels), in MiB."""
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return total / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--runners", type=int, default=5, help="clients that run cells")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="quiver-load-") as tmp:
        result = campaign(
            Path(tmp), clients=args.clients, seconds=args.seconds, runners=args.runners,
            seed=args.seed,
        )  # fmt: skip
    print(result.report())
    if args.json:
        figures = {
            op: {
                "count": len(v),
                "p50_ms": statistics.median(v) * 1000,
                "p99_ms": percentile(v, 0.99) * 1000,
            }
            for op, v in result.tally.latencies.items()
        }
        print(json.dumps({"ops": figures, "rss_mib": [result.rss_start_mib, result.rss_end_mib]}))
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
