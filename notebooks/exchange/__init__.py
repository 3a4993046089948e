"""Mounts, export (zip, snapshot, Markdown, HTML) and import (Jupyter, snapshot).

API.md §8 (mounts), §9 (export), §14.2. The door: the mount specs and their
fingerprints (``mounts``; ``mountpath`` runs inside kernels, loaded by path),
the export archives (``export``) and documents (``render``).
"""

from __future__ import annotations

from notebooks.exchange.export import (
    FORMATS,
    INCLUDES,
    bundle_entries,
    check_format,
    picture,
    safe_name,
    selected_cells,
    snapshot_entries,
    zip_chunks,
)
from notebooks.exchange.mounts import (
    HELPER,
    Mount,
    MountProbe,
    cell_mounts,
    kernel_spec,
    parse_mounts,
)
from notebooks.exchange.render import html_page, markdown

__all__ = [
    "FORMATS",
    "HELPER",
    "INCLUDES",
    "Mount",
    "MountProbe",
    "bundle_entries",
    "cell_mounts",
    "check_format",
    "html_page",
    "kernel_spec",
    "markdown",
    "parse_mounts",
    "picture",
    "safe_name",
    "selected_cells",
    "snapshot_entries",
    "zip_chunks",
]
