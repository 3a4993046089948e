"""Partitioned artifacts: versions stored as ordered parts in the part storage.

A partitioned version has no file of its own under ``artifacts/``: its row says
how many parts it has (``part_count``), ``artifact_parts`` lists them in order
(key, rows, bytes) and :class:`catalog.parts.PartStore` holds them. Its
``byte_size`` is the sum of its parts', ``row_count`` and ``num_batches`` too.

- Whole means every part is there with its recorded size (:meth:`Parts.whole`).
- Reading chains the parts in order (:meth:`Parts.chain`), zero-copy when local.
- ``open_file`` (renditions, a REST front end forwarding the stored stream) needs
  one IPC file: :meth:`Parts.join` writes the parts into ``artifacts/<id>/v<n>.arrow``
  once, like a rendition, and it goes with the version.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa

from catalog.dictionaries import DictionaryUnifier, has_dictionaries
from catalog.parts import PartInfo, PartStore

PARTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS artifact_parts (
    artifact_id TEXT NOT NULL,
    version     INTEGER NOT NULL,
    position    INTEGER NOT NULL,
    key         TEXT NOT NULL,
    rows        INTEGER NOT NULL,
    bytes       INTEGER NOT NULL,
    PRIMARY KEY (artifact_id, version, position)
);
"""


def rows_of(db: sqlite3.Connection, artifact_id: str, version: int) -> list[PartInfo]:
    """A version's parts in order ([] for a one-file version), in the caller's lock."""
    return [
        PartInfo(key=r["key"], rows=r["rows"], bytes=r["bytes"])
        for r in db.execute(
            "SELECT key, rows, bytes FROM artifact_parts WHERE artifact_id=? AND version=? "
            "ORDER BY position",
            (artifact_id, version),
        )
    ]


def record(
    db: sqlite3.Connection, artifact_id: str, version: int, parts: Sequence[PartInfo]
) -> None:
    """Record a version's parts (in the caller's transaction)."""
    db.executemany(
        "INSERT INTO artifact_parts VALUES (?,?,?,?,?,?)",
        [(artifact_id, version, i, p.key, p.rows, p.bytes) for i, p in enumerate(parts)],
    )


def prefixes(parts: Sequence[PartInfo]) -> list[str]:
    """The directories (key prefixes) the parts live in, to delete them with their version."""
    return sorted({p.key.rpartition("/")[0] + "/" for p in parts if "/" in p.key})


class Parts:
    """Checks, reads and joins the parts of partitioned versions of one store."""

    def __init__(self, store: PartStore, tmp_dir: Path, owner: str, lock: threading.RLock) -> None:
        self.lock = lock  # the store's: a delete removes an artifact's directory under it
        self.store = store
        self.tmp_dir = tmp_dir
        self.owner = owner
        self._joining: dict[Path, threading.Lock] = {}
        self._guard = threading.Lock()

    def whole(self, parts: Sequence[PartInfo]) -> bool:
        """Whether every part is stored with its recorded size."""
        sizes = self.store.sizes([p.key for p in parts])
        return all(size == p.bytes for size, p in zip(sizes, parts, strict=True))

    def check(self, schema: pa.Schema, parts: Sequence[PartInfo]) -> int:
        """Open each part: the footer must be whole and its schema the artifact's; the number of
        batches in all. Raises ValueError saying which part is wrong."""
        if not parts:
            raise ValueError("a partitioned artifact needs at least one part")
        batches = 0
        for p, size in zip(parts, self.store.sizes([p.key for p in parts]), strict=True):
            if size != p.bytes:
                raise ValueError(f"part {p.key} is missing or not {p.bytes} bytes (found {size})")
            reader = self.store.open(p.key)
            if not reader.schema.equals(schema, check_metadata=False):
                raise ValueError(f"part {p.key} has another schema than the artifact")
            batches += reader.num_record_batches
        return batches

    def chain(
        self, schema: pa.Schema, parts: Sequence[PartInfo], start: int = 0, stop: int | None = None
    ) -> Iterator[pa.RecordBatch]:
        """Batches ``[start, stop)`` of the parts in order, counted across the parts."""
        index = 0
        for p in parts:
            if stop is not None and index >= stop:
                return
            reader = self.store.open(p.key)
            n = reader.num_record_batches
            for i in range(max(start - index, 0), n if stop is None else min(n, stop - index)):
                batch = reader.get_batch(i)
                yield batch if batch.schema == schema else batch.cast(schema)
            index += n

    def join(self, schema: pa.Schema, parts: Sequence[PartInfo], path: Path) -> None:
        """Write the parts, in order, into one IPC file at ``path`` (once; atomically)."""
        with self._guard:
            lock = self._joining.setdefault(path, threading.Lock())
        with lock:
            if path.exists():
                return
            name = path.parent.name
            tmp = self.tmp_dir / f"{name}.{path.stem}-joined.{self.owner}.arrow"
            unify = DictionaryUnifier(schema) if has_dictionaries(schema) else None
            options = pa.ipc.IpcWriteOptions(emit_dictionary_deltas=unify is not None)
            try:
                with (
                    pa.OSFile(str(tmp), "wb") as sink,
                    pa.ipc.new_file(sink, schema, options=options) as writer,
                ):
                    for batch in self.chain(schema, parts):
                        writer.write_batch(unify(batch) if unify is not None else batch)
                with self.lock:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(tmp, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                with self._guard:
                    if self._joining.get(path) is lock:
                        del self._joining[path]

    def sweep(self, artifact_id: str, version: int) -> int:
        """Remove what builds of this version wrote under their prefixes
        (``<artifact_id>/v<n>-<token>/``): for a build that died before it published or
        failed. How many prefixes went."""
        found = self.store.children(f"{artifact_id}/")
        mine = [name for name in found if name.startswith(f"v{version}-")]
        for name in mine:
            self.store.delete_prefix(f"{artifact_id}/{name}/")
        return len(mine)

    def sweep_orphans(
        self, db: sqlite3.Connection, older_than_s: float, *, now: float, dry_run: bool = False
    ) -> list[str]:
        """Remove the build prefixes nothing owns: no ready or superseded version's parts
        are under them, no build of their version runs, and nothing under them changed in
        the last ``older_than_s`` seconds (a Dask task of a build in flight, or of a head
        that just died, may still be writing). Parts written by a task that outlived its
        abandoned build end here. ``db`` is read in the caller's lock; the prefixes
        removed (or, ``dry_run``, that would be); none for an infinite grace."""
        if not math.isfinite(older_than_s):
            return []
        owned = {
            prefix
            for r in db.execute(
                "SELECT p.key FROM artifact_parts p JOIN artifacts a "
                "ON a.artifact_id = p.artifact_id AND a.version = p.version "
                "WHERE a.state IN ('ready', 'superseded')"
            )
            for prefix in prefixes([PartInfo(key=r[0], rows=0, bytes=0)])
        }
        building = {
            f"{r[0]}/v{r[1]}-"
            for r in db.execute("SELECT artifact_id, version FROM artifacts WHERE state='building'")
        }
        limit_ns = int((now - older_than_s) * 1e9)
        gone = []
        for prefix, mtime in sorted(self.store.build_prefixes().items()):
            if prefix in owned or prefix[: prefix.rindex("-") + 1] in building:
                continue
            if mtime is None or mtime > limit_ns:
                continue
            if not dry_run:
                self.store.delete_prefix(prefix)
            gone.append(prefix)
        return gone

    def delete(self, parts: Sequence[PartInfo]) -> None:
        """Remove the stored parts (their build's directories)."""
        for prefix in prefixes(parts):
            self.store.delete_prefix(prefix)
