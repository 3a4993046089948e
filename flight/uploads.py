"""DoPut uploads: content-addressed ones, and those whose provenance the client states.

Every upload is written once, straight into a store build (its temp file,
fsynced when it is published: an upload cannot be recomputed), and gets its
provenance at publish time. If a ready artifact already has that provenance the
new build is discarded and the existing artifact answers (``deduplicated:
true``); the store makes that check and the publish one transaction, so two
identical uploads arriving together end as one artifact.

**Content-addressed** (the default, :func:`store_content`). The provenance is

    "upload:" + sha256(b"quiver-upload-v2\0" + canonical JSON of the metadata
                       + b"\0" + sha256 of the artifact's IPC file)

where the file is what the store writes: the Arrow IPC *file* format (magic,
schema, the uploaded non-empty batches in order, footer) as pyarrow writes it,
uncompressed. It is hashed on a separate thread while it is written, so the
data is read once. The same batches (same schema, same batch boundaries) and
the same metadata give the same provenance; a different chunking of the same
rows is another artifact (a missed dedupe, never a wrong one). The digest of a
stored upload can be checked with ``sha256sum`` of its file. (``v1``
provenances hashed the IPC stream of a spool file; an upload stored under v1
is simply not matched by v2.)

**Stated** (:func:`stated_provenance`, :func:`store_stated`): strata-client's
``put`` uploads a result it computed itself and expects the server to
deduplicate by *provenance* — ``metadata = {inputs, transform}``: the same
inputs (at their current versions) and the same transform are the same
artifact, whatever bytes come the second time. An identical one answers the
existing artifact after the stream has been drained.

**Keyed** (:func:`keyed_provenance`): strata-client's ``put_by_provenance``
stores an opaque value under a provenance key the client computed and the
server cannot — ``metadata = {provenance_hash, content_type, variable_name?}``
(``PUT /v1/artifacts/by-provenance/{hash}`` sends the value as a one-row
table, :data:`BLOB_COLUMN`). First writer wins: a ready artifact whose
provenance is that hash (a server-computed one, e.g. from ``explain``) or a
value stored under it before answers instead, and the new stream is drained.
The key is stored as ``blob:<hash>``, never as the bare hash, so a client
cannot plant a value where a materialize would find it as its result.

**Lineage.** Every upload records the metadata's ``inputs`` (a list of URIs)
in the store, so ``lineage`` and ``dependents`` see them. Notebook kernels send
their cell's upstream artifact URIs there. For a stated provenance every input
must resolve (it is part of the provenance); for a content-addressed or keyed
upload the inputs are lineage only: an artifact URI is recorded as it is named (even if
that version has since been evicted), a name or table that no longer resolves
is recorded with version ``"unresolved"``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa

from catalog import (
    ArtifactInfo,
    ArtifactRef,
    Build,
    InputVersion,
    NameRef,
    TableRef,
    artifact_uri,
    parse_uri,
)
from flight.core import Core
from foundation import InvalidArgument, QuiverError

UPLOAD_HASH_PREFIX = b"quiver-upload-v2\0"
UNRESOLVED = "unresolved"
KEYED_PREFIX = "blob:"
"""The store provenance of a value put under a client's key is this prefix + the key."""
BLOB_COLUMN = "blob"
"""The one column (``large_binary``, one row) of a value put by provenance over REST."""
BLOB_MARKER = b"quiver.blob"
"""Schema metadata key set to ``b"1"`` on such a table; ``content_type`` is beside it."""
PROVENANCE_HASH_PATTERN = r"^[0-9a-f]{64}$"
"""A provenance key: a sha256 digest in lowercase hex (the OpenAPI document states it)."""
_HEX64 = re.compile(PROVENANCE_HASH_PATTERN)


@dataclass(frozen=True, slots=True)
class StatedProvenance:
    provenance: str
    executor: str | None
    params: Any
    inputs: list[InputVersion]
    incumbents: tuple[str, ...] = ()
    """Other provenances whose ready artifact, if any, answers instead (checked first)."""


def check_provenance_hash(value: object) -> str:
    """``value`` if it is a provenance key (a sha256: 64 lowercase hex characters), else an
    :class:`InvalidArgument` that says exactly what is wrong with it."""
    if not isinstance(value, str):
        raise InvalidArgument(
            f"provenance_hash must be a string of 64 lowercase hex characters, "
            f"not {type(value).__name__}"
        )
    if _HEX64.fullmatch(value):
        return value
    shown = value if len(value) <= 80 else value[:77] + "..."
    if len(value) != 64:
        why = f"it has {len(value)}"
    else:
        bad = next(c for c in value if c not in "0123456789abcdef")
        why = (
            "it has uppercase hex digits"
            if bad in "ABCDEF"
            else f"it has {bad!r}, which is not a hex digit"
        )
    raise InvalidArgument(
        f"invalid provenance_hash {shown!r}: a provenance hash is a sha256 digest, "
        f"64 lowercase hex characters (0-9, a-f); {why}",
        detail={"provenance_hash": shown, "expected": "64 lowercase hex characters"},
    )


