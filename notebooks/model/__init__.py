"""The notebook as data: its folder on disk, names and paths, cell results, runtime state.

Everything here reads and writes a notebook's files (atomically) and nothing
runs code. The door: :class:`NotebookDir` and its TOML, the name and path
checks, the result store with its output shapes, the runtime state, the
caller's identity that owns a notebook, and the snapshot derived from the cells
(:class:`CellState`, :class:`Derived`, :func:`derive`).
"""

from __future__ import annotations

from notebooks.model.disk import (
    STATE,
    TOML,
    CellEntry,
    NotebookDir,
    iso,
    narrowed_mounts,
    now,
    requested_python,
    set_requested_python,
    slug,
)
from notebooks.model.outputs import (
    EMPTY_CELL_FIELDS,
    CellResult,
    ResultStore,
    clip,
    display_output,
    error_output,
    input_spec,
    markdown_output,
    pickle_size,
)
from notebooks.model.owner import caller, visible
from notebooks.model.paths import (
    NAME_TEXT_PATTERN,
    NOTEBOOK_NAME_PATTERN,
    STALE_TEMP_S,
    atomic_write,
    check_name,
    confine,
    inside,
    remove_stale_temps,
)
from notebooks.model.runtime import RuntimeState, read_env
from notebooks.model.snapshot import (
    CellState,
    Derived,
    analyse_cell,
    derive,
    merged_env,
    mounts_read,
    resolved_timeout,
    resolved_worker,
)

__all__ = [
    "EMPTY_CELL_FIELDS",
    "NAME_TEXT_PATTERN",
    "NOTEBOOK_NAME_PATTERN",
    "STALE_TEMP_S",
    "STATE",
    "TOML",
    "CellEntry",
    "CellResult",
    "CellState",
    "Derived",
    "NotebookDir",
    "ResultStore",
    "RuntimeState",
    "analyse_cell",
    "atomic_write",
    "caller",
    "check_name",
    "clip",
    "confine",
    "derive",
    "display_output",
    "error_output",
    "input_spec",
    "inside",
    "iso",
    "markdown_output",
    "merged_env",
    "mounts_read",
    "narrowed_mounts",
    "now",
    "pickle_size",
    "read_env",
    "remove_stale_temps",
    "requested_python",
    "resolved_timeout",
    "resolved_worker",
    "set_requested_python",
    "slug",
    "visible",
]
