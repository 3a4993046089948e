"""Where data lives: table URIs, Iceberg warehouses, and the artifact store.

The public door: URI parsing, warehouse resolution, the artifact store and its
records, the registry of aliases and tags, and the demo warehouse. Knows
nothing of HTTP, gRPC or notebooks.
"""

from __future__ import annotations

from catalog.build import Build
from catalog.demo import demo_batch, write_demo_warehouse
from catalog.dictionaries import has_dictionaries
from catalog.hashing import ChunkedSha256, chunked_sha256
from catalog.parts import PartInfo, PartStore, check_key
from catalog.pruning import Predicate
from catalog.reads import ReadLease
from catalog.records import (
    PROVISIONAL_PREFIX,
    ArtifactInfo,
    CorruptArtifact,
    InputVersion,
    NameInfo,
)
from catalog.registry import Registry
from catalog.renditions import RENDITION_FORMATS, Rendition, ipc_stream_span
from catalog.shared_renditions import SharedRendition
from catalog.store import ArtifactStore
from catalog.uris import ArtifactRef, NameRef, TableRef, artifact_uri, parse_uri, validate_name
from catalog.warehouse import ResolvedTable, Warehouses

__all__ = [
    "PROVISIONAL_PREFIX",
    "RENDITION_FORMATS",
    "ArtifactInfo",
    "ArtifactRef",
    "ArtifactStore",
    "Build",
    "ChunkedSha256",
    "CorruptArtifact",
    "InputVersion",
    "NameInfo",
    "NameRef",
    "PartInfo",
    "PartStore",
    "Predicate",
    "ReadLease",
    "Registry",
    "Rendition",
    "ResolvedTable",
    "SharedRendition",
    "TableRef",
    "Warehouses",
    "artifact_uri",
    "check_key",
    "chunked_sha256",
    "demo_batch",
    "has_dictionaries",
    "ipc_stream_span",
    "parse_uri",
    "validate_name",
    "write_demo_warehouse",
]
