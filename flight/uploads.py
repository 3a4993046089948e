"""Uploads whose provenance the client states: ``metadata = {inputs, transform}``.

strata-client's ``put`` uploads a result it computed itself and expects the
server to deduplicate by *provenance* — the same inputs (at their current
versions) and the same transform are the same artifact, whatever bytes come
the second time. Such an upload records its inputs for lineage, and an
identical one answers the existing artifact (``deduplicated: true``) after the
stream has been drained.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from catalog.store import ArtifactInfo, InputVersion
from catalog.uris import ArtifactRef, NameRef, TableRef, artifact_uri, parse_uri
from flight.core import Core
from quiver.errors import InvalidArgument


@dataclass(frozen=True, slots=True)
class StatedProvenance:
    provenance: str
    executor: str | None
    params: Any
    inputs: list[InputVersion]


def stated_provenance(core: Core, metadata: dict[str, Any]) -> StatedProvenance | None:
    """The provenance an upload's metadata states, or ``None`` when it states none."""
    transform = metadata.get("transform")
    if transform is None:
        return None
    inputs = metadata.get("inputs", [])
    if not isinstance(transform, dict):
        raise InvalidArgument('upload metadata "transform" must be an object')
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        raise InvalidArgument('upload metadata "inputs" must be a list of URIs')
    versions = [_resolve(core, uri) for uri in inputs]
    executor = transform.get("executor", transform.get("ref"))
    params = transform.get("params", {})
    blob = json.dumps(
        {
            "kind": "upload",
            "transform": {"executor": executor, "params": params},
            "inputs": sorted([v.uri, v.version] for v in versions),
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    digest = hashlib.sha256(blob.encode()).hexdigest()
    return StatedProvenance(
        digest, str(executor) if executor is not None else None, params, versions
    )


def _resolve(core: Core, uri: str) -> InputVersion:
    ref = parse_uri(uri)
    if isinstance(ref, TableRef):
        return InputVersion(uri, core.warehouses.resolve(ref).version)
    if isinstance(ref, NameRef):
        target = core.store.get_name(ref.name)
        aid, version = target.artifact_id, target.version
    else:
        assert isinstance(ref, ArtifactRef)
        aid, version = ref.artifact_id, ref.version
        core.store.get(aid, version)  # must exist
    return InputVersion(uri, artifact_uri(aid, version), aid, version)


def store_stated(
    core: Core,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    stated: StatedProvenance,
    metadata: dict[str, Any],
) -> tuple[ArtifactInfo, bool]:
    """Store the stream under its stated provenance; ``(info, deduplicated)``."""
    store = core.store
    existing = store.find_ready(stated.provenance)
    if existing is not None and store.verify(existing):
        for _ in batches:  # the client sends the data anyway: drain it
            pass
        return existing, True
    reader = pa.RecordBatchReader.from_batches(schema, (b for b in batches if b.num_rows))
    info = store.put(
        reader,
        provenance=stated.provenance,
        executor=stated.executor,
        params=stated.params,
        inputs=stated.inputs,
        metadata=metadata,
    )
    return info, False
