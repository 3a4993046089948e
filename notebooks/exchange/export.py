"""Export a notebook as a zip or a snapshot (API.md §9; Strata 0.11's ``fmt=snapshot``).

``zip``: ``notebook.toml``, ``pyproject.toml``, ``uv.lock``, ``.gitignore`` (each
when present), every file under ``cells/`` and ``provenance.json`` (notebook id,
lockfile hash, DAG, per cell its source hash, defines, references, status,
artifact URI).

``snapshot``: the zip plus, per cell that ran, ``outputs/<cell>.json`` (its
console, display outputs, variables and run record), ``artifacts/index.json``
(every artifact of those cells, with the sha256 and size of the bytes carried)
and the bytes of the artifacts ``include`` chooses (``all``, ``selected`` with
``cells``, ``none``) as Arrow IPC streams under ``artifacts/``.

The archive is produced as a stream of chunks: nothing is held whole, an
artifact's bytes pass through as the Flight stream delivers them (zip entries
with data descriptors need no seeking back).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from foundation import InvalidArgument
from notebooks.serialize import dag_dict
from notebooks.session import Session

FORMATS = ("zip", "snapshot", "markdown", "html")
INCLUDES = ("all", "selected", "none")
TOP_FILES = ("notebook.toml", "pyproject.toml", "uv.lock", ".gitignore")
SNAPSHOT_FORMAT = "quiver-snapshot/1"

Chunks = Callable[[str], Iterable[bytes | memoryview]]
"""An artifact URI -> its bytes (an Arrow IPC stream), as they come."""
Source = bytes | Callable[[], Iterable[bytes | memoryview]]


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        allowed = ", ".join(f"'{f}'" for f in FORMATS)
        raise InvalidArgument(f"fmt must be one of {allowed}")
    return fmt


def safe_name(name: str, fallback: str = "notebook") -> str:
    """A file name for ``Content-Disposition``: ``[\\w.-]`` only, spaces to ``_``."""
    cleaned = re.sub(r"[^\w\s.-]", "", name, flags=re.ASCII).strip()
    cleaned = re.sub(r"\s+", "_", cleaned).strip(".")
    return cleaned[:120] or fallback


@dataclass
class Picture:
    """What an export reads of a session, taken under its lock (then no lock is held)."""

    path: Path
    name: str
    notebook_id: str
    provenance: dict[str, Any]
    cells: list[dict[str, Any]] = field(default_factory=list)
    """Per cell in order: id, language, source, status, result record (or None), run record."""


def lockfile_hash(path: Path) -> str | None:
    lock = path / "uv.lock"
    return hashlib.sha256(lock.read_bytes()).hexdigest() if lock.is_file() else None


def picture(session: Session) -> Picture:
    with session.lock:
        d = session.derived
        cells: dict[str, Any] = {}
        rows = []
        for cell in d.cells:
            st = d.staleness.get(cell.id)
            status = st.status if st else "idle"
            result = d.results.get(cell.id)
            cells[cell.id] = {
                "source_hash": cell.source_hash,
                "defines": list(cell.analysis.defines),
                "references": list(cell.analysis.references),
                "status": status,
                "artifact_uri": result.artifact_uri if result is not None else None,
            }
            rows.append(
                {
                    "id": cell.id,
                    "language": cell.entry.language,
                    "file": cell.entry.file,
                    "source": cell.source,
                    "status": status,
                    "result": result.to_record() if result is not None else None,
                    "artifacts": dict(result.artifact_uris) if result is not None else {},
                    "run": dict(session.runtime.cells.get(cell.id) or {}),
                }
            )
        doc = {
            "notebook_id": session.nb.notebook_id,
            "lockfile_hash": lockfile_hash(session.nb.path),
            "dag": dag_dict(d.dag),
            "cells": cells,
        }
        return Picture(session.nb.path, session.nb.name, session.nb.notebook_id, doc, rows)


def _bundle_files(root: Path) -> Iterator[tuple[str, Path]]:
    for name in TOP_FILES:
        path = root / name
        if path.is_file() and not path.is_symlink():
            yield name, path
    cells = root / "cells"
    if cells.is_dir() and not cells.is_symlink():
        for path in sorted(cells.rglob("*")):
            # never a symlink (it could point anywhere), never a half-written temp file
            if path.is_file() and not path.is_symlink() and ".tmp" not in path.name:
                yield path.relative_to(root).as_posix(), path


def bundle_entries(pic: Picture) -> Iterator[tuple[str, Source]]:
    """The ``zip`` format's entries."""
    for arcname, path in _bundle_files(pic.path):
        yield arcname, path.read_bytes()
    yield "provenance.json", json.dumps(pic.provenance, indent=2, default=str).encode()


