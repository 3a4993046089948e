"""Import a ``snapshot`` (or ``zip``) export: the notebook restored with its results.

The archive is checked before anything is written: no absolute paths, no
``..``, no symlinks, a ``notebook.toml`` at the top, a bounded total size.
Notebook files (``notebook.toml``, ``pyproject.toml``, ``uv.lock``,
``.gitignore``, ``cells/``) are extracted into a hidden folder beside the
target. Each artifact the bundle carries is verified against its sha256 in
``artifacts/index.json`` and uploaded to this server (a new URI); each cell's
recorded result then points at it, and its run record is restored, so a cell
whose results came along opens ``ready``. A result whose artifacts did not come
along and are not on this server is left out (the cell is ``idle``). The folder
is renamed into place last: a failed import leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomlkit

from foundation import Conflict, InvalidArgument, TooLarge
from notebooks.exchange.export import TOP_FILES
from notebooks.model import CellResult, ResultStore, RuntimeState, check_name, slug

NOTEBOOK_DIRS = ("cells/",)
KNOWN = (*TOP_FILES, "provenance.json")
KNOWN_DIRS = ("cells/", "outputs/", "artifacts/")
MAX_ENTRIES = 100_000

PutArtifact = Callable[[Path], str]
"""An Arrow IPC stream file -> the URI of the artifact it became on this server."""
Known = Callable[[str], bool]
"""Is this artifact URI present on this server?"""


def open_archive(file: Any) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InvalidArgument(f"not a zip archive: {exc}") from None


def check_archive(zf: zipfile.ZipFile, max_bytes: int) -> list[str]:
    """Refuse unsafe or oversized archives; the names of the entries (directories left out)."""
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise TooLarge(f"the archive has {len(infos)} entries (at most {MAX_ENTRIES})")
    names, total = [], 0
    for info in infos:
        name = info.filename
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or "\\" in name:
            raise InvalidArgument(f"unsafe archive entry {name!r}: absolute paths are refused")
        if ".." in name.split("/") or "\x00" in name:
            raise InvalidArgument(f"unsafe archive entry {name!r}: '..' would leave the notebook")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise InvalidArgument(f"unsafe archive entry {name!r}: symlinks are refused")
        if info.is_dir():
            continue
        total += info.file_size
        names.append(name)
    if total > max_bytes:
        raise TooLarge(f"the archive unpacks to {total} bytes (at most {max_bytes})")
    if "notebook.toml" not in names:
        raise InvalidArgument("the archive has no notebook.toml at its top: not a notebook export")
    return names


def _copy(zf: zipfile.ZipFile, name: str, dest: Path) -> str:
    """Extract one entry (streamed); its sha256."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    try:
        with zf.open(name) as src, dest.open("wb") as out:
            while chunk := src.read(1024 * 1024):
                h.update(chunk)
                out.write(chunk)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InvalidArgument(f"archive entry {name!r} is corrupt: {exc}") from None
    return h.hexdigest()


def _json_entry(zf: zipfile.ZipFile, name: str) -> Any:
    try:
        return json.loads(zf.read(name))
    except (ValueError, zipfile.BadZipFile, OSError) as exc:
        raise InvalidArgument(f"archive entry {name!r} is not valid JSON: {exc}") from None


def _rewrite(result: dict[str, Any], uris: dict[str, str], known: Known) -> bool:
    """Point the result's artifacts at this server; False when one is missing here."""
    for holder in [*(result.get("variables") or {}).values(), *(result.get("displays") or [])]:
        if not isinstance(holder, dict) or not holder.get("artifact_uri"):
            continue
        old = str(holder["artifact_uri"])
        if old in uris:
            holder["artifact_uri"] = uris[old]
        elif not known(old):
            return False
    return True


