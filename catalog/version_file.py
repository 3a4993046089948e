"""The Arrow IPC file of one artifact version while it is written.

A :class:`VersionFile` owns the bytes: the IPC file writer, the dictionaries
unified across batches (a file keeps one per column, grown by deltas), and,
for content-addressed builds, the hash of every byte as it is written. The
build around it (:mod:`catalog.build`) owns the lifecycle and its followers.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pyarrow as pa

from catalog.dictionaries import DictionaryUnifier, has_dictionaries
from catalog.hashing import HashingFile


class VersionFile:
    """One IPC file being written at ``path``; hashed when ``hash_content``."""

    def __init__(self, path: Path, *, hash_content: bool = False) -> None:
        self._raw: HashingFile | None = None
        self._sink: pa.NativeFile
        if hash_content:
            self._raw = HashingFile(path)
            self._sink = pa.PythonFile(self._raw, mode="w")
        else:
            self._sink = pa.OSFile(str(path), "wb")
        self._writer: pa.ipc.RecordBatchFileWriter | None = None
        self._unify: DictionaryUnifier | None = None
        self._sealed = False
        self._digest: str | None = None

    @property
    def started(self) -> bool:
        """Whether the schema has been written (by :meth:`start` or a first :meth:`write`)."""
        return self._writer is not None

    def start(self, schema: pa.Schema) -> None:
        """Write the schema; the file takes batches of it from now on."""
        options = None
        if has_dictionaries(schema):
            # Dictionaries may change between a stream's batches; the file keeps
            # one per column, grown by deltas (followers read those as they come).
            self._unify = DictionaryUnifier(schema)
            options = pa.ipc.IpcWriteOptions(emit_dictionary_deltas=True)
        self._writer = pa.ipc.new_file(self._sink, schema, options=options)

    def write(self, batch: pa.RecordBatch) -> int:
        """Append one batch (after :meth:`start`); how many bytes the file holds now."""
        assert self._writer is not None
        if self._unify is not None:
            batch = self._unify(batch)
        self._writer.write_batch(batch)
        return self._sink.tell()

    def seal(self) -> str | None:
        """Write the footer; the :class:`ChunkedSha256` hex of the file's bytes if hashed.

        The digest covers the whole file: magic, schema, every batch, footer.
        Idempotent.
        """
        if self._writer is None:
            raise RuntimeError("seal() before the schema was known")
        if not self._sealed:
            self._writer.close()
            self._sealed = True
            if self._raw is not None:
                self._digest = self._raw.hasher.hexdigest()
        return self._digest

    def fsync(self) -> None:
        os.fsync(self._raw.fileno() if self._raw is not None else self._sink.fileno())

    def close(self) -> int:
        """Close the (sealed) file; its size in bytes."""
        size = self._sink.tell()
        self._sink.close()
        if self._raw is not None:
            self._raw.close()
        return size

    def close_quietly(self) -> None:
        """Close whatever is open, raising nothing (the file is abandoned)."""
        with contextlib.suppress(Exception):
            if self._writer is not None and not self._sealed:
                self._sealed = True
                self._writer.close()
        with contextlib.suppress(Exception):
            self._sink.close()
        if self._raw is not None:
            with contextlib.suppress(Exception):
                self._raw.close()
            self._raw.hasher.stop()
