"""Where data lives: table URIs, Iceberg warehouses, and the artifact store.

The public door: URI parsing, warehouse resolution and the store. Knows
nothing of HTTP, gRPC or notebooks.
"""

from __future__ import annotations

from catalog.store import ArtifactInfo, ArtifactStore, Build, CorruptArtifact, InputVersion
from catalog.uris import ArtifactRef, NameRef, TableRef, artifact_uri, parse_uri, validate_name
from catalog.warehouse import ResolvedTable, Warehouses

__all__ = [
    "ArtifactInfo",
    "ArtifactRef",
    "ArtifactStore",
    "Build",
    "CorruptArtifact",
    "InputVersion",
    "NameRef",
    "ResolvedTable",
    "TableRef",
    "Warehouses",
    "artifact_uri",
    "parse_uri",
    "validate_name",
]
