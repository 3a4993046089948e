"""Mounts, export (zip, snapshot, Markdown, HTML) and import (Jupyter, snapshot).

API.md §8 (mounts), §9 (export), §14.2. The door: the mount specs and their
fingerprints (``mounts``; ``mountpath`` runs inside kernels, loaded by path),
the export archives (``export``) and documents (``render``), the imports of a
Jupyter notebook (``jupyter``) and of a snapshot (``restore``).
"""

from __future__ import annotations

from notebooks.exchange.export import (
    FORMATS,
    INCLUDES,
    bundle_entries,
    check_format,
    chosen_artifacts,
    picture,
    safe_name,
    selected_cells,
    snapshot_entries,
    zip_chunks,
)
from notebooks.exchange.jupyter import IPYNB_LIMIT, read_ipynb, write_notebook
from notebooks.exchange.mounts import (
    HELPER,
    MOUNT_SECRET_PATTERN,
    MOUNT_URI_PATTERN,
    Mount,
    MountProbe,
    cell_mounts,
    kernel_spec,
    parse_mounts,
)
from notebooks.exchange.render import html_page, markdown
from notebooks.exchange.restore import open_archive, restore_archive

__all__ = [
    "FORMATS",
    "HELPER",
    "INCLUDES",
    "IPYNB_LIMIT",
    "MOUNT_SECRET_PATTERN",
    "MOUNT_URI_PATTERN",
    "Mount",
    "MountProbe",
    "bundle_entries",
    "cell_mounts",
    "check_format",
    "chosen_artifacts",
    "html_page",
    "kernel_spec",
    "markdown",
    "open_archive",
    "parse_mounts",
    "picture",
    "read_ipynb",
    "restore_archive",
    "safe_name",
    "selected_cells",
    "snapshot_entries",
    "write_notebook",
    "zip_chunks",
]
