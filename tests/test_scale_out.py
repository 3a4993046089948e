"""The whole scaled-out data plane at once (issue 20), as its users run it: real processes
on loopback — a head (``quiver flight`` with a Dask scheduler and an S3-compatible part
storage), two data nodes (``quiver flight --join``), a ``distributed.LocalCluster`` with two
worker processes and moto's S3 server — and a plain ``pyarrow.flight`` client that reads
every endpoint of the Dask-built artifact in parallel from the nodes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as fl
import pytest

from tests.fixtures_flight import act
from tests.fixtures_iceberg import ScanFn, wide_table
from tests.fixtures_s3 import S3_CREDENTIALS, make_bucket
from tests.polling import wait_until
from tests.processes import start_quiver, stop

distributed = pytest.importorskip("distributed")


@pytest.fixture
def plane(
    tmp_path: Path, s3: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, list[str]]]:
    """The head's location and the two data nodes' locations."""
    for name, value in S3_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    make_bucket(s3, "lake")
    host = s3.removeprefix("http://")
    monkeypatch.setenv(
        "QUIVER_PART_STORAGE",
        f"s3://lake/quiver-parts?endpoint_override={host}&scheme=http&region=us-east-1",
    )
    monkeypatch.setenv("QUIVER_PART_TARGET_BYTES", "1")  # one part per data file
    monkeypatch.setenv("QUIVER_NODE_HEARTBEAT_S", "0.2")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
        host="127.0.0.1", protocol="tcp",
    )  # fmt: skip
    monkeypatch.setenv("QUIVER_DASK_SCHEDULER", cluster.scheduler_address)
    procs: list[subprocess.Popen] = []
    try:
        head, seen = start_quiver(
            ["flight", "--data-dir", str(tmp_path / "head"), "--flight-port", "0"],
            tmp_path / "head.err",
        )
        procs.append(head)
        location = seen["flight"]
        nodes = []
        for n in range(2):
            node, seen = start_quiver(
                ["flight", "--join", location, "--flight-port", "0"], tmp_path / f"node{n}.err"
            )
            procs.append(node)
            nodes.append(seen["flight"])

        def live() -> list[str]:
            with fl.connect(location) as client:
                answer = next(iter(client.do_action(fl.Action("node-list", b"{}"))))
            return json.loads(answer.body.to_pybytes())["nodes"]

        assert wait_until(lambda: len(live()) == 2, timeout=30), live()
        yield location, nodes
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                stop(proc)
        cluster.close(timeout=30)


def _read(endpoint: fl.FlightEndpoint) -> pa.Table:
    with fl.connect(endpoint.locations[0].uri.decode()) as client:
        return client.do_get(endpoint.ticket).read_all()


def test_a_dask_built_artifact_on_s3_reads_in_parallel_from_two_data_nodes(
    plane: tuple[str, list[str]], tmp_path: Path, scan: ScanFn
) -> None:
    head, nodes = plane
    ref, deleted = wide_table(tmp_path / "wh", rows=6_000, files=6)
    request = {"inputs": [ref.uri], "transform": {"executor": "scan@v1", "params": {}}}
    with fl.connect(head) as client:
        started = act(client, "materialize", request)
        assert started["state"] in ("building", "ready"), started
        uri = started["artifact_uri"]
        status = act(client, "status", {"artifact_uri": uri, "wait_seconds": 60})
        assert status["state"] == "ready", status
        descriptor = fl.FlightDescriptor.for_path(
            "artifact", status["artifact_id"], str(status["version"])
        )
        info = client.get_flight_info(descriptor)
    assert info.ordered and len(info.endpoints) == 7  # one part per data file
    primaries = {e.locations[0].uri.decode() for e in info.endpoints}
    assert primaries == set(nodes)  # both nodes serve
    with ThreadPoolExecutor(len(info.endpoints)) as pool:
        parts = list(pool.map(_read, info.endpoints))
    got = pa.concat_tables(parts)
    want = scan(ref).read_all()  # DuckDB reading the same files, in this process
    assert info.total_records == got.num_rows == 6_500 - len(deleted)
    assert got.schema == want.schema and "kind" in got.schema.names  # renamed by field id
    assert got.sort_by("id").equals(want.sort_by("id"))
    assert not set(deleted) & set(got["id"].to_pylist())
