"""Part storage: where the ordered parts of a partitioned artifact live.

A *part* is an Arrow IPC *file* with its artifact's schema, stored under a
relative key (``<artifact_id>/v<n>-<token>/part-00002.arrow``) in a storage
every node reaches: a local directory (one machine or a shared mount) or an
S3-compatible bucket, both through :mod:`pyarrow.fs`. Only the head server
writes metadata (:mod:`catalog.partitioned`); builders anywhere write parts
here and hand back :class:`PartInfo` records, data nodes read them.

A :class:`PartStore` is named by its URI alone (it pickles as that URI), so a
Dask task or a data node opens the same storage from the string:

- ``/abs/dir`` or ``file:///abs/dir`` — a local directory;
- ``s3://bucket/prefix?endpoint_override=HOST:PORT&scheme=http&region=REGION`` —
  an S3-compatible store (credentials from the usual ``AWS_*`` environment; the
  options :data:`S3_OPTIONS` are all it takes).

Keys are checked (:func:`check_key`): no absolute path, no ``..``, no empty or
hidden component, so a key taken from a ticket never leaves the storage.
Writes are atomic: a part is written under a hidden temporary key beside its
own and moved into place when complete (a rename locally, a server-side copy
on S3), so nothing is ever visible under a key until it is whole.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from foundation import InvalidArgument

_COMPONENT = re.compile(r"[A-Za-z0-9_=][A-Za-z0-9._=-]{0,199}")
MAX_KEY_CHARS = 1024
BUILD_DIR = re.compile(r"v[1-9][0-9]*-[0-9a-f]{12}")
"""The name of a build's directory under its artifact's (``v<n>-<token>``)."""
RENDITIONS = "renditions"
"""The top-level directory of renditions copied for data nodes (catalog.shared_renditions)."""
NOT_ARTIFACTS = frozenset({RENDITIONS})
"""Top-level names of the part storage that are not artifacts' directories."""
COPY_BYTES = 8 << 20
"""Bytes per write when a local file is copied into the storage."""


@dataclass(frozen=True, slots=True)
class PartInfo:
    """One stored part: its key inside the part storage, its rows and its bytes."""

    key: str
    rows: int
    bytes: int


def check_key(key: str, *, prefix: bool = False) -> str:
    """``key`` if it is a safe relative key (a ``prefix`` may end with ``/``); else
    :class:`InvalidArgument`."""
    body = key[:-1] if isinstance(key, str) and prefix and key.endswith("/") else key
    if (
        not isinstance(body, str)
        or not body
        or len(key) > MAX_KEY_CHARS
        or not all(_COMPONENT.fullmatch(p) for p in body.split("/"))
    ):
        raise InvalidArgument(f"invalid part key {key!r}: relative, no '..' or hidden parts")
    return key


S3_OPTIONS = ("endpoint_override", "scheme", "region", "max_attempts", "connect_timeout")


def _s3(uri: str) -> tuple[pafs.S3FileSystem, str]:
    """The S3 filesystem and ``bucket/prefix`` of an ``s3://`` part storage URI. Options in
    its query: ``endpoint_override``, ``scheme``, ``region``, ``max_attempts`` (per request,
    default 3: a storage that does not answer is an error after them) and
    ``connect_timeout`` (seconds); credentials from the usual ``AWS_*`` environment."""
    parts = urlsplit(uri)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(query) - set(S3_OPTIONS))
    if unknown or not parts.netloc:
        raise InvalidArgument(
            f"part storage {uri!r}: s3://bucket/prefix with options {', '.join(S3_OPTIONS)}"
        )
    try:
        attempts = int(query.get("max_attempts", "3"))
        timeout = float(query["connect_timeout"]) if "connect_timeout" in query else None
    except ValueError:
        raise InvalidArgument(
            f"part storage {uri!r}: max_attempts and connect_timeout are numbers"
        ) from None
    fs = pafs.S3FileSystem(
        endpoint_override=query.get("endpoint_override"),
        scheme=query.get("scheme", "https"),
        region=query.get("region"),
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=max(attempts, 1)),
        connect_timeout=timeout,
    )
    return fs, f"{parts.netloc}{parts.path}"


