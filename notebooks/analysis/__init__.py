"""Analysis and the DAG: what each cell defines and reads, the graph and staleness.

Pure functions of the cells' text and facts: nothing here touches the disk, a
kernel or the network. The door: :func:`analyse` (per language, never raising for
bad user code), the shared types, :func:`build_dag` and the staleness rules.
"""

from __future__ import annotations

from notebooks.analysis.cells import (
    EXTENSIONS,
    LANGUAGES,
    CellAnalysis,
    Diagnostic,
    parse_annotations,
)
from notebooks.analysis.dag import Dag, build_dag, cycles, topological_sort
from notebooks.analysis.dispatch import analyse, analyse_prompt
from notebooks.analysis.staleness import (
    CellFacts,
    Env,
    RunRecord,
    Staleness,
    compute_staleness,
    env_changes,
    is_mount,
    mount_inputs,
    provenance,
    source_hash,
)

__all__ = [
    "EXTENSIONS",
    "LANGUAGES",
    "CellAnalysis",
    "CellFacts",
    "Dag",
    "Diagnostic",
    "Env",
    "RunRecord",
    "Staleness",
    "analyse",
    "analyse_prompt",
    "build_dag",
    "compute_staleness",
    "cycles",
    "env_changes",
    "is_mount",
    "mount_inputs",
    "parse_annotations",
    "provenance",
    "source_hash",
    "topological_sort",
]