def keyed_provenance(metadata: dict[str, Any]) -> StatedProvenance | None:
    """The key of a put by provenance (``metadata.provenance_hash``), or ``None``."""
    if "provenance_hash" not in metadata:
        return None
    key = check_provenance_hash(metadata["provenance_hash"])
    if metadata.get("transform") is not None:
        raise InvalidArgument(
            'upload metadata states both "provenance_hash" and "transform": give one '
            "(a key the client computed, or the inputs and transform the server hashes)"
        )
    content_type = metadata.get("content_type")
    if not isinstance(content_type, str) or not content_type.strip():
        raise InvalidArgument(
            'an upload keyed by "provenance_hash" needs "content_type" (a non-empty string): '
            "it is how readers decode the value, and nothing else records it"
        )
    variable = metadata.get("variable_name")
    if variable is not None and not isinstance(variable, str):
        raise InvalidArgument('upload metadata "variable_name" must be a string')
    return StatedProvenance(KEYED_PREFIX + key, None, None, [], incumbents=(key,))


def find_by_provenance(core: Core, key: str) -> ArtifactInfo | None:
    """The ready artifact a provenance key names: the one whose provenance is the key
    (computed by the server), else the value put under it; ``None`` on a miss."""
    for provenance in (key, KEYED_PREFIX + key):
        found = core.store.find_ready(provenance)
        if found is not None and core.store.verify(found):
            return found
    return None


def stated_provenance(core: Core, metadata: dict[str, Any]) -> StatedProvenance | None:
    """The provenance an upload's metadata states, or ``None`` when it states none
    (then it is content-addressed). A ``provenance_hash`` is a key (:func:`keyed_provenance`)."""
    keyed = keyed_provenance(metadata)
    if keyed is not None:
        return replace(keyed, inputs=lineage_inputs(core, metadata))
    transform = metadata.get("transform")
    if transform is None:
        return None
    if not isinstance(transform, dict):
        raise InvalidArgument('upload metadata "transform" must be an object')
    inputs = _input_uris(metadata)
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


def _input_uris(metadata: dict[str, Any]) -> list[str]:
    inputs = metadata.get("inputs", [])
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        raise InvalidArgument('upload metadata "inputs" must be a list of URIs')
    return inputs


def lineage_inputs(core: Core, metadata: dict[str, Any]) -> list[InputVersion]:
    """The metadata's ``inputs`` for lineage only: malformed URIs are refused,
    inputs that no longer resolve are still recorded (see the module docstring)."""
    versions = []
    for uri in _input_uris(metadata):
        ref = parse_uri(uri)  # InvalidArgument for anything but an accepted form
        if isinstance(ref, ArtifactRef):
            aid, version = ref.artifact_id, ref.version
            versions.append(InputVersion(uri, artifact_uri(aid, version), aid, version))
            continue
        try:
            versions.append(_resolve(core, uri))
        except QuiverError:
            versions.append(InputVersion(uri, UNRESOLVED))
    return versions


def upload_provenance(metadata: dict[str, Any], file_sha256: str) -> str:
    """The provenance of a content-addressed upload (see the module docstring)."""
    digest = hashlib.sha256(UPLOAD_HASH_PREFIX)
    digest.update(json.dumps(metadata, sort_keys=True, separators=(",", ":"), default=str).encode())
    digest.update(b"\0")
    digest.update(bytes.fromhex(file_sha256))
    return "upload:" + digest.hexdigest()


def _write_all(build: Build, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> None:
    build.start(schema)
    for batch in batches:
        if batch.num_rows:
            build.write(batch)


def store_content(
    core: Core,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    metadata: dict[str, Any],
) -> tuple[ArtifactInfo, bool]:
    """Store the stream content-addressed, in one pass; ``(info, deduplicated)``.

    A stream cut short (or any other error) discards the build: nothing of it
    is left in the store.
    """
    build = core.store.begin_build(
        provenance=None,
        executor=None,
        params=None,
        inputs=lineage_inputs(core, metadata),
        kind="upload",
        metadata=metadata,
        hash_content=True,
    )
    try:
        _write_all(build, schema, batches)
        file_sha256 = build.seal()
        assert file_sha256 is not None
        info = build.publish(provenance=upload_provenance(metadata, file_sha256))
    except BaseException:
        build.discard()
        raise
    return info, build.deduplicated


def store_stated(
    core: Core,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    stated: StatedProvenance,
    metadata: dict[str, Any],
) -> tuple[ArtifactInfo, bool]:
    """Store the stream under its stated provenance; ``(info, deduplicated)``."""
    store = core.store
    for provenance in (*stated.incumbents, stated.provenance):
        existing = store.find_ready(provenance)
        if existing is not None and store.verify(existing):
            for _ in batches:  # the client sends the data anyway: drain it
                pass
            return existing, True
    build = store.begin_build(
        provenance=None,
        executor=stated.executor,
        params=stated.params,
        inputs=stated.inputs,
        kind="upload",
        metadata=metadata,
    )
    try:
        _write_all(build, schema, batches)
        info = build.publish(provenance=stated.provenance)
    except BaseException:
        build.discard()
        raise
    return info, build.deduplicated
