"""Reads by URL through a data node (issue 20): polars reading an artifact's Parquet
rendition from a REST front end in front of a data node vs one in front of the head.

    .venv/bin/python bench/side_by_side.py nodeurls

All real processes: a head (``quiver flight``, a directory part storage), a data node
(``quiver flight --join``), and two REST front ends (``quiver rest --flight``), one
pointed at the head, one at the node. The artifact is written through the store API
before the head starts; the first request through the node has the head copy its
rendition into the part storage. Rounds interleave the two front ends and the same
Parquet file read from local disk, so all see the same machine.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.flight as fl

from bench.bench_urls import table
from catalog import ArtifactStore
from tests.polling import wait_until
from tests.processes import start_quiver, stop


@dataclass
class NodeUrls:
    via_head: str
    via_node: str
    local: Path
    node: str
    first_s: float  # the first request through the node: written, copied, sent

    def node_bytes(self) -> int:
        with fl.connect(self.node) as client:
            answer = next(iter(client.do_action(fl.Action("node-status", b"{}"))))
        return int(json.loads(answer.body.to_pybytes())["rendition_bytes"])


@contextlib.contextmanager
def node_urls_setup(root: Path, rows: int) -> Iterator[NodeUrls]:
    data = table(rows)
    with ArtifactStore(root / "head") as store:
        reader = pa.RecordBatchReader.from_batches(data.schema, data.to_batches(122_880))
        info = store.put(reader, provenance="bench-node-urls")
    procs = []
    try:
        head, seen = start_quiver(
            ["flight", "--data-dir", str(root / "head"), "--flight-port", "0"], root / "head.err"
        )
        procs.append(head)
        head_at = seen["flight"]
        node, seen = start_quiver(
            ["flight", "--join", head_at, "--flight-port", "0"], root / "node.err"
        )
        procs.append(node)
        node_at = seen["flight"]
        urls = []
        for name, flight in (("rest-head", head_at), ("rest-node", node_at)):
            rest, seen = start_quiver(
                ["rest", "--flight", flight, "--rest-port", "0", "--data-dir", str(root / name)],
                root / f"{name}.err",
            )
            procs.append(rest)
            urls.append(
                f"{seen['rest']}/v1/artifacts/{info.artifact_id}/v/{info.version}/data.parquet"
            )
        t0 = time.perf_counter()
        whole = httpx.get(urls[1], timeout=120)  # through the node: written, copied, sent
        first = time.perf_counter() - t0
        assert whole.status_code == 200, whole.text
        local = root / "local.parquet"
        local.write_bytes(whole.content)
        assert wait_until(lambda: httpx.head(urls[0]).status_code == 200, timeout=30)
        yield NodeUrls(urls[0], urls[1], local, node_at, first)
    finally:
        for proc in reversed(procs):
            stop(proc)
