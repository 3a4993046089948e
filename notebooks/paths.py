"""Path confinement under the storage root, name checks and atomic writes."""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from pathlib import Path

from quiver.errors import InvalidArgument


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
    candidate = Path(raw).expanduser()
    if not candidate.is_absolute():
        candidate = root / candidate
    resolved = candidate.resolve()
    if resolved != root and not resolved.is_relative_to(root):
        raise InvalidArgument(
            f"Invalid {label}: must be inside configured notebook storage {where}"
        )
    return resolved


def check_name(name: str, label: str = "notebook name") -> str:
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


def inside(base: Path, rel: str) -> Path | None:
    """``base / rel`` when it stays inside ``base`` (symlinks followed), else None."""
    if "\0" in rel:
        return None
    target = (base / rel).resolve()
    base = base.resolve()
    return target if target.is_relative_to(base) and target != base else None
