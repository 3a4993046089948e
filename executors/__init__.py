"""Pluggable transforms. The public door: the protocol, its inputs, the registry."""

from __future__ import annotations

from executors.base import Executor, ResolvedInput, RunContext
from executors.duck import Interrupter
from executors.registry import DuplicateExecutor, Registry, load_registry

__all__ = [
    "DuplicateExecutor",
    "Executor",
    "Interrupter",
    "Registry",
    "ResolvedInput",
    "RunContext",
    "load_registry",
]
