"""The argument models and JSON shapes the actions share.

An action names an artifact version by ``{"artifact_uri"}`` (an artifact or a
name URI) or ``{"artifact_id", "version"}`` (:class:`ArtifactArg`); a build or
stream by its id (:func:`build_id`, :func:`parse_build_id`).
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from catalog import ArtifactInfo, ArtifactRef, NameRef, artifact_uri, parse_uri
from flight.core import Core
from flight.protocol import ArtifactTicket
from foundation import InvalidArgument, NotFound


class Empty(BaseModel):
    """The body of an action that takes no arguments."""

    model_config = ConfigDict(extra="forbid")


class ArtifactArg(BaseModel):
    """Names one artifact version: a URI (artifact or name) or an id and version."""

    model_config = ConfigDict(extra="forbid")

    artifact_uri: str | None = None
    artifact_id: str | None = None
    version: int | None = Field(default=None, ge=1)

    def resolve(self, core: Core) -> tuple[str, int]:
        if self.artifact_uri is not None:
            ref = parse_uri(self.artifact_uri)
            if isinstance(ref, ArtifactRef):
                return ref.artifact_id, ref.version
            if isinstance(ref, NameRef):
                target = core.store.get_name(ref.name)
                return target.artifact_id, target.version
            raise InvalidArgument("artifact_uri must be a strata://artifact/ or strata://name/ URI")
        if self.artifact_id is None or self.version is None:
            raise InvalidArgument('give "artifact_uri", or "artifact_id" and "version"')
        ref = parse_uri(artifact_uri(self.artifact_id, self.version))
        assert isinstance(ref, ArtifactRef)
        return ref.artifact_id, ref.version


class NameArg(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str


def schema_json(schema: Any) -> list[dict[str, Any]] | None:
    if schema is None:
        return None
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


def info_json(info: ArtifactInfo) -> dict[str, Any]:
    """An artifact's status; the fields of ``GET /v1/artifacts/{id}/v/{n}`` and more."""
    return {
        "artifact_id": info.artifact_id,
        "version": info.version,
        "artifact_uri": info.uri,
        "state": info.state,
        "kind": info.kind,
        "executor": info.executor,
        "params": info.params,
        "schema": schema_json(info.schema),
        "row_count": info.row_count,
        "byte_size": info.byte_size,
        "num_batches": info.num_batches,
        "created_at": info.created_at,
        "finished_at": info.finished_at,
        "provenance_hash": info.provenance,
        "error": info.error,
        "metadata": info.metadata,
        "ticket": ArtifactTicket(info.artifact_id, info.version).encode().decode(),
    }


def build_id(artifact_id: str, version: int) -> str:
    """The id of the build of one version: the artifact id for v1, ``{id}.v{n}`` after.

    Artifact ids never contain ``.``, so the two forms cannot collide. Stream ids
    are the same ids: ``GET /v1/streams/{id}`` follows the build of that version.
    """
    return artifact_id if version == 1 else f"{artifact_id}.v{version}"


_BUILD_ID = re.compile(r"^(?P<id>[A-Za-z0-9][A-Za-z0-9_-]{0,127})(?:\.v(?P<version>[1-9]\d*))?$")


def parse_build_id(core: Core, raw: str) -> ArtifactInfo:
    """The artifact version a build (or stream) id names; ``NotFound`` if none."""
    m = _BUILD_ID.match(raw)
    if m is not None:
        if m["version"] is not None:
            with contextlib.suppress(NotFound):
                return core.store.get(m["id"], int(m["version"]))
        else:
            with contextlib.suppress(NotFound):  # a bare id names version 1 (see build_id)
                return core.store.get(m["id"], 1)
    raise NotFound(f"Build {raw} not found", detail={"build_id": raw})
