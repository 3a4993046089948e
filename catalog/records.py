"""The records the artifact store hands out: artifact versions, names, inputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa

from catalog.uris import artifact_uri
from foundation import NotFound

State = Literal["building", "ready", "failed", "superseded"]

PROVISIONAL_PREFIX = "pending:"
"""Provenance of a build whose real provenance is given at publish time."""


class CorruptArtifact(NotFound):
    """A published file failed its integrity check; the artifact must be rebuilt."""


@dataclass(frozen=True, slots=True)
class InputVersion:
    """One input of an artifact as it was resolved for the build."""

    uri: str
    version: str
    artifact_id: str | None = None
    artifact_version: int | None = None


@dataclass(frozen=True, slots=True)
class ArtifactInfo:
    artifact_id: str
    version: int
    provenance: str
    state: State
    kind: str
    executor: str | None
    params: Any
    schema: pa.Schema | None
    row_count: int | None
    byte_size: int | None
    num_batches: int | None
    created_at: float
    finished_at: float | None
    last_read_at: float | None
    error: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    parts: int = 0
    """How many parts a partitioned version has (:mod:`catalog.partitioned`); 0: one file."""

    @property
    def uri(self) -> str:
        return artifact_uri(self.artifact_id, self.version)


@dataclass(frozen=True, slots=True)
class NameInfo:
    name: str
    artifact_id: str
    version: int
    updated_at: float

    @property
    def artifact_uri(self) -> str:
        return artifact_uri(self.artifact_id, self.version)

    @property
    def uri(self) -> str:
        return f"strata://name/{self.name}"