def restore_archive(
    zf: zipfile.ZipFile,
    parent: Path,
    name: str | None,
    *,
    max_bytes: int,
    put_artifact: PutArtifact,
    known: Known,
    owner: str | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Write the notebook of ``zf`` under ``parent`` (atomically); its path and a report.

    ``owner`` (the importing caller, or None) replaces the owner the archive names:
    whoever exported it, on whatever server, does not own the copy."""
    names = check_archive(zf, max_bytes)
    try:
        doc = tomlkit.parse(zf.read("notebook.toml").decode("utf-8"))
    except (UnicodeDecodeError, tomlkit.exceptions.ParseError) as exc:
        raise InvalidArgument(f"notebook.toml in the archive is not valid TOML: {exc}") from None
    title = (name or str(doc.get("name") or "")).strip() or "Imported notebook"
    check_name(title)
    if not slug(title).strip(". "):
        raise InvalidArgument("Invalid notebook name: must contain a letter or digit")
    doc["name"] = title
    doc.pop("owner", None)
    if owner:
        doc["owner"] = owner
    target = parent / slug(title)
    if target.exists() or target.is_symlink():
        raise Conflict(f"A notebook already exists at {target}")
    parent.mkdir(parents=True, exist_ok=True)
    scratch = parent / f".{slug(title)}.import-{uuid.uuid4().hex[:8]}"
    report: dict[str, Any] = {"cells_restored": [], "artifacts": 0, "skipped_entries": []}
    try:
        scratch.mkdir()
        for entry in names:
            if entry in TOP_FILES or entry.startswith(NOTEBOOK_DIRS):
                _copy(zf, entry, scratch / entry)
            elif entry not in KNOWN and not entry.startswith(KNOWN_DIRS):
                report["skipped_entries"].append(entry)
        (scratch / "cells").mkdir(exist_ok=True)
        (scratch / "notebook.toml").write_text(tomlkit.dumps(doc), encoding="utf-8")
        state = scratch / ".quiver"
        state.mkdir()
        uris = _artifacts(zf, names, state, put_artifact, report)
        runtime, store = RuntimeState(state), ResultStore(state)
        for entry in sorted(n for n in names if n.startswith("outputs/") and n.endswith(".json")):
            record = _json_entry(zf, entry)
            if not isinstance(record, dict) or not isinstance(record.get("result"), dict):
                raise InvalidArgument(f"archive entry {entry!r} is not a cell output record")
            result, run = record["result"], dict(record.get("run") or {})
            cid = str(record.get("cell_id") or result.get("cell_id") or "")
            if not cid or result.get("status") != "ready" or not _rewrite(result, uris, known):
                continue
            try:
                store.put(CellResult.from_record(result))
            except (KeyError, TypeError, ValueError) as exc:
                raise InvalidArgument(f"archive entry {entry!r}: {exc}") from None
            run["last_result"] = result.get("provenance_hash")
            runtime.cells[cid] = run
            report["cells_restored"].append(cid)
        runtime.save()
        try:
            os.rename(scratch, target)
        except OSError as exc:
            raise Conflict(f"A notebook already exists at {target}") from exc
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return target, report


def _artifacts(
    zf: zipfile.ZipFile, names: list[str], state: Path, put: PutArtifact, report: dict[str, Any]
) -> dict[str, str]:
    if "artifacts/index.json" not in names:
        return {}
    index = _json_entry(zf, "artifacts/index.json")
    entries = index.get("artifacts") if isinstance(index, dict) else None
    if not isinstance(entries, list):
        raise InvalidArgument("artifacts/index.json has no 'artifacts' list")
    uris: dict[str, str] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not entry.get("included"):
            continue
        path, digest, old = entry.get("path"), entry.get("sha256"), entry.get("artifact_uri")
        if not isinstance(path, str) or path not in names or not isinstance(old, str):
            raise InvalidArgument(f"artifacts/index.json names a missing artifact {path!r}")
        temp = state / "import" / f"{uuid.uuid4().hex}.arrow"
        if _copy(zf, path, temp) != digest:
            raise InvalidArgument(f"artifact {path!r} does not match its sha256 in the index")
        try:
            uris[old] = put(temp)
        finally:
            temp.unlink(missing_ok=True)
        report["artifacts"] += 1
    shutil.rmtree(state / "import", ignore_errors=True)
    return uris
