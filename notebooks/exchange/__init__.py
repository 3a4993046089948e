"""Mounts, export (zip, snapshot, Markdown, HTML) and import (Jupyter, snapshot).

API.md §8 (mounts), §9 (export), §14.2. The door: the mount specs and their
fingerprints (``mounts``; ``mountpath`` runs inside kernels, loaded by path).
"""

from __future__ import annotations

from notebooks.exchange.mounts import (
    HELPER,
    Mount,
    MountProbe,
    cell_mounts,
    kernel_spec,
    parse_mounts,
)

__all__ = ["HELPER", "Mount", "MountProbe", "cell_mounts", "kernel_spec", "parse_mounts"]
