"""Local Iceberg warehouses: table URIs → pyiceberg tables, snapshots and data files.

A warehouse is a directory holding pyiceberg's SQL catalog in ``catalog.db`` at
its root. :class:`Warehouses` keeps one ``SqlCatalog`` per warehouse directory
(opening one builds a SQLAlchemy engine and checks the catalog tables, which
is the slow part of a load) and a small cache of file plans, keyed by the
immutable metadata file, the snapshot and the filters.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog.pruning import Predicate, pruning_expression
from catalog.uris import TableRef
from foundation import InvalidArgument, NotFound

if TYPE_CHECKING:
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.schema import Schema
    from pyiceberg.table import FileScanTask, Table

DEFAULT_CATALOG_NAME = "strata"
_PLAN_CACHE_SIZE = 256


@dataclass(frozen=True)
class ResolvedTable:
    """A table pinned to one snapshot (``None`` when the table has none)."""

    ref: TableRef
    table: Table
    snapshot_id: int | None
    schema: Schema
    table_uuid: str

    @property
    def version(self) -> str:
        return "empty" if self.snapshot_id is None else str(self.snapshot_id)


FileId = tuple[int, int]
"""A file's identity: (device, inode)."""


def catalog_file_id(warehouse: str) -> FileId | None:
    """The identity of the warehouse's ``catalog.db`` now; ``None`` when there is none.

    A catalog or connection opened on that file keeps reading it after it is
    replaced (a warehouse deleted and written again, a ``catalog.db`` renamed
    over) or moved away, so whatever was opened on it is trusted only while
    the path still names the same file. (While it is open the old file keeps its
    inode, so a new file never shares it.)
    """
    try:
        st = os.stat(os.path.join(warehouse, "catalog.db"))
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def catalog_name_of(db_path: Path) -> str:
    """``strata``, unless the database holds tables under exactly one other name."""
    try:
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    except sqlite3.Error:
        return DEFAULT_CATALOG_NAME
    try:
        rows = con.execute("SELECT DISTINCT catalog_name FROM iceberg_tables").fetchall()
    except sqlite3.Error:
        return DEFAULT_CATALOG_NAME
    finally:
        con.close()
    names = {r[0] for r in rows}
    if DEFAULT_CATALOG_NAME not in names and len(names) == 1:
        return names.pop()
    return DEFAULT_CATALOG_NAME