def selected_cells(pic: Picture, include: str, cells: Sequence[str]) -> set[str]:
    """Cells whose artifact bytes a snapshot carries; unknown names are an error."""
    if include not in INCLUDES:
        allowed = ", ".join(f"'{i}'" for i in INCLUDES)
        raise InvalidArgument(f"include must be one of {allowed}")
    known = {row["id"] for row in pic.cells}
    unknown = [c for c in cells if c not in known]
    if unknown:
        raise InvalidArgument(f"cells not in this notebook: {', '.join(sorted(unknown))}")
    if include == "selected" and not cells:
        raise InvalidArgument("include=selected needs cells=<id,id,...> naming the cells")
    if include == "all":
        return known
    return set(cells) if include == "selected" else set()


def chosen_artifacts(pic: Picture, chosen: set[str]) -> list[str]:
    """The artifact URIs whose bytes a snapshot of ``chosen`` cells carries, in order."""
    return [
        uri
        for row in pic.cells
        if row["result"] is not None and row["id"] in chosen
        for _, uri in sorted(row["artifacts"].items())
    ]


def snapshot_entries(
    pic: Picture, chosen: set[str], chunks: Chunks
) -> Iterator[tuple[str, Source]]:
    """The ``snapshot`` format's entries: the bundle, outputs, artifacts and their index."""
    yield from bundle_entries(pic)
    index: list[dict[str, Any]] = []
    for row in pic.cells:
        if row["result"] is None:
            continue
        record = {"cell_id": row["id"], "result": row["result"], "run": row["run"]}
        yield f"outputs/{row['id']}.json", json.dumps(record, default=str).encode()
        for variable, uri in sorted(row["artifacts"].items()):
            entry: dict[str, Any] = {
                "cell_id": row["id"],
                "variable": variable,
                "artifact_uri": uri,
                "included": row["id"] in chosen,
                "path": None,
                "sha256": None,
                "bytes": None,
            }
            index.append(entry)
            if row["id"] in chosen:
                entry["path"] = f"artifacts/{row['id']}/{safe_name(variable, 'value')}.arrow"
                yield entry["path"], _digesting(uri, chunks, entry)
    meta = {"format": SNAPSHOT_FORMAT, "notebook_id": pic.notebook_id, "artifacts": index}
    yield "artifacts/index.json", json.dumps(meta, indent=2).encode()


def _digesting(uri: str, chunks: Chunks, entry: dict[str, Any]) -> Source:
    def produce() -> Iterator[bytes | memoryview]:
        h = hashlib.sha256()
        size = 0
        for chunk in chunks(uri):
            h.update(chunk)
            size += len(chunk)
            yield chunk
        entry["sha256"], entry["bytes"] = h.hexdigest(), size

    return produce


class _Sink:
    """Where the zip writer writes: it can tell, not seek, so entries get data descriptors."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.pos = 0

    def write(self, data: bytes | memoryview) -> int:
        self.parts.append(bytes(data))
        self.pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self.pos

    def flush(self) -> None:
        pass

    def drain(self) -> Iterator[bytes]:
        if self.parts:
            out = b"".join(self.parts)
            self.parts.clear()
            yield out


def zip_chunks(entries: Iterable[tuple[str, Source]]) -> Iterator[bytes]:
    """A zip archive of ``entries``, chunk by chunk (small files deflated, bytes stored)."""
    sink = _Sink()
    stamp = time.localtime()[:6]
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as zf:  # type: ignore[arg-type]
        for name, source in entries:
            if isinstance(source, bytes):
                info = zipfile.ZipInfo(name, stamp)
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, source)
            else:
                info = zipfile.ZipInfo(name, stamp)
                info.compress_type = zipfile.ZIP_STORED  # Arrow IPC: compressing buys little
                with zf.open(info, "w", force_zip64=True) as out:
                    for chunk in source():
                        out.write(chunk)
                        yield from sink.drain()
            yield from sink.drain()
    yield from sink.drain()
