"""The store's files: published versions, builds in progress, and how one goes away.

Layout under the store's root::

    artifacts/<id>/v<n>.arrow     published artifacts (Arrow IPC *file* format)
    artifacts/<id>/v<n>.parquet   their Parquet renditions, once asked for
    tmp/<id>.v<n>.<owner>.arrow   builds in progress (``owner``: :mod:`catalog.owners`)
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


class Files:
    """Where each version's file is, under one store root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.artifacts_dir = root / "artifacts"
        self.tmp_dir = root / "tmp"
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def path_of(self, artifact_id: str, version: int) -> Path:
        return self.artifacts_dir / artifact_id / f"v{version}.arrow"

    def temp_path(self, artifact_id: str, version: int, owner: str) -> Path:
        return self.tmp_dir / f"{artifact_id}.v{version}.{owner}.arrow"


def remove_published(path: Path) -> None:
    """Remove a published file with its renditions (``v<n>.parquet``, :mod:`catalog.renditions`),
    and its artifact's directory once that is empty.

    Callers hold the store's lock: a publish into the same directory renames
    under it too, so it never loses the directory to this rmdir.
    """
    path.unlink(missing_ok=True)
    for rendition in path.parent.glob(f"{path.stem}.*"):
        rendition.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
