"""Renditions served by a data node (issue 20: "a rendition URL can point at any node").

Real processes on loopback: moto's S3 server as the part storage, a head
(``quiver flight``), a data node (``quiver flight --join``) and a REST front end in its
own process pointed at the node (``quiver rest --flight grpc://<node>``). The artifacts
are put into the head's store through the store API before it starts. What the node
served is read from its own ``node-status`` action: the bytes came from the node.
"""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.flight as fl
import pytest

from catalog import ArtifactInfo, ArtifactStore
from tests.fixtures_s3 import S3_CREDENTIALS, make_bucket
from tests.processes import start_quiver, stop

BUCKET = "lake"
PREFIX = "quiver-parts"


def table(start: int, n: int) -> pa.Table:
    ids = pa.array(np.arange(start, start + n, dtype=np.int64))
    names = pa.array([f"row-{i}" for i in range(start, start + n)], pa.string())
    return pa.table({"id": ids, "x": pa.compute.multiply(ids, 0.25), "name": names})


def one_file(store: ArtifactStore) -> tuple[ArtifactInfo, pa.Table]:
    data = table(0, 300_000)
    reader = pa.RecordBatchReader.from_batches(data.schema, data.to_batches(50_000))
    return store.put(reader, provenance="node-renditions-one"), data


def partitioned(store: ArtifactStore) -> tuple[ArtifactInfo, pa.Table]:
    build = store.begin_build(provenance="node-parts", executor="t", params={}, inputs=[])
    written, start = [], 0
    for i, n in enumerate([40_000, 25_000, 35_000]):
        part = table(start, n)
        reader = pa.RecordBatchReader.from_batches(part.schema, part.to_batches(10_000))
        written.append(store.parts.write(f"{build.part_prefix}part-{i:05d}.arrow", reader))
        start += n
    return build.publish_parts(table(0, 0).schema, written), table(0, start)


@dataclass
class Plane:
    head: str
    node: str
    rest: str
    s3: str
    one: ArtifactInfo
    one_table: pa.Table
    parts: ArtifactInfo
    parts_table: pa.Table
    head_proc: subprocess.Popen

    def url(self, info: ArtifactInfo, suffix: str) -> str:
        return f"{self.rest}/v1/artifacts/{info.artifact_id}/v/{info.version}/{suffix}"

    def served(self) -> dict[str, int]:
        with fl.connect(self.node) as client:
            answer = next(iter(client.do_action(fl.Action("node-status", b"{}"))))
        return json.loads(answer.body.to_pybytes())

    def objects(self) -> dict[str, int]:
        client = boto3.client("s3", endpoint_url=self.s3, **_boto_credentials())
        listed = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/renditions/")
        return {o["Key"]: o["Size"] for o in listed.get("Contents", [])}


def _boto_credentials() -> dict[str, str]:
    return {
        "region_name": "us-east-1",
        "aws_access_key_id": S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }


@pytest.fixture
def plane(tmp_path: Path, s3: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Plane]:
    for name, value in S3_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    make_bucket(s3, BUCKET)
    host = s3.removeprefix("http://")
    storage = f"s3://{BUCKET}/{PREFIX}?endpoint_override={host}&scheme=http&region=us-east-1"
    monkeypatch.setenv("QUIVER_PART_STORAGE", storage)
    monkeypatch.setenv("QUIVER_NODE_HEARTBEAT_S", "0.5")
    data = tmp_path / "head"
    with ArtifactStore(data, part_storage=storage) as store:
        one, one_table = one_file(store)
        parts, parts_table = partitioned(store)
    procs: list[subprocess.Popen] = []
    try:
        head, seen = start_quiver(
            ["flight", "--data-dir", str(data), "--flight-port", "0"], tmp_path / "head.err"
        )
        procs.append(head)
        location = seen["flight"]
        node, seen = start_quiver(
            ["flight", "--join", location, "--flight-port", "0"], tmp_path / "node.err"
        )
        procs.append(node)
        node_location = seen["flight"]
        rest_dir = tmp_path / "rest"
        rest, seen = start_quiver(
            ["rest", "--flight", node_location, "--rest-port", "0", "--data-dir", str(rest_dir)],
            tmp_path / "rest.err",
        )
        procs.append(rest)
        yield Plane(
            location, node_location, seen["rest"], s3, one, one_table, parts, parts_table, head
        )
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                stop(proc)