class PartStore:
    """Where parts live: a local directory, or an S3-compatible bucket through pyarrow.fs."""

    def __init__(self, uri: str) -> None:
        scheme = urlsplit(uri).scheme
        if scheme == "s3":
            fs, base = _s3(uri)
            self.local = False
            self.uri = uri
        elif scheme in ("", "file"):
            path = Path(urlsplit(uri).path if scheme == "file" else uri)
            if not path.is_absolute():
                raise InvalidArgument(f"part storage {uri!r} must be an absolute path")
            path.mkdir(parents=True, exist_ok=True)
            fs, base = pafs.LocalFileSystem(), str(path)
            self.local = True
            self.uri = str(path)
        else:
            raise InvalidArgument(f"part storage {uri!r}: expected a directory or s3://")
        self.fs: pafs.FileSystem = fs
        self.base = base.rstrip("/")

    def __reduce__(self) -> tuple[type[PartStore], tuple[str]]:
        return (PartStore, (self.uri,))

    def __repr__(self) -> str:
        return f"PartStore({self.uri!r})"

    def path(self, key: str) -> str:
        """The filesystem path of a (checked) key."""
        return f"{self.base}/{check_key(key)}"

    # --- writing -------------------------------------------------------------
    @contextlib.contextmanager
    def _staged(self, key: str) -> Iterator[str]:
        """A hidden temporary path beside ``key``'s, moved onto it when the block ends well
        (a rename locally, a server-side copy on S3) and deleted when it does not."""
        final = self.path(key)
        parent, _, name = final.rpartition("/")
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex}-{name}"
        if self.local:
            self.fs.create_dir(parent, recursive=True)
        try:
            yield tmp
            self.fs.move(tmp, final)
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.delete_file(tmp)
            raise

    def write(
        self, key: str, reader: pa.RecordBatchReader, schema: pa.Schema | None = None
    ) -> PartInfo:
        """Write ``reader`` as the IPC file at ``key`` (batches cast to ``schema`` when given);
        nothing is visible under ``key`` until it is complete."""
        schema = schema if schema is not None else reader.schema
        rows = 0
        with (
            self._staged(key) as tmp,
            self.fs.open_output_stream(tmp) as sink,
            pa.ipc.new_file(sink, schema) as writer,
        ):
            for batch in reader:
                if batch.schema != schema:
                    batch = batch.cast(schema)
                writer.write_batch(batch)
                rows += batch.num_rows
        size = self.size(key)
        if size is None:
            raise FileNotFoundError(f"part {key} vanished as it was written")
        return PartInfo(key=key, rows=rows, bytes=size)

    def copy_in(self, key: str, source: Path) -> int:
        """Copy the local file ``source`` to ``key``, atomically as :meth:`write`; its size."""
        with (
            self._staged(key) as tmp,
            open(source, "rb") as src,
            self.fs.open_output_stream(tmp) as sink,
        ):
            while chunk := src.read(COPY_BYTES):
                sink.write(chunk)
        return source.stat().st_size

    # --- reading -------------------------------------------------------------
    def open(self, key: str) -> pa.ipc.RecordBatchFileReader:
        """The part's IPC file reader: memory-mapped when local, ranged reads on S3."""
        path = self.path(key)
        if self.local:
            return pa.ipc.open_file(pa.memory_map(path, "r"))
        return pa.ipc.open_file(self.fs.open_input_file(path))

    def read_range(self, key: str, start: int, end: int, chunk: int) -> Iterator[pa.Buffer]:
        """Bytes ``[start, end)`` of ``key`` in buffers of at most ``chunk``: slices of the
        memory map when local (no copy), ranged GETs on S3. Opened before the first buffer
        is asked for, so a missing key fails here."""
        path = self.path(key)
        file = pa.memory_map(path, "r") if self.local else self.fs.open_input_file(path)

        def pieces() -> Iterator[pa.Buffer]:
            with file:
                offset = file.seek(start)
                while offset < end:
                    piece = file.read_buffer(min(chunk, end - offset))
                    if not piece.size:
                        raise OSError(f"{key} ended at {offset} bytes, before {end}")
                    offset += piece.size
                    yield piece

        return pieces()

    def size(self, key: str) -> int | None:
        """The stored size of ``key``, or None when there is nothing under it."""
        return self.sizes([key])[0]

    def sizes(self, keys: list[str]) -> list[int | None]:
        """The stored sizes of ``keys`` (None where missing), asked in one call."""
        if not keys:
            return []
        infos = self.fs.get_file_info([self.path(k) for k in keys])
        return [i.size if i.type == pafs.FileType.File else None for i in infos]

    def children(self, prefix: str) -> list[str]:
        """The names directly under ``prefix`` (directories and parts); [] when none."""
        path = f"{self.base}/{check_key(prefix, prefix=True).rstrip('/')}"
        selector = pafs.FileSelector(path, allow_not_found=True)
        return sorted(info.base_name for info in self.fs.get_file_info(selector))

    def build_prefixes(self) -> dict[str, int | None]:
        """Every build prefix in the storage (``<artifact_id>/v<n>-<token>/``) with the newest
        modification time of what is under it (ns since the epoch; None when unknown).
        Nothing else is listed: not ``renditions/``, hidden temporaries or other keys."""
        top = self.fs.get_file_info(pafs.FileSelector(self.base, allow_not_found=True))
        found: dict[str, int | None] = {}
        for artifact in top:
            name = artifact.base_name
            if artifact.type != pafs.FileType.Directory or name in NOT_ARTIFACTS:
                continue
            if not _COMPONENT.fullmatch(name):
                continue
            selector = pafs.FileSelector(artifact.path, allow_not_found=True, recursive=True)
            for info in self.fs.get_file_info(selector):
                build, _, _ = info.path[len(artifact.path) + 1 :].partition("/")
                if not BUILD_DIR.fullmatch(build):
                    continue
                prefix = f"{name}/{build}/"
                seen, mtime = found.get(prefix, 0), info.mtime_ns
                if mtime is None and info.type == pafs.FileType.Directory:
                    mtime = 0  # an S3 prefix has no time of its own: its objects have
                found[prefix] = None if seen is None or mtime is None else max(seen, mtime)
        return found

    def files(self, prefix: str) -> list[str]:
        """The keys of every file under ``prefix``, relative to the storage (one listing,
        recursive; hidden temporary files included); [] when none."""
        path = f"{self.base}/{check_key(prefix, prefix=True).rstrip('/')}"
        selector = pafs.FileSelector(path, allow_not_found=True, recursive=True)
        start = len(self.base) + 1
        return sorted(
            info.path[start:]
            for info in self.fs.get_file_info(selector)
            if info.type == pafs.FileType.File
        )

    # --- removing --------------------------------------------------------------
    def delete_prefix(self, prefix: str) -> None:
        """Remove every part under ``prefix`` (a build's parts); nothing there is fine."""
        path = f"{self.base}/{check_key(prefix, prefix=True).rstrip('/')}"
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_dir(path)
