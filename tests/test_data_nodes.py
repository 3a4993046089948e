"""Partitioned artifacts over Flight, and data nodes (issue 20): real processes on loopback.

A head (``quiver flight``) and two data nodes (``quiver flight --join``) as subprocesses,
a partitioned artifact written through the real store API before the head starts (the
Dask builder is another helper's; this is the same store call it makes), and plain
``pyarrow.flight`` clients: no Quiver library on the reading side.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.flight as fl
import pytest

from catalog import ArtifactInfo, ArtifactStore
from flight import DataNodeServer
from foundation import InvalidArgument, Settings, Unavailable
from tests.fixtures_flight import ServerFactory, self_signed_certificate
from tests.polling import wait_until
from tests.processes import QUIVER, start_quiver, stop

PART_ROWS = [3_000_000, 600_000, 900_000, 500_000]
"""Part 0 (48 MB) is much more than loopback socket buffers and gRPC's window hold, so a
node killed after the client's first batch is killed mid-stream."""


def rows(start: int, n: int) -> pa.Table:
    ids = pa.array(np.arange(start, start + n, dtype=np.int64))
    return pa.table({"id": ids, "x": pa.compute.multiply(ids, 0.5)})


def partitioned(store: ArtifactStore) -> tuple[ArtifactInfo, pa.Table]:
    build = store.begin_build(provenance="parts-test", executor="t", params={}, inputs=[])
    written, start = [], 0
    for i, n in enumerate(PART_ROWS):
        table = rows(start, n)
        key = f"{build.part_prefix}part-{i:05d}.arrow"
        written.append(
            store.parts.write(
                key, pa.RecordBatchReader.from_batches(table.schema, table.to_batches(200_000))
            )
        )
        start += n
    info = build.publish_parts(table.schema, written)
    return info, rows(0, start)


@dataclass
class Cluster:
    head: str
    info: ArtifactInfo
    expected: pa.Table
    nodes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def flight_info(self) -> fl.FlightInfo:
        descriptor = fl.FlightDescriptor.for_path(
            "artifact", self.info.artifact_id, str(self.info.version)
        )
        with fl.connect(self.head) as client:
            return client.get_flight_info(descriptor)

    def live(self) -> list[str]:
        with fl.connect(self.head) as client:
            result = next(iter(client.do_action(fl.Action("node-list", b"{}"))))
        return json.loads(result.body.to_pybytes())["nodes"]


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    # Dropped after 3 s without a heartbeat: quick for the test of a dead node, and far
    # beyond what a busy machine delays a live node's heartbeat thread by.
    monkeypatch.setenv("QUIVER_NODE_HEARTBEAT_S", "1.0")
    data = tmp_path / "head"
    with ArtifactStore(data) as store:
        info, expected = partitioned(store)
    procs = []
    try:
        head, seen = start_quiver(
            ["flight", "--data-dir", str(data), "--flight-port", "0"], tmp_path / "head.err"
        )
        procs.append(head)
        c = Cluster(seen["flight"], info, expected)
        for n in range(2):
            node, seen = start_quiver(
                ["flight", "--join", c.head, "--flight-port", "0"], tmp_path / f"node{n}.err"
            )
            procs.append(node)
            c.nodes[seen["flight"]] = node
        assert wait_until(lambda: len(c.live()) == 2, timeout=30), c.live()
        yield c
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                stop(proc)
            else:  # killed by the test: collect it and close its pipe
                proc.communicate()


def read_endpoint(endpoint: fl.FlightEndpoint, location: str) -> pa.Table:
    with fl.connect(location) as client:
        return client.do_get(endpoint.ticket).read_all()


def test_every_endpoint_read_in_parallel_from_the_nodes_gives_the_artifact(
    cluster: Cluster,
) -> None:
    info = cluster.flight_info()
    assert info.total_records == sum(PART_ROWS) and info.ordered
    assert info.total_bytes == cluster.info.byte_size
    assert len(info.endpoints) == len(PART_ROWS)
    primaries = [e.locations[0].uri.decode() for e in info.endpoints]
    assert set(primaries) == set(cluster.nodes)  # spread over both nodes
    assert primaries[0] != primaries[1]
    assert all(len(e.locations) == 2 for e in info.endpoints)  # the other node: a fallback
    with ThreadPoolExecutor(len(info.endpoints)) as pool:
        tables = list(
            pool.map(lambda e: read_endpoint(e, e.locations[0].uri.decode()), info.endpoints)
        )
    assert [t.num_rows for t in tables] == PART_ROWS
    assert pa.concat_tables(tables).equals(cluster.expected)
    # The head serves a part ticket too, and the whole artifact as the parts in order.
    assert read_endpoint(info.endpoints[1], cluster.head).num_rows == PART_ROWS[1]
    with fl.connect(cluster.head) as client:
        ticket = fl.Ticket(
            json.dumps(
                {"artifact_id": cluster.info.artifact_id, "version": cluster.info.version}
            ).encode()
        )
        assert client.do_get(ticket).read_all().equals(cluster.expected)


