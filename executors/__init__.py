"""Pluggable transforms. The public door: the protocol, its inputs, the registry, and the
time limit every DuckDB query runs under, and the database a query will take, opened ahead."""

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
from executors.spares import prepare as prepare_query_database

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
    "prepare_query_database",
]
