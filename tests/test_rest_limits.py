"""Limits: request bodies (413 before they are read), big materialize bodies off the event
loop, and what Flight cannot carry in one message."""

from __future__ import annotations

import json

import httpx
import pyarrow as pa

from flight import MAX_COMMAND_BYTES
from flight.client import PUT_BATCH_BYTES, put_pieces
from tests.fixtures_flight import GATES, gated_request
from tests.polling import wait_until

JSON = {"content-type": "application/json"}


def test_a_json_body_over_the_request_limit_answers_413_an_upload_may_be_larger(
    make_rest,
) -> None:
    rest = make_rest(rest_max_request_bytes=4096, rest_max_body_bytes=1_000_000)
    http = rest.http
    pad = "x" * 5000
    for method, path, body in [
        ("POST", "/v1/materialize", {"inputs": [pad], "transform": {"executor": "scan@v1"}}),
        ("POST", "/v1/notebooks/create", {"parent_path": pad, "name": "n"}),
        ("POST", "/v1/names", {"name": pad, "artifact_id": "a", "version": 1}),
    ]:
        answer = http.request(method, path, json=body)
        assert answer.status_code == 413, (path, answer.text)
        assert answer.json() == {"detail": "request body exceeds the limit of 4096 bytes"}

    def chunked():  # no content-length: counted as it streams
        yield b'{"parent_path": "'
        yield pad.encode()
        yield b'", "name": "n"}'

    streamed = http.post("/v1/notebooks/create", content=chunked(), headers=JSON)
    assert streamed.status_code == 413, streamed.text
    table = pa.table({"s": [pad] * 10})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    files = {"metadata": (None, "{}"), "data": ("d", sink.getvalue().to_pybytes())}
    stored = http.put("/v1/artifacts", files=files)  # ~50 KB: an upload, under the body limit
    assert stored.status_code == 200, stored.text
    doc = http.get("/openapi.json").json()
    body = doc["paths"]["/v1/names"]["post"]["requestBody"]["description"]
    assert "At most 4096 bytes (QUIVER_REST_MAX_REQUEST_BYTES)" in body


def test_a_materialize_body_flight_would_refuse_is_refused_before_it_is_read(rest) -> None:
    """Over the Flight command limit, a materialize body is a 413 from its declared size,
    never parsed on the event loop (a 114 MB one used to hold the loop for 2.7 s)."""
    big = json.dumps({"inputs": ["strata://name/x"] * 400_000, "transform": {"executor": "s"}})
    assert MAX_COMMAND_BYTES < len(big) < rest.settings.rest_max_request_bytes
    answer = rest.http.post("/v1/materialize", content=big, headers=JSON)
    assert answer.status_code == 413, answer.text
    assert f"the limit is {MAX_COMMAND_BYTES}" in answer.json()["detail"]
    # under the limit but over the inline size: validated on a worker thread, same answers
    medium = {"inputs": ["strata://name/x"] * 20_000, "transform": {"executor": "nope@v1"}}
    refused = rest.http.post("/v1/materialize", json=medium)
    assert refused.status_code == 400 and "unknown executor" in refused.json()["detail"]
    invalid = rest.http.post("/v1/materialize", json={**medium, "extra": 1})
    assert invalid.status_code == 422  # FastAPI's own answer, as for a small body


def test_one_batch_bigger_than_a_put_message_is_sent_in_slices(rest) -> None:
    """gRPC carries no message over 2 GiB, and the upload of one such batch failed with
    Arrow's message; a batch over PUT_BATCH_BYTES now goes as zero-copy slices."""
    rows = PUT_BATCH_BYTES // 4000 + 1000
    table = pa.table({"s": pa.array(["y" * 4000] * rows), "i": pa.array(range(rows))})
    assert table.to_batches()[0].nbytes > PUT_BATCH_BYTES and table.num_rows == rows
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_batch(table.combine_chunks().to_batches()[0])
    files = {"metadata": (None, "{}"), "data": ("d", sink.getvalue().to_pybytes())}
    stored = rest.http.put("/v1/artifacts", files=files)
    assert stored.status_code == 200, stored.text
    body = rest.http.get(f"/v1/artifacts/{stored.json()['artifact_id']}/v/1/data").content
    assert pa.ipc.open_stream(body).read_all().equals(table)


def test_put_pieces_are_slices_of_the_batch() -> None:
    batch = pa.record_batch({"s": ["x" * 1000] * 5000, "i": list(range(5000))})
    pieces = list(put_pieces(batch, 100_000))
    assert all(p.nbytes <= 100_000 for p in pieces) and len(pieces) > 1
    assert pa.Table.from_batches(pieces).equals(pa.Table.from_batches([batch]))
    assert pieces[1].column(0).buffers()[2].address == batch.column(0).buffers()[2].address


def test_a_build_over_the_queue_is_refused_with_503_and_retry_after(make_rest) -> None:
    """One build thread and no queue: a second distinct build is refused clearly; a request
    for the build already in flight joins it; once it is done the next one is taken."""
    rest = make_rest(build_threads=1, build_queue=0)
    http = rest.http
    try:
        first = http.post("/v1/materialize", json={**gated_request("q1"), "mode": "artifact"})
        assert first.json()["state"] == "pending", first.text
        refused = http.post("/v1/materialize", json={**gated_request("q2"), "mode": "artifact"})
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "1"
        assert "too many builds" in refused.json()["detail"]
        joined = http.post("/v1/materialize", json={**gated_request("q1"), "mode": "artifact"})
        assert joined.status_code == 200 and joined.json()["build_id"] == first.json()["build_id"]
    finally:
        GATES["q1"].set()
    done = f"/v1/artifacts/builds/{first.json()['build_id']}"
    assert wait_until(lambda: http.get(done).json()["state"] == "ready")
    taken = http.post("/v1/materialize", json={**gated_request("q2"), "mode": "artifact"})
    assert taken.status_code == 200, taken.text
    GATES["q2"].set()


def test_abandoned_streams_are_cleaned_up(make_rest, demo_table) -> None:
    """Twenty clients each read a KiB of a data stream and go away: every read lease is
    released, no response is left open, and the server answers as before."""
    rest = make_rest(batch_size=200)  # many small batches: far more than socket buffers hold
    http = rest.http
    body = {"inputs": [demo_table.uri], "transform": {"executor": "scan@v1"}}
    built = http.post("/v1/materialize", json=body).json()
    assert http.get(built["stream_url"]).status_code == 200
    aid, version = built["artifact_uri"].removeprefix("strata://artifact/").split("@v=")
    url = f"{rest.url}/v1/artifacts/{aid}/v/{version}/data"
    clients = [httpx.Client() for _ in range(20)]
    streams = [c.stream("GET", url) for c in clients]
    for stream in streams:
        next(stream.__enter__().iter_raw(1024))
    for stream, client in zip(streams, clients, strict=True):
        stream.__exit__(None, None, None)
        client.close()
    store = rest.flight.core.store

    def settled() -> bool:
        open_now = http.get("/metrics").json()["connections"]
        return store.readers(aid, int(version)) == 0 and open_now["http_streams"] == 0

    assert wait_until(settled), (store.readers(aid, int(version)), http.get("/metrics").json())
    assert http.get(f"/v1/artifacts/{aid}/v/{version}/data").status_code == 200