def test_a_node_killed_mid_read_is_a_clean_error_and_the_fallback_serves(cluster: Cluster) -> None:
    endpoint = cluster.flight_info().endpoints[0]
    primary, fallback = (loc.uri.decode() for loc in endpoint.locations)
    with fl.connect(primary) as client:
        reader = client.do_get(endpoint.ticket)
        got = reader.read_chunk().data.num_rows
        victim = cluster.nodes[primary]
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)
        with pytest.raises(fl.FlightError):
            while True:
                got += reader.read_chunk().data.num_rows
    assert got < PART_ROWS[0]  # the stream broke: never ended as if it were whole
    again = read_endpoint(endpoint, fallback)
    assert again.equals(cluster.expected.slice(0, PART_ROWS[0]))
    # The dead node leaves the plans once its heartbeats stop.
    assert wait_until(lambda: cluster.live() == [fallback], timeout=30), cluster.live()
    fresh = cluster.flight_info()
    assert {loc.uri.decode() for e in fresh.endpoints for loc in e.locations} == {fallback}


def test_a_part_that_cannot_be_read_is_a_clean_error_never_wrong_data(
    cluster: Cluster, tmp_path: Path
) -> None:
    endpoint = cluster.flight_info().endpoints[2]
    node = endpoint.locations[0].uri.decode()
    ticket = json.loads(endpoint.ticket.ticket)
    wrong_size = fl.Ticket(json.dumps({**ticket, "bytes": ticket["bytes"] - 8}).encode())
    with (
        fl.connect(node) as client,
        pytest.raises(fl.FlightError, match=r"cannot be read: .* expected"),
    ):
        client.do_get(wrong_size).read_all()
    escaping = {**ticket, "key": f"{ticket['artifact_id']}/v1-x/../../../head/store.db"}
    with fl.connect(node) as client, pytest.raises(fl.FlightError, match="invalid part key"):
        client.do_get(fl.Ticket(json.dumps(escaping).encode())).read_all()
    (tmp_path / "head" / "parts" / ticket["key"]).unlink()
    for where in (node, cluster.head):
        with (
            fl.connect(where) as client,
            pytest.raises(fl.FlightError, match=r"cannot be read|part missing"),
        ):
            client.do_get(endpoint.ticket).read_all()


def test_a_node_whose_head_does_not_answer_says_so_and_exits(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = subprocess.run(
        [QUIVER, "flight", "--join", f"grpc://127.0.0.1:{port}", "--flight-port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("quiver: unavailable: cannot join the head at grpc://")


def _node_list(client: fl.FlightClient) -> list[str]:
    answer = next(iter(client.do_action(fl.Action("node-list", b"{}"))))
    return json.loads(answer.body.to_pybytes())["nodes"]


def test_a_data_node_joins_a_tls_head_with_the_root_certificates_it_is_given(
    make_flight_server: ServerFactory, tmp_path: Path
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    head = make_flight_server(tls_cert=cert, tls_key=key, node_heartbeat_s=0.2)
    assert head.location.startswith("grpc+tls://")
    store = head.core.store
    build = store.begin_build(provenance="tls", executor="t", params={}, inputs=[])
    expected = rows(0, 1000)
    written = [
        store.parts.write(
            f"{build.part_prefix}part-{i:05d}.arrow",
            pa.RecordBatchReader.from_batches(
                expected.schema, expected.slice(i * 500, 500).to_batches()
            ),
        )
        for i in range(2)
    ]
    info = build.publish_parts(expected.schema, written)
    plain = Settings(data_dir=tmp_path / "plain", flight_port=0, host="127.0.0.1")
    with pytest.raises(Unavailable, match="cannot join the head"):  # it trusts no such CA
        DataNodeServer(plain, head.location)
    missing = plain.model_copy(update={"tls_root_certs": tmp_path / "nothing.pem"})
    with pytest.raises(InvalidArgument, match="cannot read the TLS root certificates"):
        DataNodeServer(missing, head.location)
    trusting = plain.model_copy(update={"tls_root_certs": cert})
    node = DataNodeServer(trusting, head.location)  # joins over TLS
    joined = time.monotonic()
    roots = cert.read_bytes()
    try:
        with fl.connect(head.location, tls_root_certs=roots) as client:
            # still listed well past 3 heartbeat periods: its heartbeats reach the head
            assert wait_until(
                lambda: time.monotonic() - joined > 1.0 and bool(_node_list(client)), timeout=10
            )
            assert _node_list(client) == [node.location]
            descriptor = fl.FlightDescriptor.for_path("artifact", info.artifact_id, "1")
            endpoints = client.get_flight_info(descriptor).endpoints
        assert [loc.uri.decode() for e in endpoints for loc in e.locations] == [node.location] * 2
        with fl.connect(node.location) as reader:
            got = [reader.do_get(e.ticket).read_all() for e in endpoints]
        assert pa.concat_tables(got).equals(expected)
    finally:
        node.close()  # leaves over TLS: out of the list at once
    with fl.connect(head.location, tls_root_certs=roots) as client:
        assert _node_list(client) == []
