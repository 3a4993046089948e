"""Artifacts by URL: Parquet and Arrow IPC file renditions served like object-store files,
read by real polars and pyarrow through the real REST app on uvicorn (both transports)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.flight as fl
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from flight import connect
from foundation import InvalidArgument
from tests.fixtures_rest import Rest
from tests.polling import wait_until
from tests.servers import stalled_get

ROWS = 300_000


def table(rows: int = ROWS) -> pa.Table:
    rng = np.random.default_rng(7)
    return pa.table(
        {
            "id": np.arange(rows, dtype=np.int64),
            "x": rng.random(rows),
            "k": pa.array([f"k{i % 97}" for i in range(rows)]),
        }
    )


def put(rest: Rest, data: pa.Table) -> tuple[str, int]:
    assert rest.flight is not None
    with connect(rest.flight.location) as client:
        answer = client.put(data)
    return answer["artifact_id"], answer["version"]


def paths(aid: str, v: int) -> dict[str, str]:
    base = f"/v1/artifacts/{aid}/v/{v}"
    return {"parquet": f"{base}/data.parquet", "arrow": f"{base}/data.arrow"}


def test_polars_reads_parquet_and_arrow_file_by_url(rest: Rest) -> None:
    data = table()
    aid, v = put(rest, data)
    urls = {k: rest.url + p for k, p in paths(aid, v).items()}
    expected = pl.from_arrow(data)
    assert pl.read_parquet(urls["parquet"]).equals(expected)
    assert pl.read_parquet(rest.url + f"/v1/artifacts/{aid}/v/{v}/data?format=parquet").equals(
        expected
    )
    lazy = pl.scan_parquet(urls["parquet"]).select("x").filter(pl.col("x") > 0.5).collect()
    assert lazy.equals(expected.select("x").filter(pl.col("x") > 0.5))
    assert pl.read_ipc(urls["arrow"]).equals(expected)
    whole = rest.http.get(paths(aid, v)["arrow"])
    assert ipc.open_file(pa.BufferReader(whole.content)).read_all().equals(data)


def test_headers_ranges_and_conditional_requests(rest: Rest) -> None:
    data = table(20_000)
    aid, v = put(rest, data)
    url = paths(aid, v)["parquet"]
    head = rest.http.head(url)
    assert head.status_code == 200, head.text
    size = int(head.headers["content-length"])
    etag = head.headers["etag"]
    assert head.content == b""
    assert head.headers["accept-ranges"] == "bytes"
    assert "immutable" in head.headers["cache-control"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert head.headers["content-type"] == "application/vnd.apache.parquet"

    whole = rest.http.get(url)
    assert whole.status_code == 200 and len(whole.content) == size
    assert whole.headers["etag"] == etag
    assert pq.read_table(io.BytesIO(whole.content)).equals(data)
    assert rest.http.get(url).content == whole.content  # written once, the same bytes

    for spec, (start, end) in {
        "bytes=0-3": (0, 4),
        "bytes=-8": (size - 8, size),
        f"bytes={size - 5}-": (size - 5, size),
        f"bytes=10-{size + 100}": (10, size),
    }.items():
        part = rest.http.get(url, headers={"Range": spec})
        assert part.status_code == 206, (spec, part.text)
        assert part.content == whole.content[start:end], spec
        assert part.headers["content-range"] == f"bytes {start}-{end - 1}/{size}"
        assert int(part.headers["content-length"]) == end - start
    assert rest.http.get(url, headers={"Range": "bytes=0-3"}).content == b"PAR1"

    for bad in (f"bytes={size}-", "bytes=9-3", "bytes=-0", "bytes=x-y", "bytes=-"):
        refused = rest.http.get(url, headers={"Range": bad})
        assert refused.status_code == 416, (bad, refused.text)
        assert refused.headers["content-range"] == f"bytes */{size}"
        assert str(size) in str(refused.json()["detail"])

    # Not a byte range we serve in part: the whole file, as RFC 9110 allows.
    assert rest.http.get(url, headers={"Range": "bytes=0-1,5-9"}).status_code == 200
    assert rest.http.get(url, headers={"Range": "items=0-1"}).status_code == 200

    unchanged = rest.http.get(url, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert unchanged.headers["etag"] == etag
    assert rest.http.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    stale = rest.http.get(url, headers={"Range": "bytes=0-3", "If-Range": '"other"'})
    assert stale.status_code == 200 and len(stale.content) == size
    fresh = rest.http.get(url, headers={"Range": "bytes=0-3", "If-Range": etag})
    assert fresh.status_code == 206

    arrow = rest.http.head(paths(aid, v)["arrow"])
    assert arrow.headers["etag"] != etag
    assert arrow.headers["content-type"] == "application/vnd.apache.arrow.file"


def test_streams_answer_head_and_names_are_not_immutable(rest: Rest) -> None:
    aid, v = put(rest, table(1_000))
    base = f"/v1/artifacts/{aid}/v/{v}/data"
    for fmt, media in (("csv", "text/csv"), (None, "application/vnd.apache.arrow.stream")):
        params = {"format": fmt} if fmt else {}
        head = rest.http.head(base, params=params)
        assert head.status_code == 200, head.text
        assert head.headers["content-type"].startswith(media)
        assert head.content == b""
        assert head.headers["x-arrow-row-count"] == "1000"
    assert "immutable" not in rest.http.get(f"/v1/artifacts/{aid}/v/{v}").headers.get(
        "cache-control", ""
    )


def test_missing_unready_and_unknown(rest: Rest) -> None:
    aid, v = put(rest, table(10))
    missing = rest.http.get(f"/v1/artifacts/{aid}/v/{v + 5}/data.parquet")
    assert missing.status_code == 404, missing.text
    assert rest.http.head(f"/v1/artifacts/{aid}/v/{v + 5}/data.arrow").status_code == 404
    bad = rest.http.get(f"/v1/artifacts/{aid}/v/{v}/data", params={"format": "xml"})
    assert bad.status_code == 400 and "xml" in bad.json()["detail"]
    unknown = rest.http.get(f"/v1/artifacts/no-such-{aid}/v/{v}/data.parquet")
    assert unknown.status_code in (400, 404) and unknown.json()["detail"]
    assert rest.http.post(f"/v1/artifacts/{aid}/v/{v}/data.parquet").status_code == 405
    # Answered before FastAPI's routing, still counted under the route's template
    assert rest.http.get(f"/v1/artifacts/{aid}/v/{v}/data.parquet").status_code == 200
    route = "/v1/artifacts/{artifact_id}/v/{version}/data.parquet"
    text = rest.http.get("/metrics/prometheus").text
    assert f'quiver_http_requests_total{{method="GET",route="{route}",status="404"}}' in text
    assert f'quiver_http_requests_total{{method="GET",route="{route}",status="200"}}' in text


def test_rendition_written_once_beside_the_artifact_and_evicted_with_it(rest: Rest) -> None:
    assert rest.flight is not None
    store = rest.flight.core.store
    aid, v = put(rest, table(5_000))
    published = store.path_of(aid, v)
    beside = published.with_suffix(".parquet")
    assert not beside.exists()
    renditions = store.renditions
    assert not renditions.written(aid, v, "parquet") and renditions.written(aid, v, "arrow-file")
    assert rest.http.head(paths(aid, v)["parquet"]).status_code == 200
    assert beside.exists() and renditions.written(aid, v, "parquet")
    assert not renditions.written("../" + aid, v, "parquet")
    assert not renditions.written(aid, v, "csv")
    written = beside.stat().st_mtime_ns
    assert rest.http.get(paths(aid, v)["parquet"]).status_code == 200
    assert beside.stat().st_mtime_ns == written
    assert list(store.tmp_dir.glob("*.parquet")) == []
    assert rest.http.delete(f"/v1/artifacts/{aid}/v/{v}").status_code == 200
    assert not beside.exists() and not published.exists()
    assert rest.http.get(paths(aid, v)["parquet"]).status_code == 404


def test_gc_removes_renditions_and_recovery_removes_orphans(rest: Rest) -> None:
    assert rest.flight is not None
    store = rest.flight.core.store
    aid, v = put(rest, table(2_000))
    rest.http.head(paths(aid, v)["parquet"])
    beside = store.path_of(aid, v).with_suffix(".parquet")
    assert beside.exists()
    report = store.gc(max_bytes=0, collect_latest=True)
    assert report, report
    assert not beside.exists()
    orphan = store.artifacts_dir / "gone" / "v1.parquet"
    orphan.parent.mkdir()
    orphan.write_bytes(b"PAR1")
    assert store.recover()["orphans"] >= 1
    assert not orphan.exists()


def test_flight_clients_read_ranges(rest: Rest) -> None:
    """Any Flight client: the ``rendition`` action, then ``rendition-read`` raw results."""
    assert rest.flight is not None
    data = table()  # more than one 1 MiB result
    aid, v = put(rest, data)
    with connect(rest.flight.location) as client:
        found = client.action("rendition", {"artifact_id": aid, "version": v, "format": "parquet"})
        body = {"artifact_id": aid, "version": v, "format": "parquet", "offset": 0}
        raw = fl.connect(rest.flight.location)
        action = fl.Action("rendition-read", pa.py_buffer(_json(body)))
        chunks = [r.body.to_pybytes() for r in raw.do_action(action)]
        raw.close()
        assert len(chunks) > 1 and sum(map(len, chunks)) == found["size"]
        assert pq.read_table(io.BytesIO(b"".join(chunks))).equals(data)
        with pytest.raises(InvalidArgument, match="past the end"):
            list(client.raw_action("rendition-read", _json({**body, "offset": found["size"]})))
        with pytest.raises(InvalidArgument, match="rendition"):
            client.action("rendition", {"artifact_id": aid, "version": v, "format": "orc"})


def _json(body: dict) -> bytes:
    import json

    return json.dumps(body).encode()


def test_recovery_removes_a_dead_writers_temp_rendition(tmp_path: Path) -> None:
    from catalog import ArtifactStore

    store = ArtifactStore(tmp_path / "store")
    try:
        tmp = store.tmp_dir / "abc.v1.deadbeefdeadbeef.parquet"
        tmp.write_bytes(b"x")
        store.recover()
        assert not tmp.exists()
    finally:
        store.close()


def test_data_stream_is_the_stored_stream_forwarded(rest: Rest) -> None:
    """Over gRPC ``…/data`` forwards the IPC stream inside the stored file (raw results);
    in-process it re-encodes batches. Both give the same table, dictionaries included."""
    data = table(200_000)
    data = data.set_column(2, "k", data.column("k").dictionary_encode())
    assert rest.flight is not None
    with connect(rest.flight.location) as client:
        answer = client.put(data.to_reader(max_chunksize=30_000))
    aid, v = answer["artifact_id"], answer["version"]
    got = rest.http.get(f"/v1/artifacts/{aid}/v/{v}/data")
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "application/vnd.apache.arrow.stream"
    read = ipc.open_stream(pa.BufferReader(got.content)).read_all()
    assert read.to_pydict() == data.to_pydict()
    assert pl.read_ipc_stream(io.BytesIO(got.content)).shape == (200_000, 3)
    with connect(rest.flight.location) as client:
        found = client.action(
            "rendition", {"artifact_id": aid, "version": v, "format": "arrow-file"}
        )
    assert found["stream_offset"] == 8
    assert found["size"] > found["stream_length"] > 0
    assert rest.flight.core.store.readers(aid, v) == 0


BIG_BYTES = 64 * 2**20
"""Far more than a stalled client's receive buffer and the server's send buffers hold, so
a read of it cannot end while the client stalls."""


def test_a_read_holds_the_lease_and_a_client_that_leaves_ends_it(rest: Rest) -> None:
    # The renditions are answered before FastAPI's routing (rest.fastpath): the read
    # still holds the version's lease, and lets it go when its client leaves.
    assert rest.flight is not None
    store = rest.flight.core.store
    rows = np.random.default_rng(3).integers(0, 2**62, BIG_BYTES // 8)
    aid, v = put(rest, pa.table({"x": rows}))
    path = paths(aid, v)["arrow"]
    assert rest.http.head(path).status_code == 200
    for _ in range(2):
        sock = stalled_get(rest.url, path)
        try:
            assert store.readers(aid, v) == 1  # mid-read: gc and eviction leave the version
        finally:
            sock.close()
        assert wait_until(lambda: store.readers(aid, v) == 0)
    assert rest.http.get(path, headers={"Range": "bytes=0-3"}).content == b"ARROW1"[:4]
