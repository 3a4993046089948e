"""The data-plane objects one server process owns, built once from settings."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from catalog import ArtifactStore, Warehouses
from executors import Registry, load_registry, prepare_query_database
from flight.nodes import DataNodes
from foundation import Settings
from materialize import Materializer


@dataclass
class Core:
    """Settings, the artifact store, the executor registry and the materializer."""

    settings: Settings
    store: ArtifactStore
    registry: Registry
    warehouses: Warehouses
    materializer: Materializer
    nodes: DataNodes = field(default_factory=DataNodes)
    """The data nodes that joined this server (:mod:`flight.nodes`)."""

    @classmethod
    def open(cls, settings: Settings, *, registry: Registry | None = None) -> Core:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = ArtifactStore(
            settings.store_dir,
            max_bytes=settings.cache_max_bytes,
            fsync_derived=settings.fsync_derived,
            part_storage=settings.part_storage,
        )
        registry = registry if registry is not None else load_registry()
        warehouses = Warehouses()
        materializer = Materializer(settings, store, registry, warehouses)
        nodes = DataNodes(settings.node_heartbeat_s)
        prepare_query_database(settings)  # the first query's, off its path
        return cls(settings, store, registry, warehouses, materializer, nodes)

    def close(self, *, cancel: bool = False) -> None:
        """Let running builds finish (or cancel them: they are marked failed), then close."""
        self.materializer.close(cancel=cancel)
        with contextlib.suppress(Exception):
            self.warehouses.close()
        self.store.close()
