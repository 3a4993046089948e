"""Pluggable transforms. The public door: the protocol, its inputs, the registry, and the
time limit every DuckDB query runs under."""

from __future__ import annotations

from executors.base import (
    Executor,
    Partitioned,
    PartitionedExecutor,
    ResolvedInput,
    RunContext,
    Share,
)
from executors.duck import TimeLimit
from executors.registry import DuplicateExecutor, Registry, load_registry

__all__ = [
    "DuplicateExecutor",
    "Executor",
    "Partitioned",
    "PartitionedExecutor",
    "Registry",
    "ResolvedInput",
    "RunContext",
    "Share",
    "TimeLimit",
    "load_registry",
]