class Warehouses:
    """Thread-safe access to local warehouses, one cached catalog per directory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._catalogs: dict[str, SqlCatalog] = {}
        self._catalog_files: dict[str, FileId | None] = {}  # what each catalog was opened on
        self._plans: OrderedDict[Hashable, list[FileScanTask]] = OrderedDict()
        # Fast path for resolving: the table's metadata location straight from
        # catalog.db (~10 µs) and the table loaded from it, reused until it moves.
        self._pointers: dict[str, tuple[sqlite3.Connection, FileId]] = {}
        self._tables: dict[tuple[str, str], tuple[str, Table]] = {}
        self._resolved: dict[tuple[TableRef, str, int | None], ResolvedTable] = {}
        self._seen: set[str] = set()  # every warehouse opened, kept across clear()

    def catalog(self, warehouse: str) -> SqlCatalog:
        file_id = catalog_file_id(warehouse)
        cached = self._catalogs.get(warehouse)
        if (
            cached is not None
            and file_id is not None
            and self._catalog_files.get(warehouse) == file_id
        ):
            return cached
        wh = Path(warehouse)
        db = wh / "catalog.db"
        if not wh.is_dir():
            raise NotFound(
                f"warehouse {warehouse} does not exist (no such directory)",
                detail={"warehouse": warehouse, "reason": "no such directory"},
            )
        if not db.is_file():
            raise NotFound(
                f"warehouse {warehouse} has no catalog.db (not an Iceberg SQL-catalog warehouse)",
                detail={"warehouse": warehouse, "reason": "no catalog.db"},
            )
        with self._lock:
            cached = self._catalogs.get(warehouse)
            if cached is not None and self._catalog_files.get(warehouse) == file_id:
                return cached
            # None yet, or one opened on a catalog.db that has been replaced since.
            stale = self._catalogs.pop(warehouse, None)
            pointer = self._pointers.pop(warehouse, None)
            if pointer is not None:
                pointer[0].close()
            from pyiceberg.catalog.sql import SqlCatalog

            catalog = SqlCatalog(
                catalog_name_of(db), uri=f"sqlite:///{db}", warehouse=f"file://{wh}"
            )
            self._catalogs[warehouse] = catalog
            self._catalog_files[warehouse] = file_id
            self._seen.add(warehouse)
        if stale is not None:
            stale.engine.dispose()
        return catalog

    def seen(self) -> list[str]:
        """Every warehouse directory this process has opened a catalog of (a :meth:`clear`
        forgets the catalogs, not this list)."""
        with self._lock:
            return sorted(self._seen)

    @staticmethod
    def probe(warehouse: str) -> dict[str, Any]:
        """Can the warehouse be read now? ``{status: "ok", tables}`` or ``{status: "error",
        detail}``. Reads ``catalog.db`` read-only; opens no catalog and caches nothing."""
        db = os.path.join(warehouse, "catalog.db")
        if not os.path.isfile(db):
            why = "no such directory" if not os.path.isdir(warehouse) else "no catalog.db"
            return {"status": "error", "detail": f"{why}: {warehouse}"}
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)
            try:
                (tables,) = con.execute("SELECT COUNT(*) FROM iceberg_tables").fetchone()
            finally:
                con.close()
        except sqlite3.Error as exc:
            return {"status": "error", "detail": f"catalog.db cannot be read: {exc}"}
        return {"status": "ok", "tables": tables}

    def _metadata_location(
        self, ref: TableRef, catalog: SqlCatalog, *, wait: bool = True
    ) -> str | None:
        """The table's metadata pointer in ``catalog.db``, read now; ``None`` when it cannot
        be read, or when ``catalog.db`` is no longer the file ``catalog`` was opened on.

        The lookup never waits for a writer of ``catalog.db`` (a busy database is
        ``None``: pyiceberg's own read waits, or the caller falls back to it); with
        ``wait=False`` it does not wait for another thread either (one opening a
        catalog holds the lock for as long as that takes).
        """
        file_id = catalog_file_id(ref.warehouse)
        if not self._lock.acquire(blocking=wait):
            return None
        try:
            if file_id is None or self._catalog_files.get(ref.warehouse) != file_id:
                return None
            pointer = self._pointers.get(ref.warehouse)
            if pointer is None or pointer[1] != file_id:
                if pointer is not None:
                    pointer[0].close()
                uri = f"file:{os.path.join(ref.warehouse, 'catalog.db')}?mode=ro"
                con = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=0)
                self._pointers[ref.warehouse] = (con, file_id)
            else:
                con = pointer[0]
            try:
                row = con.execute(
                    "SELECT metadata_location FROM iceberg_tables WHERE catalog_name=? "
                    "AND table_namespace=? AND table_name=?",
                    (catalog.name, ".".join(ref.namespace), ref.table),
                ).fetchone()
            except sqlite3.Error:
                return None
        finally:
            self._lock.release()
        return row[0] if row else None

    def load(self, ref: TableRef) -> Table:
        from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

        catalog = self.catalog(ref.warehouse)
        location = self._metadata_location(ref, catalog)
        key = (ref.warehouse, ref.identifier)
        with self._lock:
            cached = self._tables.get(key)
        if location is not None and cached is not None and cached[0] == location:
            return cached[1]
        try:
            table = catalog.load_table((*ref.namespace, ref.table))
        except (NoSuchTableError, NoSuchNamespaceError):
            pass
        else:
            with self._lock:
                self._tables[key] = (table.metadata_location, table)
            return table
        namespace = ".".join(ref.namespace)
        if not catalog.namespace_exists(ref.namespace):
            existing = sorted(".".join(n) for n in catalog.list_namespaces())
            raise NotFound(
                f"namespace {namespace!r} does not exist in warehouse {ref.warehouse}; "
                f"namespaces: {', '.join(existing) or '(none)'}",
                detail={"uri": ref.uri, "namespace": namespace, "namespaces": existing},
            ) from None
        tables = sorted(".".join(t) for t in catalog.list_tables(ref.namespace))
        raise NotFound(
            f"table {ref.identifier!r} does not exist in warehouse {ref.warehouse}; "
            f"tables in {namespace!r}: {', '.join(tables) or '(none)'}",
            detail={"uri": ref.uri, "table": ref.identifier, "tables": tables},
        ) from None

    def snapshots(self, ref: TableRef) -> list[int]:
        """Snapshot ids of the table, oldest first."""
        return [s.snapshot_id for s in self.load(ref).snapshots()]

    def resolve_cached(self, ref: TableRef, snapshot_id: int | None = None) -> ResolvedTable | None:
        """:meth:`resolve` when the answer is already in memory and still current, else None.

        Costs one read-only SQLite lookup of the table's metadata pointer: never
        opens a catalog, loads table metadata, raises for a missing table or waits
        (for a writer of ``catalog.db``, or a thread opening a catalog), so an
        event loop can afford it (on None the caller falls back to :meth:`resolve`).
        """
        catalog = self._catalogs.get(ref.warehouse)
        if catalog is None:
            return None
        try:
            location = self._metadata_location(ref, catalog, wait=False)
        except Exception:
            return None
        cached = self._tables.get((ref.warehouse, ref.identifier))
        if location is None or cached is None or cached[0] != location:
            return None
        return self._resolved.get((ref, location, snapshot_id))

    def resolve(self, ref: TableRef, snapshot_id: int | None = None) -> ResolvedTable:
        """Pin ``ref`` to ``snapshot_id`` (or its current snapshot).

        The schema is the one recorded with that snapshot, so a pinned old
        snapshot reads with its old column names and types, and the result is
        a function of the snapshot id alone (the provenance version).
        """
        table = self.load(ref)
        key = (ref, table.metadata_location, snapshot_id)
        hit = self._resolved.get(key)
        if hit is not None:
            return hit
        resolved = self._resolve(ref, table, snapshot_id)
        with self._lock:
            if len(self._resolved) > 1024:
                self._resolved.clear()
            self._resolved[key] = resolved
        return resolved

    def _resolve(self, ref: TableRef, table: Table, snapshot_id: int | None) -> ResolvedTable:
        metadata = table.metadata
        if snapshot_id is None:
            snapshot = table.current_snapshot()
        else:
            snapshot = table.snapshot_by_id(snapshot_id)
            if snapshot is None:
                known = [s.snapshot_id for s in table.snapshots()]
                raise NotFound(
                    f"snapshot {snapshot_id} does not exist in table {ref.identifier}; "
                    f"snapshots: {', '.join(map(str, known)) or '(none)'}",
                    detail={"uri": ref.uri, "snapshot_id": snapshot_id, "snapshots": known},
                )
        schema = metadata.schema()
        if snapshot is not None and snapshot.schema_id is not None:
            schema = metadata.schema_by_id(snapshot.schema_id) or schema
        return ResolvedTable(
            ref=ref,
            table=table,
            snapshot_id=None if snapshot is None else snapshot.snapshot_id,
            schema=schema,
            table_uuid=str(metadata.table_uuid),
        )

    def plan(
        self, resolved: ResolvedTable, predicates: Sequence[Predicate] = ()
    ) -> list[FileScanTask]:
        """The snapshot's data-file tasks (with their delete files), pruned by
        partition values and column stats against ``predicates``.

        Pruning is conservative: a file is dropped only when no row in it can
        match. The caller still applies the filters exactly.
        """
        if resolved.snapshot_id is None:
            return []
        key = (
            resolved.table.metadata_location,
            resolved.snapshot_id,
            tuple(sorted(predicates, key=repr)),
        )
        with self._lock:
            cached = self._plans.get(key)
            if cached is not None:
                self._plans.move_to_end(key)
                return cached
        row_filter = pruning_expression(resolved.table, predicates)
        try:
            tasks = list(
                resolved.table.scan(
                    row_filter=row_filter, snapshot_id=resolved.snapshot_id
                ).plan_files()
            )
        except ValueError as exc:
            if "equality deletes" in str(exc):
                raise InvalidArgument(
                    f"table {resolved.ref.identifier} at snapshot {resolved.snapshot_id} has "
                    "equality delete files, which Quiver cannot apply yet; refusing to read "
                    "rows that may have been deleted",
                    detail={"uri": resolved.ref.uri, "snapshot_id": resolved.snapshot_id},
                ) from None
            raise
        with self._lock:
            self._plans[key] = tasks
            while len(self._plans) > _PLAN_CACHE_SIZE:
                self._plans.popitem(last=False)
        return tasks

    def clear_plans(self) -> int:
        """Drop the file plans only; how many there were (``scan@v1``'s cache-clear hook,
        which must not drop the catalogs of a :class:`Warehouses` it shares)."""
        with self._lock:
            held = len(self._plans)
            self._plans.clear()
        return held

    def clear(self) -> dict[str, int]:
        """Drop every cache — catalogs, catalog pointers, loaded table metadata, resolved
        snapshots, file plans — and say how many entries each held.

        Safe while requests run: what they already hold stays valid (a disposed
        SQLAlchemy engine opens a new pool on next use), and the next request
        loads what it needs again. Nothing on disk is touched.
        """
        with self._lock:
            counts = {
                "catalogs": len(self._catalogs),
                "catalog_pointers": len(self._pointers),
                "tables": len(self._tables),
                "resolved": len(self._resolved),
                "plans": len(self._plans),
            }
            catalogs = list(self._catalogs.values())
            for con, _ in self._pointers.values():  # used only under this lock
                con.close()
            self._catalogs.clear()
            self._catalog_files.clear()
            self._pointers.clear()
            self._tables.clear()
            self._resolved.clear()
            self._plans.clear()
        for catalog in catalogs:
            catalog.engine.dispose()
        return counts

    def close(self) -> None:
        self.clear()  # drops every catalog, connection and cache it holds