def test_polars_reads_the_parquet_url_of_a_node_and_the_node_sent_the_bytes(
    plane: Plane,
) -> None:
    before = plane.served()
    assert before["rendition_bytes"] == 0 and before["part_storage"].startswith("s3://")
    got = pl.read_parquet(plane.url(plane.one, "data.parquet"))
    assert got.equals(pl.from_arrow(plane.one_table))
    size = int(httpx.head(plane.url(plane.one, "data.parquet")).headers["content-length"])
    after = plane.served()
    assert after["rendition_reads"] > 0
    assert after["rendition_bytes"] >= size  # the whole file went out of the node
    key = next(k for k in plane.objects() if k.endswith("data.parquet"))
    assert f"/renditions/{plane.one.artifact_id}/v{plane.one.version}-" in f"/{key}"
    assert plane.objects()[key] == size
    # A partitioned artifact's renditions: its parts joined once, by the head.
    parts = pl.read_parquet(plane.url(plane.parts, "data.parquet"))
    assert parts.equals(pl.from_arrow(plane.parts_table))
    arrow = httpx.get(plane.url(plane.parts, "data.arrow"))
    assert pa.ipc.open_file(io.BytesIO(arrow.content)).read_all().equals(plane.parts_table)


def test_ranges_etags_and_the_stored_stream_through_a_node(plane: Plane) -> None:
    url = plane.url(plane.one, "data.arrow")
    head = httpx.head(url)
    assert head.status_code == 200 and head.headers["accept-ranges"] == "bytes"
    size, etag = int(head.headers["content-length"]), head.headers["etag"]
    assert "immutable" in head.headers["cache-control"]
    whole = httpx.get(url)
    assert whole.status_code == 200 and len(whole.content) == size
    assert whole.headers["etag"] == etag
    assert pa.ipc.open_file(io.BytesIO(whole.content)).read_all().equals(plane.one_table)
    ranged = httpx.get(url, headers={"Range": "bytes=100-2099999"})
    assert ranged.status_code == 206
    assert ranged.headers["content-range"] == f"bytes 100-2099999/{size}"
    assert ranged.content == whole.content[100:2_100_000]
    assert httpx.get(url, headers={"Range": "bytes=-10"}).content == whole.content[-10:]
    assert httpx.get(url, headers={"If-None-Match": etag}).status_code == 304
    refused = httpx.get(url, headers={"Range": f"bytes={size}-"})
    assert refused.status_code == 416 and refused.headers["content-range"] == f"bytes */{size}"
    assert refused.json()["detail"]["size"] == size
    # The same ETag through the head's own renditions: the node serves the head's bytes.
    with fl.connect(plane.head) as client:
        body = {"artifact_id": plane.one.artifact_id, "version": plane.one.version}
        raw = json.dumps({**body, "format": "arrow-file"}).encode()
        answer = next(iter(client.do_action(fl.Action("rendition", raw))))
    assert json.loads(answer.body.to_pybytes())["etag"] == etag
    # GET …/data: the IPC stream stored inside that file, forwarded from the node.
    sent = plane.served()["rendition_bytes"]
    stream = httpx.get(plane.url(plane.one, "data"))
    assert stream.status_code == 200
    assert pa.ipc.open_stream(stream.content).read_all().equals(plane.one_table)
    assert plane.served()["rendition_bytes"] - sent == len(stream.content)
    # The other routes reach the head through the node.
    status = httpx.get(f"{plane.rest}/v1/artifacts/{plane.one.artifact_id}/v/1")
    assert status.status_code == 200, status.text
    csv = httpx.get(plane.url(plane.one, "data"), params={"format": "csv"})  # a DoGet, passed on
    assert csv.status_code == 200 and csv.text.count("\n") == plane.one_table.num_rows + 1
    descriptor = fl.FlightDescriptor.for_path("artifact", plane.parts.artifact_id, "1")
    with fl.connect(plane.node) as node, fl.connect(plane.head) as head:
        assert (
            node.get_flight_info(descriptor).endpoints == head.get_flight_info(descriptor).endpoints
        )
        writer, _ = node.do_put(fl.FlightDescriptor.for_command(b"{}"), plane.one_table.schema)
        with pytest.raises(fl.FlightError, match="put to its head"):
            writer.write_table(plane.one_table.slice(0, 10))
            writer.close()


