"""Parallel read of a partitioned artifact from data nodes (issue 20): 2 nodes vs 1.

    .venv/bin/python bench/side_by_side.py nodes

A head (``quiver flight``) and two data nodes (``quiver flight --join``), each node pinned
to its own core with ``taskset``; the artifact (``PARTS`` parts, written through the store
API as a Dask build writes them) is read by a plain ``pyarrow.flight`` client in this
process, every endpoint at once on its own thread and connection, batches counted and
dropped (streamed, never collected). One node: every endpoint is read from node 0. Two
nodes: each endpoint from its primary location, as the head's FlightInfo spreads them.
Rounds interleave the two, so both see the same machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.flight as fl

from bench.bench_urls import table
from catalog import ArtifactStore
from tests.polling import wait_until
from tests.processes import start_quiver, stop

PARTS = 4


@dataclass
class Nodes:
    head: str
    nodes: list[str]
    info: fl.FlightInfo
    rows: int
    bytes: int
    pids: list[int]  # the data nodes'


def write_partitioned(data_dir: Path, rows: int, parts: int = PARTS) -> tuple[str, int]:
    """A ``rows``-row artifact in ``parts`` parts; its id and version."""
    data = table(rows)
    with ArtifactStore(data_dir) as store:
        build = store.begin_build(provenance="bench-nodes", executor="t", params={}, inputs=[])
        written = []
        step = -(-rows // parts)
        for i in range(parts):
            piece = data.slice(i * step, step)
            reader = pa.RecordBatchReader.from_batches(data.schema, piece.to_batches(122_880))
            written.append(store.parts.write(f"{build.part_prefix}part-{i:05d}.arrow", reader))
        info = build.publish_parts(data.schema, written)
    return info.artifact_id, info.version


def _live(head: str) -> list[str]:
    with fl.connect(head) as client:
        result = next(iter(client.do_action(fl.Action("node-list", b"{}"))))
    return json.loads(result.body.to_pybytes())["nodes"]


@contextlib.contextmanager
def nodes_setup(tmp: Path, rows: int, compression: str = "none") -> Iterator[Nodes]:
    """The head and two data nodes (cores 0 and 1; their DoGet streams compressed with
    ``compression``), the artifact written; stopped after."""
    artifact_id, version = write_partitioned(tmp / "head", rows)
    cores = sorted(os.sched_getaffinity(0))
    procs = []
    try:
        args = ["flight", "--data-dir", str(tmp / "head"), "--flight-port", "0"]
        head, seen = start_quiver(args, tmp / "head.err")
        procs.append(head)
        location = seen["flight"]
        nodes, pids = [], []
        for n in range(2):
            pin = ["taskset", "-c", str(cores[n % len(cores)])]
            join = ["flight", "--join", location, "--flight-port", "0"]
            env = {"QUIVER_IPC_COMPRESSION": compression}
            node, seen = start_quiver(join, tmp / f"node{n}.err", prefix=pin, env=env)
            procs.append(node)
            nodes.append(seen["flight"])
            pids.append(node.pid)
            # Joined in this order, so node n is the primary of part n (mod 2).
            assert wait_until(lambda k=n: len(_live(location)) == k + 1, timeout=30)
        with fl.connect(location) as client:
            info = client.get_flight_info(
                fl.FlightDescriptor.for_path("artifact", artifact_id, str(version))
            )
        assert len(info.endpoints) == PARTS
        yield Nodes(location, nodes, info, info.total_records, info.total_bytes, pids)
    finally:
        for proc in reversed(procs):
            stop(proc)


def _drain(location: str, ticket: fl.Ticket) -> int:
    with fl.connect(location) as client:
        reader = client.do_get(ticket)
        rows = 0
        while True:
            try:
                rows += reader.read_chunk().data.num_rows
            except StopIteration:
                return rows


def read_all(s: Nodes, nodes: int) -> float:
    """Seconds to read every endpoint at once: from node 0 alone, or from each primary."""
    jobs = [
        (s.nodes[0] if nodes == 1 else e.locations[0].uri.decode(), e.ticket)
        for e in s.info.endpoints
    ]
    start = time.perf_counter()
    with ThreadPoolExecutor(len(jobs)) as pool:
        got = sum(pool.map(lambda job: _drain(*job), jobs))
    elapsed = time.perf_counter() - start
    assert got == s.rows, (got, s.rows)
    return elapsed


def _cpu(pid: int | None = None) -> float:
    """CPU seconds (user + system) of a process so far; this one by default."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def measure(s: Nodes, rounds: int) -> dict[str, list[float]]:
    """Interleaved rounds of both ways of reading: their seconds, and the CPU seconds per
    round of the client (this process) and of the nodes, for each way."""
    out: dict[str, list[float]] = {}
    for _ in range(rounds):
        for way, nodes in (("one", 1), ("two", 2)):
            before = [_cpu(), *(_cpu(pid) for pid in s.pids)]
            out.setdefault(way, []).append(read_all(s, nodes))
            after = [_cpu(), *(_cpu(pid) for pid in s.pids)]
            out.setdefault(f"{way}_client_cpu", []).append(after[0] - before[0])
            out.setdefault(f"{way}_nodes_cpu", []).append(sum(after[1:]) - sum(before[1:]))
    return out
