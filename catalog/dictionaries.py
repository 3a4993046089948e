"""One dictionary per column across a stream's batches, as an Arrow IPC file needs.

An IPC *stream* may replace a column's dictionary between batches; an IPC
*file* (what the store keeps) holds one dictionary per column, which may grow
by deltas. :class:`DictionaryUnifier` rewrites each incoming batch so its
dictionaries extend the ones already written: values already seen keep their
codes, new values are appended, and the indices are remapped. A batch whose
dictionaries already extend the written ones passes through untouched.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from foundation import InvalidArgument


def has_dictionaries(schema: pa.Schema) -> bool:
    return any(pa.types.is_dictionary(field.type) for field in schema)


class DictionaryUnifier:
    """Rewrites batches of ``schema`` so each dictionary column only ever grows."""

    def __init__(self, schema: pa.Schema) -> None:
        self._columns = [i for i, f in enumerate(schema) if pa.types.is_dictionary(f.type)]
        self._seen: dict[int, pa.Array] = {}

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        columns: list[pa.Array] | None = None
        for i in self._columns:
            column = batch.column(i)
            unified = self._unify(i, batch.schema.field(i).name, column)
            if unified is not column:
                columns = columns or list(batch.columns)
                columns[i] = unified
        if columns is None:
            return batch
        return pa.RecordBatch.from_arrays(columns, schema=batch.schema)

    def _unify(self, i: int, name: str, column: pa.DictionaryArray) -> pa.DictionaryArray:
        values = column.dictionary
        seen = self._seen.get(i)
        if seen is None or _extends(values, seen):
            self._seen[i] = values
            return column
        new = pc.unique(values.filter(pc.invert(pc.is_in(values, value_set=seen))))
        merged = pa.concat_arrays([seen, new.cast(seen.type)])
        index_type = column.type.index_type
        if len(merged) - 1 > _max_index(index_type):
            raise InvalidArgument(
                f"column {name!r}: its dictionaries together hold {len(merged)} values, "
                f"more than its {index_type} indices can address"
            )
        codes = pc.index_in(values, value_set=merged).cast(index_type)
        self._seen[i] = merged
        return pa.DictionaryArray.from_arrays(codes.take(column.indices), merged)


def _extends(values: pa.Array, seen: pa.Array) -> bool:
    """Is ``values`` ``seen`` followed by zero or more new entries (a delta or the same)?"""
    return len(values) >= len(seen) and values.slice(0, len(seen)).equals(seen)


def _max_index(index_type: pa.DataType) -> int:
    bits = index_type.bit_width - (1 if pa.types.is_signed_integer(index_type) else 0)
    return (1 << bits) - 1
