"""Renditions in the part storage, where every data node reads them.

A data node has no artifact files of its own; it reads what the part storage holds.
So when a rendition is asked for *shared* (a data node asks its head, the one
writer), the head puts a copy of its rendition file into the part storage:

    renditions/<artifact_id>/v<n>-<made>/data.parquet   the Parquet rendition
    renditions/<artifact_id>/v<n>-<made>/data.arrow     the Arrow IPC file

``<made>`` is the version's creation time in microseconds, in hex (as in its ETag):
a version number freed by a delete and taken again gets another prefix, so a key
names one version's bytes forever. The copy is of the very file the head serves
(same bytes, so the same ETag), written under a hidden temporary key and moved into
place (:meth:`catalog.parts.PartStore.copy_in`). It goes with its version
(:func:`delete`), and recovery removes prefixes whose version is gone (:func:`sweep`).
Builds' part prefixes (``<artifact_id>/v<n>-<token>/``) are not under ``renditions/``:
whatever sweeps those leaves renditions alone.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Collection
from dataclasses import dataclass

from catalog.parts import RENDITIONS, PartStore
from foundation import NotFound

ROOT = RENDITIONS
NAMES: dict[str, str] = {"parquet": "data.parquet", "arrow-file": "data.arrow"}
_VERSION_DIR = re.compile(r"v[0-9]+-[0-9a-f]+")


@dataclass(frozen=True, slots=True)
class SharedRendition:
    """A rendition in the part storage: its key, size, strong ETag and, for the Arrow
    IPC file, where its IPC stream lies (``stream``: offset, length)."""

    artifact_id: str
    version: int
    format: str
    key: str
    size: int
    etag: str
    stream: tuple[int, int] | None = None


def version_dir(artifact_id: str, version: int, created_at: float) -> str:
    """The name of one version's directory under ``renditions/<artifact_id>/``."""
    return f"v{version}-{int(created_at * 1_000_000):x}"


def prefix_of(artifact_id: str, version: int, created_at: float) -> str:
    return f"{ROOT}/{artifact_id}/{version_dir(artifact_id, version, created_at)}/"


def key_of(artifact_id: str, version: int, created_at: float, fmt: str) -> str:
    return prefix_of(artifact_id, version, created_at) + NAMES[fmt]


def stream_span(tail: bytes, size: int, what: str) -> tuple[int, int]:
    """Where the IPC *stream* lies inside an Arrow IPC file of ``size`` bytes whose last 10
    bytes are ``tail``: ``(offset, length)``.

    The file format is ``ARROW1`` and padding (8 bytes), the stream format (schema,
    dictionaries, batches, end-of-stream marker), the footer, its int32 length and
    ``ARROW1``: the bytes between are a complete stream, sent as they are stored.
    """
    footer = int.from_bytes(tail[:4], "little", signed=True)
    if len(tail) != 10 or tail[4:] != b"ARROW1" or not 0 < footer <= size - 18:
        raise NotFound(f"{what} is not a whole Arrow IPC file")
    return 8, size - 10 - footer - 8


def tail_of(parts: PartStore, key: str, size: int) -> bytes:
    """The last 10 bytes of ``key`` (one ranged read)."""
    pieces = parts.read_range(key, max(size - 10, 0), size, 10)
    return b"".join(piece.to_pybytes() for piece in pieces)


def delete(parts: PartStore, artifact_id: str, version: int, created_at: float) -> None:
    """Remove a version's shared renditions (nothing there is fine); a storage that does
    not answer leaves them to :func:`sweep`."""
    with contextlib.suppress(OSError):
        parts.delete_prefix(prefix_of(artifact_id, version, created_at))


def sweep(parts: PartStore, known: Collection[tuple[str, str]]) -> int:
    """Remove every ``renditions/<artifact_id>/<dir>/`` whose ``(artifact_id, dir)`` is not
    in ``known`` (the versions that may be served); how many went. One listing of
    ``renditions/`` (recursive), then a delete per prefix that goes."""
    found = {tuple(key.split("/")[1:3]) for key in parts.files(f"{ROOT}/") if key.count("/") >= 3}
    gone = sorted(
        (artifact_id, name)
        for artifact_id, name in found
        if not artifact_id.startswith(".")
        and _VERSION_DIR.fullmatch(name)
        and (artifact_id, name) not in known
    )
    for artifact_id, name in gone:
        parts.delete_prefix(f"{ROOT}/{artifact_id}/{name}/")
    return len(gone)
