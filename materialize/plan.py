"""Planning: resolve every input to a version and hash the provenance.

1. Resolve every input to a version: a table to its current (or pinned)
   snapshot, an artifact URI to itself, a name to what it points at.
2. Provenance = sha256 over the executor, its canonical params identity and
   the (input, version) pairs (sorted unless the executor's result depends on
   input order, as ``sql@v1``'s does: it binds inputs by position).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from pydantic import BaseModel

from catalog import (
    ArtifactRef,
    ArtifactStore,
    InputVersion,
    NameRef,
    TableRef,
    Warehouses,
    artifact_uri,
    parse_uri,
)
from executors import Executor, Registry, ResolvedInput, RunContext
from foundation import Conflict, InvalidArgument, Settings
from materialize.request import MaterializeRequest

ScanTable = Callable[[str, int | None], pa.Table]
"""Materializes a table input as a plain ``scan@v1`` artifact and opens it (memory-mapped)."""

CachedScanTable = Callable[[str, int | None], pa.Table | None]
"""Opens a table input's plain ``scan@v1`` artifact if it is built, else None (builds nothing)."""


class NotCached(Exception):
    """Planning would have to open a catalog or load table metadata (see ``cached_only``)."""


@dataclass(slots=True)
class Plan:
    """A request resolved and validated, ready to hit the cache or build."""

    executor: Executor
    params: BaseModel
    identity: Any
    inputs: list[ResolvedInput]
    versions: list[InputVersion]
    provenance: str

    @property
    def input_versions(self) -> dict[str, str]:
        return {v.uri: v.version for v in self.versions}


class Planner:
    """Resolves requests against the store, the warehouses and the executor registry.

    ``scan_table`` is how a table read by another executor becomes a table: the
    materializer builds it as a plain scan first (cached, shared, and
    memory-mapped rather than held in RAM); ``cached_scan_table`` opens that scan
    only if it is already built.
    """

    def __init__(
        self,
        settings: Settings,
        store: ArtifactStore,
        registry: Registry,
        warehouses: Warehouses,
        scan_table: ScanTable,
        cached_scan_table: CachedScanTable | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.warehouses = warehouses
        self._scan_table = scan_table
        self._cached_scan_table = cached_scan_table

    def plan(self, request: MaterializeRequest, *, cached_only: bool = False) -> Plan:
        """Resolve inputs and hash the provenance. ``cached_only`` raises :class:`NotCached`
        rather than open a catalog or load table metadata."""
        executor = self.registry.get(request.transform.executor)
        if not request.inputs and executor.name == "scan@v1":
            raise InvalidArgument("scan@v1 transform requires exactly one input")
        executor.check_inputs(request.inputs)
        params = self.registry.parse_params(executor, request.transform.params)
        identity = executor.identity(params)
        snapshot_id = getattr(params, "snapshot_id", None)
        inputs: list[ResolvedInput] = []
        versions: list[InputVersion] = []
        for raw in request.inputs:
            ref = parse_uri(raw)
            if isinstance(ref, TableRef):
                resolved, version = self._resolve_table(ref, snapshot_id, cached_only=cached_only)
            else:
                resolved, version = self._resolve_artifact(ref)
            inputs.append(resolved)
            versions.append(version)
        keyed = [
            [v.uri, v.version, r.extra.get("table_uuid", "")]
            for v, r in zip(versions, inputs, strict=True)
        ]
        if not executor.ordered_inputs:
            keyed.sort()
        blob = json.dumps(
            {"executor": executor.name, "identity": identity, "inputs": keyed},
            sort_keys=True,
            separators=(",", ":"),
            default=str,
        )
        provenance = hashlib.sha256(blob.encode()).hexdigest()
        return Plan(executor, params, identity, inputs, versions, provenance)

    def _resolve_artifact(self, ref: ArtifactRef | NameRef) -> tuple[ResolvedInput, InputVersion]:
        if isinstance(ref, NameRef):
            target = self.store.get_name(ref.name)
            aid, ver = target.artifact_id, target.version
        else:
            aid, ver = ref.artifact_id, ref.version
        info = self.store.get(aid, ver)
        if info.state not in ("ready", "superseded"):
            raise Conflict(
                f"input {ref.uri} is not ready (state={info.state})",
                detail={"input": ref.uri, "state": info.state},
            )
        uri = artifact_uri(aid, ver)
        resolved = ResolvedInput(
            uri=ref.uri,
            kind="artifact",
            version=uri,
            open_table=lambda: self.store.open_table(aid, ver),
            open_reader=lambda: self.store.open(aid, ver),
            extra={"artifact_id": aid, "version": ver, "schema": info.schema},
        )
        return resolved, InputVersion(ref.uri, uri, aid, ver)

    def _resolve_table(
        self, ref: TableRef, snapshot_id: int | None, *, cached_only: bool = False
    ) -> tuple[ResolvedInput, InputVersion]:
        if cached_only:
            cached = self.warehouses.resolve_cached(ref, snapshot_id)
            if cached is None:
                raise NotCached
            table = cached
        else:
            table = self.warehouses.resolve(ref, snapshot_id)
        uri = ref.uri

        def open_reader() -> pa.RecordBatchReader:
            scan = self.registry.get("scan@v1")
            return scan.run([resolved], scan.params_model(), RunContext(self.settings))

        resolved = ResolvedInput(
            uri=uri,
            kind="table",
            version=table.version,
            open_table=lambda: self._scan_table(uri, snapshot_id),
            open_reader=open_reader,
            table=table,
            snapshot_id=table.snapshot_id,
            extra={"table_uuid": table.table_uuid},
        )
        if self._cached_scan_table is not None:
            cached = self._cached_scan_table
            resolved.cached_table = lambda: cached(uri, snapshot_id)
        return resolved, InputVersion(uri, table.version)
