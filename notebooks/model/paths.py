"""Path confinement under the storage root, name checks and atomic writes."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from pathlib import Path

from foundation import InvalidArgument

NAME_MAX = 255
PATH_MAX = 4096
"""Linux's limits: a longer name or path fails in the file system (ENAMETOOLONG)."""


def confine(root: Path, raw: str, label: str) -> Path:
    """Resolve a user-supplied path inside ``root`` or raise ``InvalidArgument``.

    Relative paths resolve against the root. A ``..`` segment, a NUL byte, or a
    path (symlinks followed) that lands outside the root is refused, naming the root.
    """
    root = root.expanduser().resolve()
    where = f"(notebook storage: {root})"
    if "\0" in raw:
        raise InvalidArgument(f"Invalid {label}: NUL byte not allowed {where}")
    parts = raw.replace("\\", "/").split("/")
    if ".." in parts:
        raise InvalidArgument(f"Invalid {label}: path traversal not allowed {where}")
    try:
        candidate = Path(raw).expanduser()
        if not candidate.is_absolute():
            candidate = root / candidate
        resolved = candidate.resolve()
        encoded = os.fsencode(resolved)
    except RuntimeError as exc:  # "~nobody"
        raise InvalidArgument(f"Invalid {label}: {exc} {where}") from None
    except UnicodeEncodeError:  # a lone surrogate, which a JSON string may carry
        raise InvalidArgument(f"Invalid {label}: not valid text {where}") from None
    if len(encoded) > PATH_MAX or any(len(p) > NAME_MAX for p in encoded.split(b"/")):
        raise InvalidArgument(
            f"Invalid {label}: longer than the file system allows ({NAME_MAX} bytes a "
            f"name, {PATH_MAX} a path) {where}"
        )
    if resolved != root and not resolved.is_relative_to(root):
        raise InvalidArgument(
            f"Invalid {label}: must be inside configured notebook storage {where}"
        )
    return resolved


_NAME_PART = r"[^./\\\x00]+"
NAME_TEXT_PATTERN = rf"^\.?(?:{_NAME_PART}\.?)*$"
"""What :func:`check_name` accepts: no '/', '\\', '..' or NUL (the OpenAPI document
states it; a test holds the two to the same answers)."""
NOTEBOOK_NAME_PATTERN = rf"^\.?{_NAME_PART}(?:\.{_NAME_PART})*\.?$"
"""A name a new notebook may take: :data:`NAME_TEXT_PATTERN` and something besides dots
(its folder is named after it), as ``NotebookManager.create`` checks it."""


def check_name(name: str, label: str = "notebook name") -> str:
    try:
        name.encode("utf-8")  # a lone surrogate (a JSON "\\ud800") would make the TOML unreadable
    except UnicodeEncodeError:
        raise InvalidArgument(f"Invalid {label}: not valid text (a lone surrogate)") from None
    bad = [s for s in ("/", "\\", "..", "\0") if s in name]
    if bad:
        shown = "NUL" if bad[0] == "\0" else repr(bad[0])
        raise InvalidArgument(
            f"Invalid {label}: must not contain {shown} (no '/', '\\', '..' or NUL)"
        )
    return name


def atomic_write(path: Path, data: str | bytes, *, durable: bool = True) -> None:
    """Write ``path`` via a temp file in the same directory and a rename.

    Readers see the old or the new content, never a truncated file; with
    ``durable`` the data is fsynced before the rename, so a crash cannot
    publish an empty file either.
    """
    payload = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=f".{uuid.uuid4().hex[:6]}.tmp"
    )
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


STALE_TEMP_S = 60.0
"""A temp file of :func:`atomic_write` this old was left by a crash: a write takes
milliseconds, and a younger one may belong to a write in progress."""


def remove_stale_temps(directory: Path, *, older_than_s: float = STALE_TEMP_S) -> int:
    """Remove the temp files a crashed :func:`atomic_write` left in ``directory``; how many."""
    removed = 0
    cutoff = time.time() - older_than_s
    for temp in directory.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            if temp.is_file() and temp.stat().st_mtime < cutoff:
                temp.unlink()
                removed += 1
    return removed


def inside(base: Path, rel: str) -> Path | None:
    """``base / rel`` when it stays inside ``base`` (symlinks followed), else None."""
    if "\0" in rel:
        return None
    target = (base / rel).resolve()
    base = base.resolve()
    return target if target.is_relative_to(base) and target != base else None