def test_a_damaged_copy_is_copied_again_and_a_deleted_version_is_404(plane: Plane) -> None:
    url = plane.url(plane.one, "data.parquet")
    first = httpx.get(url)
    assert first.status_code == 200
    key = next(k for k in plane.objects() if k.endswith("data.parquet"))
    client = boto3.client("s3", endpoint_url=plane.s3, **_boto_credentials())
    client.put_object(Bucket=BUCKET, Key=key, Body=first.content[:1000])  # truncated
    again = httpx.get(url)  # the head sees the copy is not its rendition, copies it again
    assert again.status_code == 200 and again.content == first.content
    assert plane.objects()[key] == len(first.content)
    client.delete_object(Bucket=BUCKET, Key=key)  # gone: asked of the node itself
    raw = {"artifact_id": plane.one.artifact_id, "version": 1, "offset": 4, "length": 1000}
    with fl.connect(plane.node) as node:
        results = node.do_action(fl.Action("rendition-read", json.dumps(raw).encode()))
        assert b"".join(r.body.to_pybytes() for r in results) == first.content[4:1004]
    gone = httpx.delete(f"{plane.rest}/v1/artifacts/{plane.one.artifact_id}/v/1")
    assert gone.status_code == 200, gone.text
    for suffix in ("data.parquet", "data.arrow", "data"):
        missing = httpx.get(plane.url(plane.one, suffix))
        assert missing.status_code == 404, (suffix, missing.text)
        assert "detail" in missing.json()
    # Its copies went with it (an S3 "directory" marker of the artifact may stay).
    assert not [k for k in plane.objects() if f"{plane.one.artifact_id}/v" in k]


def test_a_part_storage_that_does_not_answer_is_a_clean_error(plane: Plane) -> None:
    url = plane.url(plane.parts, "data.parquet")
    assert httpx.get(url).status_code == 200
    client = boto3.client("s3", endpoint_url=plane.s3, **_boto_credentials())
    for listed in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=listed["Key"])
    client.delete_bucket(Bucket=BUCKET)  # the part storage is gone under everyone
    refused = httpx.get(url, headers={"Range": "bytes=0-99"})
    assert refused.status_code == 503, refused.text
    assert "part storage" in json.dumps(refused.json()["detail"])
    raw = {"artifact_id": plane.parts.artifact_id, "version": 1, "format": "parquet"}
    with fl.connect(plane.node) as flight, pytest.raises(fl.FlightUnavailableError) as caught:
        list(flight.do_action(fl.Action("rendition-read", json.dumps(raw).encode())))
    assert "part storage" in str(caught.value) and "Traceback" not in str(caught.value)


def test_a_node_whose_head_is_gone_says_so(plane: Plane) -> None:
    url = plane.url(plane.one, "data.parquet")
    assert httpx.get(url).status_code == 200
    stop(plane.head_proc)
    for where in (url, f"{plane.rest}/v1/artifacts/{plane.one.artifact_id}/v/1"):
        refused = httpx.get(where)
        assert refused.status_code == 503, refused.text
        assert "head of this data node" in json.dumps(refused.json()["detail"])


def test_the_store_keeps_shared_copies_with_their_version_and_recovery_sweeps_the_rest(
    tmp_path: Path, part_uri: str
) -> None:
    def stored(store: ArtifactStore, key: str) -> bytes | None:
        size = store.parts.size(key)
        if size is None:
            return None
        return b"".join(p.to_pybytes() for p in store.parts.read_range(key, 0, size, 1 << 20))

    with ArtifactStore(tmp_path / "store", part_storage=part_uri) as store:
        info, data = one_file(store)
        parquet = store.renditions.shared(info.artifact_id, info.version, "parquet")
        arrow = store.renditions.shared(info.artifact_id, info.version, "arrow-file")
        local = store.renditions.get(info.artifact_id, info.version, "parquet")
        assert (parquet.size, parquet.etag) == (local.size, local.etag)  # the same bytes
        assert stored(store, parquet.key) == local.path.read_bytes()
        assert arrow.stream is not None
        offset, length = arrow.stream
        copy = stored(store, arrow.key)
        assert copy is not None
        assert pa.ipc.open_stream(copy[offset : offset + length]).read_all().equals(data)
        store.delete(info.artifact_id, info.version)
        assert stored(store, parquet.key) is None and stored(store, arrow.key) is None
        again, _ = one_file(store)  # the same version number, another version
        kept = store.renditions.shared(again.artifact_id, again.version, "parquet")
        assert again.version == info.version and kept.key != parquet.key
        orphan = f"renditions/{again.artifact_id}/v7-abc/data.parquet"  # a head died after a copy
        store.parts.copy_in(orphan, store.path_of(again.artifact_id, again.version))
    with ArtifactStore(tmp_path / "store", part_storage=part_uri) as store:
        assert store.parts.size(orphan) is None
        assert store.parts.size(kept.key) == kept.size  # its version lives on
