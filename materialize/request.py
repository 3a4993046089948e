"""What a materialize request says, and what it answers.

:class:`MaterializeRequest` is the body of ``POST /v1/materialize`` and of the
Flight ``materialize`` action; :class:`MaterializeResult` is the answer, with
the build to follow when the result is still being written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from catalog import ArtifactInfo, Build, artifact_uri


class Transform(BaseModel):
    model_config = ConfigDict(extra="forbid")

    executor: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class MaterializeRequest(BaseModel):
    """The body of ``POST /v1/materialize`` and of the Flight ``materialize`` action."""

    model_config = ConfigDict(extra="forbid")

    inputs: list[str]
    transform: Transform
    name: str | None = None
    mode: str = "stream"
    refresh: bool = False
    stream_timeout_seconds: float | None = None


@dataclass(slots=True)
class MaterializeResult:
    hit: bool
    state: str
    artifact_id: str
    version: int
    provenance: str
    input_versions: dict[str, str]
    info: ArtifactInfo | None = None
    build: Build | None = None
    name_uri: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def artifact_uri(self) -> str:
        return artifact_uri(self.artifact_id, self.version)

    @property
    def schema(self) -> pa.Schema | None:
        if self.info is not None:
            return self.info.schema
        return self.build.schema if self.build is not None else None

    def to_json(self) -> dict[str, Any]:
        info = self.info
        schema = self.schema
        return {
            "hit": self.hit,
            "state": self.state,
            "artifact_uri": self.artifact_uri,
            "artifact_id": self.artifact_id,
            "version": self.version,
            "provenance_hash": self.provenance,
            "input_versions": self.input_versions,
            "row_count": info.row_count if info else None,
            "byte_size": info.byte_size if info else None,
            "columns": schema.names if schema is not None else None,
            "name_uri": self.name_uri,
            "error": info.error if info and info.state == "failed" else None,
        }
