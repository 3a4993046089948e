"""A notebook's Python environment, managed with uv (API.md §7, §2.4, §14.1).

The door of the room: the uv runner (``uv``), jobs and their history
(``jobs``), requirement parsing (``requirements``) and the environment
itself (``environment``).
"""

from __future__ import annotations

from notebooks.env.environment import (
    EnvFailed,
    Environment,
    busy,
    declared,
    ensure_venv,
    interpreter_for,
    kernel_python,
    resolved,
)
from notebooks.env.jobs import HISTORY, EnvJob
from notebooks.env.requirements import (
    Parsed,
    name_of,
    package_problem,
    parse_environment_yaml,
    parse_requirements,
    requirement,
)
from notebooks.env.uv import Log, uv_binary

__all__ = [
    "HISTORY",
    "EnvFailed",
    "EnvJob",
    "Environment",
    "Log",
    "Parsed",
    "busy",
    "declared",
    "ensure_venv",
    "interpreter_for",
    "kernel_python",
    "name_of",
    "package_problem",
    "parse_environment_yaml",
    "parse_requirements",
    "requirement",
    "resolved",
    "uv_binary",
]
