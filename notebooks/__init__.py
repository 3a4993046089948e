"""The notebook domain: cells on disk, their DAG and staleness, sessions, running cells.

The public door, for the transports (``rest``): the session manager and its
sessions, the runners that execute cells, the JSON shapes and WebSocket frame
payloads of a session's state, and the checks of names and paths a route makes
before it reaches a session. Data moves through the ``flight`` client only.
"""

from __future__ import annotations

from notebooks.ai import (
    TOOLS,
    Agents,
    NotebookTools,
    PromptCells,
    ProviderFailed,
    RateLimited,
    Tool,
    ai_complete,
    ai_config,
    ai_models,
    ai_status,
    ai_stream,
    set_ai_model,
)
from notebooks.analysis import LANGUAGES
from notebooks.env import (
    Environment,
    EnvJob,
    Parsed,
    busy,
    declared,
    name_of,
    package_problem,
    parse_environment_yaml,
    parse_requirements,
    requirement,
    resolved,
)
from notebooks.exchange import (
    IPYNB_LIMIT,
    MOUNT_SECRET_PATTERN,
    MOUNT_URI_PATTERN,
    bundle_entries,
    check_format,
    html_page,
    markdown,
    open_archive,
    parse_mounts,
    picture,
    read_ipynb,
    restore_archive,
    safe_name,
    selected_cells,
    snapshot_entries,
    write_notebook,
    zip_chunks,
)
from notebooks.executions import Executions
from notebooks.frames import dag_update, impact_preview, profiling_summary, status_payload
from notebooks.manager import NotebookManager
from notebooks.model import (
    NAME_TEXT_PATTERN,
    NOTEBOOK_NAME_PATTERN,
    TOML,
    caller,
    confine,
    requested_python,
    set_requested_python,
)
from notebooks.presence import LOCAL, identity
from notebooks.runner import MODES, FlightConfig, Runner
from notebooks.serialize import (
    cell_json,
    cells_json,
    cells_list,
    dag_dict,
    dumps,
    environment_dict,
    state_dict,
)
from notebooks.session import Session

__all__ = [
    "IPYNB_LIMIT",
    "LANGUAGES",
    "LOCAL",
    "MODES",
    "MOUNT_SECRET_PATTERN",
    "MOUNT_URI_PATTERN",
    "NAME_TEXT_PATTERN",
    "NOTEBOOK_NAME_PATTERN",
    "TOML",
    "TOOLS",
    "Agents",
    "EnvJob",
    "Environment",
    "Executions",
    "FlightConfig",
    "NotebookManager",
    "NotebookTools",
    "Parsed",
    "PromptCells",
    "ProviderFailed",
    "RateLimited",
    "Runner",
    "Session",
    "Tool",
    "ai_complete",
    "ai_config",
    "ai_models",
    "ai_status",
    "ai_stream",
    "bundle_entries",
    "busy",
    "caller",
    "cell_json",
    "cells_json",
    "cells_list",
    "check_format",
    "confine",
    "dag_dict",
    "dag_update",
    "declared",
    "dumps",
    "environment_dict",
    "html_page",
    "identity",
    "impact_preview",
    "markdown",
    "name_of",
    "open_archive",
    "package_problem",
    "parse_environment_yaml",
    "parse_mounts",
    "parse_requirements",
    "picture",
    "profiling_summary",
    "read_ipynb",
    "requested_python",
    "requirement",
    "resolved",
    "restore_archive",
    "safe_name",
    "selected_cells",
    "set_ai_model",
    "set_requested_python",
    "snapshot_entries",
    "state_dict",
    "status_payload",
    "write_notebook",
    "zip_chunks",
]
