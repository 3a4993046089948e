"""DoPut in one pass: provenance settled at publish, dedupe races, lineage of uploads."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as fl
import pytest

from catalog import chunked_sha256
from flight import QuiverFlightServer
from flight.uploads import UNRESOLVED, store_content, upload_provenance
from foundation import InvalidArgument
from tests.fixtures_flight import act, cmd


@pytest.fixture
def server(flight_server: QuiverFlightServer) -> QuiverFlightServer:
    return flight_server


@pytest.fixture
def client(flight_client: fl.FlightClient) -> fl.FlightClient:
    return flight_client


def put(client: fl.FlightClient, table: pa.Table, metadata: dict[str, Any]) -> dict[str, Any]:
    writer, answers = client.do_put(cmd({"metadata": metadata}), table.schema)
    with writer:
        writer.write_table(table, max_chunksize=50_000)
        writer.done_writing()
        return json.loads(answers.read().to_pybytes())


def big(n: int = 200_000) -> pa.Table:
    ids = pa.array(range(n), pa.int64())
    return pa.table({"id": ids, "k": pc.remainder(ids, 7)})


def test_provenance_is_the_documented_hash_of_the_stored_file(server, client) -> None:
    meta = {"cell": "c1"}
    answer = put(client, big(), meta)
    path = server.core.store.path_of(answer["artifact_id"], answer["version"])
    expected = upload_provenance(meta, chunked_sha256(path.read_bytes()))
    assert answer["provenance_hash"] == expected and answer["deduplicated"] is False
    assert not (server.core.settings.data_dir / "uploads").exists(), "no spool any more"


@pytest.mark.parametrize(
    "metadata",
    [{"cell": "same"}, {"inputs": [], "transform": {"executor": "mine@v1", "params": {}}}],
    ids=["content", "stated"],
)
def test_identical_uploads_at_the_same_moment_end_as_one(
    server, client, metadata: dict[str, Any]
) -> None:
    table = big()
    n = 6
    barrier = threading.Barrier(n)
    answers: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def upload() -> None:
        c = fl.connect(server.location)
        try:
            barrier.wait()
            answers.append(put(c, table, metadata))
        except BaseException as exc:
            errors.append(exc)
        finally:
            c.close()

    threads = [threading.Thread(target=upload) for _ in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors
    assert len({a["artifact_uri"] for a in answers}) == 1 and len(answers) == n
    assert sum(not a["deduplicated"] for a in answers) == 1
    store = server.core.store
    assert [i.uri for i in store.list(limit=100)] == [answers[0]["artifact_uri"]]
    assert not list(store.tmp_dir.iterdir())
    assert len(list(store.artifacts_dir.glob("*/v*.arrow"))) == 1
    got = client.do_get(fl.Ticket(answers[0]["artifact_uri"].encode())).read_all()
    assert got.equals(table)


def test_a_notebook_upload_shows_in_its_inputs_dependents(server, client) -> None:
    upstream = put(client, pa.table({"x": [1, 2, 3]}), {"cell_id": "a"})
    named = put(client, pa.table({"x": [4]}), {"cell_id": "b"})
    act(client, "name-set", {"name": "nb/b", "artifact_uri": named["artifact_uri"]})
    # what a notebook kernel sends (notebooks/engines.py put_metadata + the variable)
    meta = {
        "notebook_id": "nb1",
        "cell_id": "c",
        "cell_provenance": "abc123",
        "inputs": [upstream["artifact_uri"], "strata://name/nb/b", "strata://name/gone"],
        "variable": "t",
    }
    down = put(client, pa.table({"y": [1]}), meta)
    deps = act(client, "dependents", {"artifact_uri": upstream["artifact_uri"]})["dependents"]
    assert [d["artifact_uri"] for d in deps] == [down["artifact_uri"]]
    deps = act(client, "dependents", {"artifact_uri": named["artifact_uri"]})["dependents"]
    assert [d["artifact_uri"] for d in deps] == [down["artifact_uri"]]
    lineage = act(client, "lineage", {"artifact_uri": down["artifact_uri"]})["inputs"]
    assert [i["input_uri"] for i in lineage] == meta["inputs"]
    assert [i["artifact_uri"] for i in lineage[:2]] == [
        upstream["artifact_uri"],
        named["artifact_uri"],
    ]
    assert lineage[2]["version"] == UNRESOLVED
    again = put(client, pa.table({"y": [1]}), meta)  # deduplicated: still one dependent
    assert again["deduplicated"] is True
    deps = act(client, "dependents", {"artifact_uri": upstream["artifact_uri"]})["dependents"]
    assert len(deps) == 1


def test_upload_inputs_must_be_uris(client) -> None:
    for bad in ({"inputs": "strata://artifact/a@v=1"}, {"inputs": ["not a uri"]}):
        with pytest.raises(fl.FlightServerError) as err:
            put(client, pa.table({"x": [1]}), bad)
        assert json.loads(err.value.extra_info)["code"] == "invalid_argument"


def test_an_upload_cut_short_leaves_nothing(server) -> None:
    schema = pa.schema([("x", pa.int64())])

    def batches() -> Iterator[pa.RecordBatch]:
        yield pa.record_batch([pa.array([1, 2])], schema=schema)
        raise pa.ArrowInvalid("stream ended early")

    with pytest.raises(pa.ArrowInvalid):
        store_content(server.core, schema, batches(), {})
    store = server.core.store
    assert store.list(limit=100) == [] and not list(store.tmp_dir.iterdir())
    with pytest.raises(InvalidArgument):
        store_content(server.core, schema, iter(()), {"inputs": [1]})
    assert store.list(limit=100) == []
