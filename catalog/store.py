"""The artifact store: immutable Arrow IPC files plus their metadata in SQLite.

Layout under ``root``::

    store.db                      SQLite (WAL): artifacts, inputs, names, and the
                                  registry's aliases, tags and audit (catalog.audit)
    artifacts/<id>/v<n>.arrow     published artifacts (Arrow IPC *file* format)
    tmp/<id>.v<n>.<owner>.arrow   builds in progress
    parts/<id>/v<n>-<token>/...   parts of partitioned versions (catalog.partitioned), unless
                                  the part storage is elsewhere (a shared dir, S3)
    parts/renditions/<id>/...     renditions copied there for data nodes
                                  (catalog.shared_renditions)
    owners/<owner>.lock           one per open store, locked while it is open
                                  (catalog.owners: who is still alive)

:class:`ArtifactStore` is the one door to it; each concern is a part of its own:

- :mod:`catalog.database` — the schema, the one connection and lock, transactions;
- :mod:`catalog.recovery` — on open, no ``ready`` row without its complete file;
- :mod:`catalog.index` — reads of the metadata rows, lineage included;
- :mod:`catalog.publish` — builds: reserve, publish (deduplicating), fail, discard
  (a build itself, and its followers, is :mod:`catalog.build`);
- :mod:`catalog.reads` — leases and memory-mapped reads, integrity checks;
- :mod:`catalog.names` — names pointing at versions;
- :mod:`catalog.collect` — usage, gc, eviction under the byte cap, deletes.

Publishing is write-to-temp, (fsync), rename, then one transaction marks the
row ``ready``; a crash leaves no ``ready`` artifact without its complete file.
A derived artifact that was not fsynced is checked (size and IPC footer) when
it is opened; a damaged one is marked failed and reported as
:class:`CorruptArtifact` so the caller rebuilds it instead of serving it.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from catalog import owners
from catalog.build import Build
from catalog.collect import Collector
from catalog.database import Database
from catalog.files import Files
from catalog.index import Index
from catalog.names import Names
from catalog.partitioned import Parts
from catalog.parts import PartInfo, PartStore
from catalog.publish import Publisher
from catalog.reads import Leases, ReadLease, Reads
from catalog.records import ArtifactInfo, InputVersion, NameInfo
from catalog.recovery import ORPHAN_PARTS_GRACE_S, recover
from catalog.renditions import Renditions


class ArtifactStore:
    """Content-addressed, versioned, immutable artifacts. Thread-safe.

    One SQLite connection guarded by a lock; builds write files outside it.
    ``max_bytes`` caps the bytes of stored versions: past it, the
    least-recently-used versions that nothing needs (:meth:`needed`) are
    evicted. :meth:`gc` collects by age and size on request. On open, build prefixes
    of the part storage that nothing owns and that have not changed for
    ``orphan_parts_grace_s`` are removed (:meth:`recover`).
    """

    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int = 0,
        fsync_derived: bool = False,
        part_storage: str = "",
        orphan_parts_grace_s: float = ORPHAN_PARTS_GRACE_S,
    ) -> None:
        self.root = Path(root)
        self._orphan_parts_grace_s = orphan_parts_grace_s
        self._files = Files(self.root)
        self.db = Database(self.root / "store.db")
        self._owner = owners.Owner(self.root / "owners")
        self.parts = PartStore(part_storage or str(self.root.absolute() / "parts"))
        self._parts = Parts(self.parts, self._files.tmp_dir, self._owner.token, self.db.lock)
        self.recover()
        self._index = Index(self.db)
        self._leases = Leases(self.db.lock)
        self._reads = Reads(self.db, self._index, self._files, self._leases, self._parts)
        self._names = Names(self.db)
        self._collector = Collector(
            self.db, self._index, self._files, self._leases, max_bytes, self._parts
        )
        self._renditions = Renditions(self)
        self._publisher = Publisher(
            self.db,
            self._index,
            self._files,
            self._reads,
            self._leases,
            self._collector,
            self._owner.token,
            self._parts,
            fsync_derived=fsync_derived,
        )

    # --- lifecycle ---------------------------------------------------------
    def close(self) -> None:
        with self.db.lock:
            self.db.close()
            self._owner.close()

    def __enter__(self) -> ArtifactStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def lock(self) -> threading.RLock:
        """The store's one lock: every read of its index and every write takes it."""
        return self.db.lock

    @property
    def owner(self) -> str:
        """This open store's owner token: what its builds record (:mod:`catalog.owners`)."""
        return self._owner.token

    @property
    def max_bytes(self) -> int:
        """The byte cap of stored versions (0: none)."""
        return self._collector.max_bytes

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        self._collector.max_bytes = value

    @property
    def artifacts_dir(self) -> Path:
        return self._files.artifacts_dir

    @property
    def tmp_dir(self) -> Path:
        return self._files.tmp_dir

    def path_of(self, artifact_id: str, version: int) -> Path:
        return self._files.path_of(artifact_id, version)

    @property
    def renditions(self) -> Renditions:
        """The version's files other engines read by range (:mod:`catalog.renditions`)."""
        return self._renditions

    def recover(self) -> dict[str, int]:
        """Restore consistency after a crash; returns what was repaired."""
        return recover(
            self.db,
            self._files,
            self.root / "owners",
            self._parts,
            parts_grace_s=self._orphan_parts_grace_s,
        )

    # --- reading metadata (catalog.index) -----------------------------------
    def clear_caches(self) -> dict[str, int]:
        """Forget the decoded schemas (decoded again when next needed); how many were held."""
        return self._index.clear_caches()

    def find_ready(self, provenance: str) -> ArtifactInfo | None:
        return self._index.find_ready(provenance)

    def find_latest(self, provenance: str) -> ArtifactInfo | None:
        """The newest version with this provenance, whatever its state."""
        return self._index.find_latest(provenance)

    def get(self, artifact_id: str, version: int) -> ArtifactInfo:
        return self._index.get(artifact_id, version)

    def versions(self, artifact_id: str) -> list[ArtifactInfo]:
        return self._index.versions(artifact_id)

    def list(
        self,
        *,
        state: str | None = None,
        since: float | None = None,
        sort: Literal["created_at", "byte_size", "row_count", "last_read_at"] = "created_at",
        order: Literal["asc", "desc"] = "desc",
        limit: int = 100,
        offset: int = 0,
    ) -> list[ArtifactInfo]:
        return self._index.list(
            state=state, since=since, sort=sort, order=order, limit=limit, offset=offset
        )

    def inputs(self, artifact_id: str, version: int) -> list[InputVersion]:
        return self._index.inputs(artifact_id, version)

    def dependents(
        self, artifact_id: str, version: int, *, limit: int | None = None
    ) -> list[ArtifactInfo]:
        """The versions built from this one, oldest first; the first ``limit`` of them."""
        return self._index.dependents(artifact_id, version, limit=limit)

    # --- building (catalog.publish) ------------------------------------------
    def begin_build(
        self,
        *,
        provenance: str | None,
        executor: str | None,
        params: Any,
        inputs: Sequence[InputVersion],
        artifact_id: str | None = None,
        kind: str = "derived",
        metadata: dict[str, Any] | None = None,
        hash_content: bool = False,
    ) -> Build:
        """Reserve the next version in state ``building`` (:meth:`Publisher.begin_build`)."""
        return self._publisher.begin_build(
            provenance=provenance,
            executor=executor,
            params=params,
            inputs=inputs,
            artifact_id=artifact_id,
            kind=kind,
            metadata=metadata,
            hash_content=hash_content,
        )

    def put(
        self,
        reader: pa.RecordBatchReader,
        *,
        provenance: str,
        executor: str | None = None,
        params: Any = None,
        inputs: Sequence[InputVersion] = (),
        kind: str = "upload",
        metadata: dict[str, Any] | None = None,
    ) -> ArtifactInfo:
        """Store a whole stream as a new artifact (durable for uploads)."""
        return self._publisher.put(
            reader,
            provenance=provenance,
            executor=executor,
            params=params,
            inputs=inputs,
            kind=kind,
            metadata=metadata,
        )

    # --- reading data (catalog.reads) ----------------------------------------
    def readers(self, artifact_id: str, version: int) -> int:
        return self._leases.count(artifact_id, version)

    def verify(self, info: ArtifactInfo) -> bool:
        """Cheap check that a ready artifact's file is whole; marks it failed if not."""
        return self._reads.verify(info)

    def intact(self, info: ArtifactInfo) -> bool:
        """Whether a version's file (or every part) is stored whole; unlike :meth:`verify`,
        marks nothing."""
        return self._reads.intact(info)

    def parts_of(self, artifact_id: str, version: int) -> list[PartInfo]:
        """A partitioned version's parts in order (:mod:`catalog.partitioned`); [] for a
        one-file version."""
        return self._reads.parts_of(artifact_id, version)

    def open_file(self, artifact_id: str, version: int) -> pa.ipc.RecordBatchFileReader:
        """The memory-mapped IPC file reader of a ready artifact (random access)."""
        return self._reads.open_file(artifact_id, version)

    def open(
        self, artifact_id: str, version: int, *, start: int = 0, stop: int | None = None
    ) -> pa.RecordBatchReader:
        """Stream batches ``[start, stop)`` of a ready artifact, memory-mapped, zero-copy;
        leased (never evicted) until the reader is exhausted or closed."""
        return self._reads.open(artifact_id, version, start=start, stop=stop)

    def lease(self, artifact_id: str, version: int) -> ReadLease:
        """Keep a ready version from gc and eviction until the lease is released, its read
        noted as :meth:`open` does: for a reader of a file kept beside it (a rendition),
        which needs no batch reader opened."""
        return self._reads.lease(artifact_id, version)

    def read_small(self, artifact_id: str, version: int, max_bytes: int) -> pa.Table | None:
        """A ready one-file version of at most ``max_bytes``, whole in memory; None when it
        is larger, partitioned or still building (stream it with :meth:`open`)."""
        return self._reads.read_small(artifact_id, version, max_bytes)

    def open_table(self, artifact_id: str, version: int) -> pa.Table:
        """The whole artifact as a table backed by the memory map (no copy)."""
        return self._reads.open_table(artifact_id, version)

    # --- names (catalog.names) -------------------------------------------------
    def set_name(self, name: str, artifact_id: str, version: int) -> NameInfo:
        return self._names.set(name, artifact_id, version)

    def get_name(self, name: str) -> NameInfo:
        return self._names.get(name)

    def list_names(self, prefix: str | None = None) -> list[NameInfo]:
        return self._names.list(prefix)

    def delete_name(self, name: str) -> None:
        self._names.delete(name)

    def names_of(self, artifact_id: str, version: int) -> list[str]:
        return self._names.of(artifact_id, version)

    # --- usage, gc, eviction, deletes (catalog.collect) -----------------------
    def stats(self) -> dict[str, Any]:
        return self._collector.stats()

    def delete(self, artifact_id: str, version: int) -> None:
        """Delete one version (its file, row, inputs, tags and the names pointing at it).

        Conflict while it builds, or while an alias points at it (catalog.registry).
        """
        self._collector.delete(artifact_id, version)

    def touch(self, artifact_id: str, version: int, *, at: float | None = None) -> None:
        """Record a use of a version; gc's idleness counts from it."""
        self._collector.touch(artifact_id, version, at=at)

    def note_use(self, artifact_id: str, version: int, *, every_s: float = 60.0) -> None:
        """:meth:`touch` for the cache-hit path: at most one write per version per ``every_s``."""
        self._collector.note_use(artifact_id, version, every_s=every_s)

    def usage(self) -> dict[str, Any]:
        """What the stored versions weigh, and how much of it gc could collect."""
        return self._collector.usage()

    def needed(self, *, collect_latest: bool = False) -> set[tuple[str, int]]:
        """The versions gc and eviction never collect, plus those being read."""
        return self._collector.needed(collect_latest=collect_latest)

    def evict(
        self, *, keep: Collection[tuple[str, int]] = (), target_bytes: int | None = None
    ) -> list[str]:
        """Evict least-recently-used versions nothing needs until the store is under the cap."""
        return self._collector.evict(keep=keep, target_bytes=target_bytes)

    def gc(
        self,
        *,
        max_bytes: int | None = None,
        max_idle_s: float | None = None,
        min_idle_s: float = 0.0,
        collect_latest: bool = False,
        dry_run: bool = False,
        failed_older_than_s: float = 3600.0,
        now: float | None = None,
    ) -> dict[str, Any]:
        """Collect the versions nothing needs, least recently used first
        (:meth:`Collector.gc` states the order and what is never collected)."""
        return self._collector.gc(
            max_bytes=max_bytes,
            max_idle_s=max_idle_s,
            min_idle_s=min_idle_s,
            collect_latest=collect_latest,
            dry_run=dry_run,
            failed_older_than_s=failed_older_than_s,
            now=now,
        )
