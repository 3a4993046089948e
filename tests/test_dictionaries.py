"""Dictionary columns whose dictionaries change between batches are stored as one growing
dictionary per column: read back (whole or followed while written) they give the same values."""

from __future__ import annotations

import itertools

import pyarrow as pa
import pytest

from catalog import ArtifactStore
from catalog.dictionaries import DictionaryUnifier
from foundation import InvalidArgument

TAG = pa.dictionary(pa.int32(), pa.string())
SCHEMA = pa.schema([("tag", TAG), ("n", pa.int64())])


def batch(
    codes: list[int | None], values: list[str | None], schema: pa.Schema = SCHEMA
) -> pa.RecordBatch:
    index_type = schema.field("tag").type.index_type
    tags = pa.DictionaryArray.from_arrays(pa.array(codes, index_type), pa.array(values))
    return pa.record_batch([tags, pa.array(range(len(codes)), pa.int64())], schema=schema)


BATCHES = [
    batch([0, 1, None, 0], ["a", "b"]),
    batch([0, 1], ["a", "b"]),  # the same dictionary
    batch([2, 0], ["a", "b", "c"]),  # a delta: grows the one before
    batch([0, 1, 2, None], ["x", "b", "a"]),  # a replacement: new value, others reordered
    batch([0], ["z"]),  # a replacement with nothing in common
]


def values(batches: list[pa.RecordBatch]) -> list[str | None]:
    return [v for b in batches for v in b.column(0).to_pylist()]


def test_unifier_keeps_values_and_only_grows_dictionaries() -> None:
    unify = DictionaryUnifier(SCHEMA)
    out = [unify(b) for b in BATCHES]
    assert values(out) == values(BATCHES)
    assert out[0] is BATCHES[0] and out[1] is BATCHES[1] and out[2] is BATCHES[2]
    dictionaries = [b.column(0).dictionary.to_pylist() for b in out]
    assert dictionaries[3] == ["a", "b", "c", "x"]
    assert dictionaries[4] == ["a", "b", "c", "x", "z"]
    for before, after in itertools.pairwise(dictionaries):
        assert after[: len(before)] == before


def test_store_keeps_changing_dictionaries_and_followers_see_them(store: ArtifactStore) -> None:
    build = store.begin_build(provenance="dict", executor=None, params=None, inputs=[])
    build.start(SCHEMA)
    follower = build.follow()
    for b in BATCHES:
        build.write(b)
    info = build.publish()
    assert values(list(follower)) == values(BATCHES)
    stored = store.open_table(info.artifact_id, info.version)
    assert stored.column("tag").to_pylist() == values(BATCHES)
    assert stored.schema == SCHEMA


def test_more_values_than_the_index_type_holds_is_refused_with_the_reason() -> None:
    small = pa.schema([("tag", pa.dictionary(pa.int8(), pa.string())), ("n", pa.int64())])
    unify = DictionaryUnifier(small)
    unify(batch(list(range(100)), [f"a{i}" for i in range(100)], small))
    with pytest.raises(InvalidArgument, match=r"column 'tag'.*200 values.*int8"):
        unify(batch(list(range(100)), [f"b{i}" for i in range(100)], small))
